"""Observation wrappers the agent implements itself: a small allow-list, no torch, no sb3.

A policy trained inside an observation wrapper sees the wrapper's observations, so the device
has to apply the same wrapper, with the same parameters, or the policy sees the wrong thing.
The agent cannot import the library that defined the wrapper (that would pull in torch), so
each allowed wrapper is reimplemented here to match its original exactly, and a test compares
the two observation by observation.

- ``time_feature``: sb3_contrib's ``TimeFeatureWrapper`` (the RL Zoo's ``env_wrapper`` for some
  PPO agents). It appends ``1 - t / max_steps`` (t = steps since reset) to a flat Box
  observation, or ``1.0`` in test mode. sb3_contrib reads ``max_steps`` from the env's
  ``TimeLimit`` at training time; drlc records that value in the manifest, so a device that runs
  episodes of another length still feeds the policy the feature it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from device_agent.contract.errors import InvalidModelError

TIME_FEATURE = "time_feature"


class TimeFeature(gym.Wrapper):  # type: ignore[type-arg]
    """sb3_contrib's TimeFeatureWrapper for flat Box observations, with ``max_steps`` given explicitly."""

    def __init__(self, env: gym.Env, max_steps: int, test_mode: bool = False) -> None:  # type: ignore[type-arg]
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise InvalidModelError(f"time_feature needs a flat Box observation space, the env has {space}")
        self.dtype = space.dtype
        low = np.concatenate((space.low, [0.0])).astype(self.dtype)
        high = np.concatenate((space.high, [1.0])).astype(self.dtype)
        super().__init__(env)
        self.observation_space = spaces.Box(low=low, high=high, dtype=self.dtype)  # type: ignore[arg-type]
        self._max_steps = max_steps
        self._test_mode = test_mode
        self._current_step = 0

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        self._current_step = 0
        obs, info = self.env.reset(**kwargs)
        return self._get_obs(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        self._current_step += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._get_obs(obs), reward, terminated, truncated, info

    def _get_obs(self, obs: np.ndarray) -> np.ndarray:
        feature = 1.0 if self._test_mode else 1 - (self._current_step / self._max_steps)
        return np.append(obs, np.array(feature, dtype=self.dtype))


def _time_feature(env: gym.Env, params: Mapping[str, Any]) -> gym.Env:  # type: ignore[type-arg]
    unknown = set(params) - {"max_steps", "test_mode"}
    if unknown:
        raise InvalidModelError(
            f"time_feature takes max_steps and test_mode, not {', '.join(sorted(unknown))}"
        )
    max_steps = params.get("max_steps")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise InvalidModelError(f"time_feature needs max_steps, a positive integer, got {max_steps!r}")
    test_mode = params.get("test_mode", False)
    if not isinstance(test_mode, bool):
        raise InvalidModelError(f"time_feature's test_mode must be true or false, got {test_mode!r}")
    return TimeFeature(env, max_steps=max_steps, test_mode=test_mode)


#: The wrappers the agent runs, by the name a manifest gives them. Anything else is refused.
OBS_WRAPPERS: Mapping[str, Callable[[gym.Env, Mapping[str, Any]], gym.Env]] = {  # type: ignore[type-arg]
    TIME_FEATURE: _time_feature,
}


def apply_wrapper(env: gym.Env, name: str, params: Mapping[str, Any]) -> gym.Env:  # type: ignore[type-arg]
    """``env`` inside the wrapper ``name``; refuses names not in :data:`OBS_WRAPPERS` with the reason."""
    if name not in OBS_WRAPPERS:
        raise InvalidModelError(
            f"the model needs the observation wrapper {name!r}, which this agent does not implement "
            f"(it runs: {', '.join(OBS_WRAPPERS)}); without it the policy would see other observations"
        )
    return OBS_WRAPPERS[name](env, params)
