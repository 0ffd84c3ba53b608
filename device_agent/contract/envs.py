"""Which envs a client may ask the agent to build, and how a policy's env is built.

An env id names code the agent will import and run, so it is checked against an
allow-list before any job is queued (Gymnasium's MuJoCo envs unless configured). A policy's
manifest may add env options (``gymnasium.make`` kwargs, checked against the env class's
signature) and observation wrappers (from the agent's own allow-list, :mod:`obs_wrappers`);
:func:`build_env` is the one place that applies them, for the agent and the host alike.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

from device_agent.contract.errors import EnvNotAllowedError, EnvUnavailableError, InvalidModelError
from device_agent.contract.manifest import ObsWrapper
from device_agent.contract.obs_wrappers import OBS_WRAPPERS, apply_wrapper

MUJOCO_ENTRY_POINT = "gymnasium.envs.mujoco"


def is_mujoco_env(env_id: str) -> bool:
    spec = gymnasium.registry.get(env_id)
    return (
        spec is not None
        and isinstance(spec.entry_point, str)
        and spec.entry_point.startswith(MUJOCO_ENTRY_POINT)
    )


def check_env_allowed(env_id: str, allowed: tuple[str, ...]) -> None:
    """:param allowed: explicit env ids; empty means every Gymnasium MuJoCo env."""
    if allowed:
        if env_id not in allowed:
            raise EnvNotAllowedError(
                f"env {env_id!r} is not allowed on this agent; allowed: {', '.join(allowed)}"
            )
    elif not is_mujoco_env(env_id):
        raise EnvNotAllowedError(
            f"env {env_id!r} is not a Gymnasium MuJoCo env, the only kind this agent runs by default "
            "(start it with --allow-env ID to allow others)"
        )


# --------------------------------------------------------------------------------------------
# Building the env a policy needs: its options (gymnasium.make kwargs) and observation wrappers
# --------------------------------------------------------------------------------------------

#: Env options a manifest may not set, with the reason: they name files on the device or only
#: change rendering, which no measurement uses.
DENIED_OPTIONS: Mapping[str, str] = {
    "xml_file": "it names a file on the device",
    "default_camera_config": "rendering is not part of a measurement",
    "render_mode": "rendering is not part of a measurement",
}


def env_option_names(env_id: str) -> dict[str, inspect.Parameter]:
    """The options ``env_id``'s class takes by name (its own ``__init__``), by name.

    Options a class only passes on through ``**kwargs`` (MuJoCo's rendering settings) are not
    among them: they do not change what a policy sees.

    :raises EnvUnavailableError: the env is not registered here or its class cannot be imported
    """
    spec = gymnasium.registry.get(env_id)
    if spec is None:
        raise EnvUnavailableError(f"env {env_id!r} is not registered with Gymnasium here")
    try:
        creator = (
            load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
        )
    except (ImportError, AttributeError, gymnasium.error.Error) as exc:
        raise EnvUnavailableError(f"cannot import env {env_id!r}: {exc}") from exc
    init = creator.__init__ if isinstance(creator, type) else creator
    params = inspect.signature(init).parameters.values()
    skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return {p.name: p for p in params if p.name != "self" and p.kind not in skip}


def _type_fits(value: Any, default: Any) -> bool:
    """Whether ``value`` (from JSON) can stand where the option's default stands."""
    if default is inspect.Parameter.empty or default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple | list):
        return isinstance(value, list | tuple)
    return True


def check_env_options(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """Refuse options ``env_id``'s class does not take, denied ones, and values of the wrong type.

    :raises InvalidModelError: naming the option and what ``env_id`` takes instead
    """
    if not env_kwargs:
        return
    accepted = env_option_names(env_id)
    for name, value in env_kwargs.items():
        if name in DENIED_OPTIONS:
            raise InvalidModelError(f"env option {name!r} is not allowed: {DENIED_OPTIONS[name]}")
        if name not in accepted:
            takes = ", ".join(n for n in accepted if n not in DENIED_OPTIONS) or "no options"
            raise InvalidModelError(f"{env_id} takes no option {name!r}; it takes: {takes}")
        default = accepted[name].default
        if not _type_fits(value, default):
            raise InvalidModelError(
                f"env option {name}={value!r} has the wrong type for {env_id}: its default is {default!r}"
            )


def check_obs_wrappers(wrappers: Sequence[ObsWrapper]) -> None:
    """Refuse wrappers the agent does not implement, before a job is queued."""
    for wrapper in wrappers:
        if wrapper.name not in OBS_WRAPPERS:
            raise InvalidModelError(
                f"the model needs the observation wrapper {wrapper.name!r}, which this agent does not implement "
                f"(it runs: {', '.join(OBS_WRAPPERS)})"
            )


def check_env_setup(env_id: str, env_kwargs: Mapping[str, Any], wrappers: Sequence[ObsWrapper]) -> None:
    """Everything about a policy's env that can be refused without building it."""
    check_env_options(env_id, env_kwargs)
    check_obs_wrappers(wrappers)


def build_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[ObsWrapper] = (),
    max_episode_steps: int | None = None,
) -> Any:
    """``gymnasium.make(env_id, **env_kwargs)`` inside ``obs_wrappers`` (innermost first).

    The one place, on the agent and the host alike, where a policy's env is built, so the
    device, compression's rollouts and the export check all step the same env.

    :param max_episode_steps: the TimeLimit; None: the env's registered one
    :raises InvalidModelError: for options or wrappers that are refused
    :raises EnvUnavailableError: when Gymnasium or MuJoCo cannot build the env here
    """
    kwargs = dict(env_kwargs or {})
    check_env_setup(env_id, kwargs, obs_wrappers)
    if max_episode_steps is not None and max_episode_steps > 0:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as exc:
        raise EnvUnavailableError(f"cannot build env {env_id!r} here: {exc}") from exc
    except Exception as exc:  # MuJoCo or a missing extra fails in its own ways
        raise EnvUnavailableError(f"cannot build env {env_id!r} here: {type(exc).__name__}: {exc}") from exc
    try:
        for wrapper in obs_wrappers:
            env = apply_wrapper(env, wrapper.name, wrapper.params)
    except Exception:
        env.close()
        raise
    return env


def describe_env(env_id: str, env_kwargs: Mapping[str, Any], obs_wrappers: Sequence[ObsWrapper]) -> str:
    """``Ant-v4(use_contact_forces=True)`` or ``Walker2d-v5 + time_feature(max_steps=1000)``, for people."""
    text = env_id
    if env_kwargs:
        text += "(" + ", ".join(f"{k}={v!r}" for k, v in sorted(env_kwargs.items())) + ")"
    for wrapper in obs_wrappers:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(wrapper.params.items()))
        text += f" + {wrapper.name}" + (f"({params})" if params else "")
    return text
