"""The env a policy runs in: env id, env options and observation wrappers, as the host decides them.

A checkpoint fits an env only with the options and wrappers it was trained with: an RL Zoo
Ant-v3 agent sees 111 observation entries, which Ant-v4 gives only with
``use_contact_forces=True``; some zoo PPO agents were trained inside sb3_contrib's
``TimeFeatureWrapper``. This module reads what the zoo folder says about them
(``env_kwargs.yml``, ``args.yml``'s ``env_kwargs``, ``config.yml``'s ``env_wrapper``), parses
``--env-option key=value``, and builds the env through the agent's own
:func:`device_agent.envs.build_env`, so the host's export check, compression rollouts and the
device all step the same env. The choice of env for a checkpoint is in :mod:`env_choice`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

from device_agent.contract.envs import build_env, describe_env
from device_agent.contract.errors import AgentError
from device_agent.contract.manifest import ArtifactManifest, ObsWrapper
from device_agent.contract.obs_wrappers import OBS_WRAPPERS, TIME_FEATURE
from host.errors import CheckpointError, UnsupportedPolicyError
from host.policies.zoo_files import zoo_yaml

#: Class paths under which the RL Zoo's config.yml names sb3_contrib's time feature (older zoo
#: versions shipped the same wrapper in their own ``utils.wrappers``).
TIME_FEATURE_CLASSES = frozenset(
    {
        "sb3_contrib.common.wrappers.TimeFeatureWrapper",
        "sb3_contrib.common.wrappers.time_feature.TimeFeatureWrapper",
        "rl_zoo3.wrappers.TimeFeatureWrapper",
        "utils.wrappers.TimeFeatureWrapper",
    }
)
#: sb3_contrib's TimeFeatureWrapper default horizon, used when the env has no TimeLimit.
TIME_FEATURE_DEFAULT_MAX_STEPS = 1000


@dataclass(frozen=True)
class EnvSetup:
    """An env id with the options and observation wrappers a policy needs."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    obs_wrappers: tuple[ObsWrapper, ...] = ()

    @classmethod
    def of(cls, manifest: ArtifactManifest) -> EnvSetup:
        return cls(manifest.env_id, dict(manifest.env_kwargs), tuple(manifest.obs_wrappers))

    def build(self, max_episode_steps: int | None = None) -> Any:
        """The env, as the agent builds it.

        :raises CheckpointError: options or wrappers refused, or the env cannot be built here
        """
        try:
            return build_env(self.env_id, self.env_kwargs, self.obs_wrappers, max_episode_steps)
        except AgentError as exc:
            raise CheckpointError(str(exc)) from exc

    def describe(self) -> str:
        return describe_env(self.env_id, self.env_kwargs, self.obs_wrappers)


def parse_env_options(items: Iterable[str]) -> dict[str, Any]:
    """``["use_contact_forces=true", "ctrl_cost_weight=0.1"]`` -> ``{"use_contact_forces": True, ...}``.

    Values are read as YAML scalars or lists (``true``, ``0.5``, ``[0.2, 1.0]``), the way the
    zoo writes them; anything else stays a string.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CheckpointError(f"env option {item!r} is not KEY=VALUE, e.g. use_contact_forces=true")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if value is not None and not isinstance(value, bool | int | float | str | list):
            value = raw
        options[key] = value
    return options


def time_feature(env_id: str, params: Mapping[str, Any] | None = None) -> ObsWrapper:
    """The time feature as sb3_contrib's wrapper would have set it up around ``env_id``.

    sb3_contrib takes ``max_steps`` from the env's TimeLimit (the registered
    ``max_episode_steps``) and falls back to its ``max_steps`` argument only without one.
    """
    params = dict(params or {})
    unknown = set(params) - {"max_steps", "test_mode"}
    if unknown:
        raise UnsupportedPolicyError(
            f"TimeFeatureWrapper takes max_steps and test_mode, not {sorted(unknown)}"
        )
    spec = gym.registry.get(env_id)
    registered = spec.max_episode_steps if spec is not None else None
    max_steps = (
        registered if registered is not None else params.get("max_steps", TIME_FEATURE_DEFAULT_MAX_STEPS)
    )
    out: dict[str, Any] = {"max_steps": int(max_steps)}
    if params.get("test_mode"):
        out["test_mode"] = True
    return ObsWrapper(name=TIME_FEATURE, params=out)


def wrapper_by_name(name: str, env_id: str) -> ObsWrapper:
    """``--obs-wrapper NAME``: one of the wrappers the agent implements, set up for ``env_id``."""
    if name == TIME_FEATURE:
        return time_feature(env_id)
    raise CheckpointError(f"unknown observation wrapper {name!r}; drlc runs: {', '.join(OBS_WRAPPERS)}")


def wrappers_from_zoo(entry: Any, env_id: str) -> tuple[ObsWrapper, ...]:
    """The observation wrappers a zoo ``env_wrapper`` entry names, in the order the zoo applies them.

    The zoo writes a class path, a list of them, or ``{class path: kwargs}`` items.

    :raises UnsupportedPolicyError: naming a wrapper the agent does not implement
    """
    if entry is None:
        return ()
    items = entry if isinstance(entry, list) else [entry]
    wrappers = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            ((path, kwargs),) = item.items()
        elif isinstance(item, str):
            path, kwargs = item, {}
        else:
            raise UnsupportedPolicyError(f"cannot read the zoo's env_wrapper entry {item!r}")
        if path in TIME_FEATURE_CLASSES:
            wrappers.append(time_feature(env_id, kwargs or {}))
        else:
            raise UnsupportedPolicyError(
                f"the policy was trained inside the env wrapper {path}, which the device agent does not "
                f"implement (it runs sb3_contrib's TimeFeatureWrapper); without it the policy would see "
                f"other observations"
            )
    return tuple(wrappers)


def zoo_env_options(config_dirs: Iterable[Path]) -> tuple[dict[str, Any], Any]:
    """``(env kwargs, env_wrapper entry)`` from a zoo run folder: env_kwargs.yml, args.yml, config.yml."""
    kwargs: dict[str, Any] = {}
    wrapper: Any = None
    for folder in config_dirs:
        args = zoo_yaml(folder / "args.yml")
        if isinstance(args, dict) and isinstance(args.get("env_kwargs"), dict):
            kwargs.update(args["env_kwargs"])
        env_kwargs = zoo_yaml(folder / "env_kwargs.yml")
        if isinstance(env_kwargs, dict):
            kwargs.update(env_kwargs)
        config = zoo_yaml(folder / "config.yml")
        if isinstance(config, dict) and config.get("env_wrapper") is not None:
            wrapper = config["env_wrapper"]
        if any((folder / n).is_file() for n in ("args.yml", "config.yml", "env_kwargs.yml")):
            break
    return kwargs, wrapper
