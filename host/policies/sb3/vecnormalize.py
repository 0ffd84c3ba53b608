"""VecNormalize statistics: the observation normalisation an SB3 policy was trained with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from host.errors import CheckpointError, UnsupportedPolicyError
from host.policies.sb3.unpickler import PICKLE_ERRORS, permissive_loads
from host.policies.spec import ObsNorm

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecNormalize


def _obs_norm_from(vec_normalize: Any, where: str) -> ObsNorm | None:
    """Read the observation statistics from a VecNormalize (real or stub); None if obs are not normalised."""
    if not getattr(vec_normalize, "norm_obs", True):
        return None
    obs_rms = getattr(vec_normalize, "obs_rms", None)
    if isinstance(obs_rms, dict) or getattr(vec_normalize, "norm_obs_keys", None):
        raise UnsupportedPolicyError(
            f"{where} normalises a dict observation space; drlc exports flat (Box) observations only"
        )
    try:
        mean = np.asarray(obs_rms.mean, dtype=np.float64)  # type: ignore[union-attr]
        var = np.asarray(obs_rms.var, dtype=np.float64)  # type: ignore[union-attr]
        clip_obs = float(vec_normalize.clip_obs)
        epsilon = float(vec_normalize.epsilon)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{where} does not hold VecNormalize statistics (obs_rms.mean, obs_rms.var, clip_obs, epsilon): {exc}"
        ) from exc
    return ObsNorm(mean=mean.reshape(-1), var=var.reshape(-1), clip_obs=clip_obs, epsilon=epsilon)


def load_vecnormalize_stats(vec_normalize: VecNormalize) -> ObsNorm | None:
    """The observation statistics of an in-memory SB3 ``VecNormalize`` (e.g. right after training).

    :return: None when the wrapper does not normalise observations (``norm_obs=False``)
    """
    return _obs_norm_from(vec_normalize, "the VecNormalize wrapper")


def read_vecnormalize(path: Path) -> ObsNorm | None:
    """The observation statistics stored in a ``vecnormalize.pkl``, without importing ``gym``.

    The pickle holds a whole VecNormalize; only ``obs_rms.mean``, ``obs_rms.var``, ``clip_obs``,
    ``epsilon`` and ``norm_obs`` are read, and no class from the pickle is imported or run.

    :return: None when the file says observations were not normalised (``norm_obs=False``)
    """
    try:
        obj = permissive_loads(path.read_bytes())
    except PICKLE_ERRORS as exc:
        raise CheckpointError(f"cannot read {path.name} as a VecNormalize pickle: {exc}") from exc
    return _obs_norm_from(obj, path.name)
