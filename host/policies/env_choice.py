"""Which env a checkpoint runs in: its spaces against the env versions registered here.

RL Zoo agents were trained on ``-v3`` MuJoCo envs that Gymnasium registers but can no longer
build, and the newest version does not always give the same observation: Ant-v5 has 105
entries where Ant-v3 had 111 (Ant-v4 gives them with ``use_contact_forces=True``), Humanoid-v5
has 348 where Humanoid-v3 and -v4 have 376. So an env is chosen by fit, not by version alone:
the newest registered version whose observation and action spaces (with the options and
wrappers the checkpoint is known to need) match the checkpoint's, trying the options in
:data:`LEGACY_OBS_OPTIONS` that give back an old version's observation. The choice and its
reason go to the user; when nothing fits, the error names every candidate's shapes and what to
pass instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from device_agent.contract.envs import env_option_names
from device_agent.contract.errors import AgentError
from device_agent.contract.manifest import ObsWrapper
from device_agent.contract.obs_wrappers import TIME_FEATURE
from host.errors import CheckpointError, SpaceMismatchError, UnsupportedPolicyError
from host.policies.env_setup import EnvSetup

logger = logging.getLogger(__name__)

#: Env options that give back the observation an older version of the env had, by env name.
#: Ant-v3 included the contact forces (111 entries); Ant-v4 does so only when asked.
LEGACY_OBS_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"Ant": MappingProxyType({"use_contact_forces": True})}
)


@dataclass(frozen=True)
class SpaceInfo:
    """What a checkpoint says about one of its spaces, read without importing its classes."""

    kind: str
    shape: tuple[int, ...] | None
    low: np.ndarray | None = None
    high: np.ndarray | None = None


@dataclass(frozen=True)
class EnvSpaces:
    """The spaces of a buildable env setup (env id, options, wrappers)."""

    setup: EnvSetup
    observation_space: spaces.Space[Any]
    action_space: spaces.Space[Any]

    @property
    def env_id(self) -> str:
        return self.setup.env_id

    def describe(self) -> str:
        return self.setup.describe()


def env_spaces(env: str | EnvSetup) -> EnvSpaces:
    """Build the env once to read its spaces.

    :raises CheckpointError: when the env is not registered, cannot be built here, or refuses the options
    """
    setup = env if isinstance(env, EnvSetup) else EnvSetup(env)
    try:
        built = setup.build()
    except CheckpointError as exc:
        registered = registered_versions(setup.env_id)
        hint = f"; registered versions: {', '.join(registered)}" if registered else ""
        raise CheckpointError(f"{exc}{hint}") from exc
    try:
        return EnvSpaces(setup, built.observation_space, built.action_space)
    finally:
        built.close()


def registered_versions(env_id: str) -> list[str]:
    """Every registered id with the same namespace and name as ``env_id``, newest version first."""
    try:
        namespace, name, _ = gym.envs.registration.parse_env_id(env_id)
    except gym.error.Error:
        return []
    same = [s for s in gym.registry.values() if s.namespace == namespace and s.name == name]
    return [s.id for s in sorted(same, key=lambda s: -1 if s.version is None else s.version, reverse=True)]


def space_info_of(space: spaces.Space[Any]) -> SpaceInfo:
    if isinstance(space, spaces.Box):
        return SpaceInfo("Box", tuple(space.shape), np.asarray(space.low), np.asarray(space.high))
    return SpaceInfo(type(space).__name__, tuple(space.shape) if space.shape is not None else None)


def check_spaces(
    where: str,
    obs: SpaceInfo | spaces.Space[Any] | None,
    act: SpaceInfo | spaces.Space[Any] | None,
    env: EnvSpaces,
) -> None:
    """Refuse a policy whose observation or action space does not fit ``env``.

    :param where: how to name the policy in the message, e.g. the checkpoint's file name
    :raises SpaceMismatchError: naming both shapes (or both bounds)
    :raises UnsupportedPolicyError: for non-Box spaces
    """
    obs_info = obs if isinstance(obs, SpaceInfo) or obs is None else space_info_of(obs)
    act_info = act if isinstance(act, SpaceInfo) or act is None else space_info_of(act)
    if act_info is not None and act_info.kind != "Box":
        raise UnsupportedPolicyError(
            f"{where} has a {act_info.kind} action space; drlc exports continuous-control policies with a Box "
            f"action space (PPO, A2C, TRPO, SAC, TD3, DDPG, TQC)"
        )
    env_obs, env_act = env.observation_space, env.action_space
    for label, mine, theirs in (("observation", obs_info, env_obs), ("action", act_info, env_act)):
        if mine is None or mine.shape is None:
            continue
        if not isinstance(theirs, spaces.Box) or mine.shape != theirs.shape:
            raise SpaceMismatchError(
                f"{where} expects {label} shape {mine.shape}, but {env.describe()} has {label} shape "
                f"{getattr(theirs, 'shape', None)} ({theirs}); pass the env_id it was trained on"
            )
    if act_info is not None and act_info.low is not None and act_info.high is not None:
        assert isinstance(env_act, spaces.Box)  # checked above, for mypy
        if not (np.allclose(act_info.low, env_act.low) and np.allclose(act_info.high, env_act.high)):
            raise SpaceMismatchError(
                f"{where} scales actions to [{act_info.low}, {act_info.high}], but {env.describe()}'s action bounds "
                f"are [{env_act.low}, {env_act.high}]; pass the env_id it was trained on"
            )


def _option_sets(env_id: str, env_kwargs: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The options to try for ``env_id``: the known ones, then those plus the legacy-observation ones."""
    yield dict(env_kwargs), None
    try:
        name = gym.envs.registration.parse_env_id(env_id)[1]
        legacy = LEGACY_OBS_OPTIONS.get(name, {})
        accepted = env_option_names(env_id) if legacy else {}
    except (gym.error.Error, AgentError):
        return
    extra = {k: v for k, v in legacy.items() if k not in env_kwargs}
    if extra and all(k in accepted for k in extra):
        reason = ", ".join(f"{k}={v!r}" for k, v in extra.items())
        yield {**env_kwargs, **extra}, f"{reason} gives back the observation older versions of {name} had"


def _shape(space: spaces.Space[Any]) -> tuple[int, ...] | None:
    return tuple(space.shape) if space.shape is not None else None


@dataclass(frozen=True)
class EnvChoice:
    """The env a checkpoint will run in, and what the user should be told about the choice."""

    spaces: EnvSpaces
    notes: tuple[str, ...]


def choose_env(
    where: str,
    obs: SpaceInfo | None,
    act: SpaceInfo | None,
    *,
    trained_env_id: str | None,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    obs_wrappers: tuple[ObsWrapper, ...] = (),
) -> EnvChoice:
    """The env ``where`` runs in: ``env_id`` if given, else the checkpoint's own or its newest fitting version.

    :param obs: the checkpoint's observation space (None: unknown, not checked)
    :param act: the checkpoint's action space (None: unknown, not checked)
    :param trained_env_id: the env the checkpoint names (zoo args.yml, folder names)
    :param env_id: the user's choice; only its options may still be completed from
        :data:`LEGACY_OBS_OPTIONS`
    :raises SpaceMismatchError: nothing fits; the message lists what was tried and what to pass
    :raises CheckpointError: no env to try at all
    """
    kwargs = dict(env_kwargs or {})
    if env_id is not None:
        names = [env_id]
    elif trained_env_id is not None:
        names = [trained_env_id, *(v for v in registered_versions(trained_env_id) if v != trained_env_id)]
    else:
        raise CheckpointError(
            f"cannot tell which env {where} was trained on (no zoo args.yml, no env-like folder name); "
            f"pass env_id (drlc-host import --env), e.g. HalfCheetah-v5"
        )
    tried: list[str] = []
    obs_shapes: list[tuple[str, tuple[int, ...] | None]] = []
    unbuildable: list[str] = []
    last_error: SpaceMismatchError | None = None
    build_error: CheckpointError | None = None
    for name in names:
        for options, reason in _option_sets(name, kwargs):
            setup = EnvSetup(name, options, obs_wrappers)
            try:
                found = env_spaces(setup)
            except CheckpointError as exc:
                if options == kwargs:
                    unbuildable.append(name)
                    build_error = build_error or exc
                    logger.debug("cannot build %s: %s", setup.describe(), exc)
                continue
            try:
                check_spaces(where, obs, act, found)
            except SpaceMismatchError as exc:
                last_error = exc
                obs_shapes.append((setup.describe(), _shape(found.observation_space)))
                tried.append(
                    f"{setup.describe()} has observation {_shape(found.observation_space)}, "
                    f"action {_shape(found.action_space)}"
                )
                continue
            return EnvChoice(found, tuple(_notes(setup, reason, trained_env_id, env_id, unbuildable, tried)))
    if not tried and build_error is not None:  # nothing could be built: say why
        raise build_error
    hint = _time_feature_hint(obs, obs_shapes, obs_wrappers)
    if len(tried) == 1 and last_error is not None:  # one candidate: its own message says it best
        raise SpaceMismatchError(f"{last_error}" + (f"; {hint}" if hint else ""))
    raise SpaceMismatchError(_no_fit_message(where, obs, act, names, tried, hint))


def _notes(
    setup: EnvSetup,
    reason: str | None,
    trained_env_id: str | None,
    env_id: str | None,
    unbuildable: list[str],
    tried: list[str],
) -> list[str]:
    notes = []
    if env_id is None and setup.env_id != trained_env_id:
        why = "cannot be built here" if trained_env_id in unbuildable else "does not fit it"
        notes.append(
            f"the checkpoint was trained on {trained_env_id}, which {why}; it runs in {setup.describe()}, "
            f"the newest registered version whose spaces fit it" + (f" ({reason})" if reason else "")
        )
        if tried:
            notes.append("passed over: " + "; ".join(tried))
    elif reason:
        notes.append(f"running in {setup.describe()}: {reason}")
    for note in notes:
        logger.warning(note)  # the terminal shows it once; the workspace log keeps it
    return notes


def _time_feature_hint(
    obs: SpaceInfo | None,
    obs_shapes: list[tuple[str, tuple[int, ...] | None]],
    obs_wrappers: tuple[ObsWrapper, ...],
) -> str | None:
    """Say so when the checkpoint observes one entry more than a candidate: the time feature's signature."""
    if obs is None or obs.shape is None or len(obs.shape) != 1:
        return None
    if any(w.name == TIME_FEATURE for w in obs_wrappers):
        return None
    one_short = [d for d, shape in obs_shapes if shape == (obs.shape[0] - 1,)]
    if not one_short:
        return None
    return (
        f"its observation has one entry more than {one_short[0]}'s: if it was trained inside "
        f"sb3_contrib's TimeFeatureWrapper (the zoo's config.yml names it as env_wrapper), "
        f"pass --obs-wrapper time_feature"
    )


def _no_fit_message(
    where: str,
    obs: SpaceInfo | None,
    act: SpaceInfo | None,
    names: list[str],
    tried: list[str],
    hint: str | None,
) -> str:
    expects = f"observation {obs.shape if obs else '?'}, action {act.shape if act else '?'}"
    found = "; ".join(tried) if tried else "none of " + ", ".join(names) + " can be built here"
    suggestion = hint or "pass --env ID (and --env-option KEY=VALUE) for the env it was trained on"
    return f"{where} expects {expects} and no env fits it: {found}; {suggestion}"
