"""Load Stable-Baselines3 / RL Zoo checkpoints for export, with their VecNormalize statistics.

Works on SB3 2.x with Gymnasium, including checkpoints saved by SB3 1.x under the old ``gym``
package (the RL Zoo's published agents), without needing ``gym`` installed:

- the model zip pickles old ``gym`` spaces and Python-3.7 lambdas (learning-rate and clip-range
  schedules). They are replaced on load through SB3's ``custom_objects``: the spaces come from the
  Gymnasium env, the schedules become constants (they only matter for training). Before that, the
  checkpoint's own spaces are read with a permissive unpickler, so a checkpoint for another env is
  refused with both shapes named instead of failing deep inside torch.
- ``vecnormalize.pkl`` pickles a whole ``VecNormalize`` with old ``gym`` classes inside. It is read
  with a restricted unpickler that builds inert stubs for every class but numpy arrays, and only
  the observation statistics are kept.

The files of a checkpoint are found by :mod:`host.policies.sb3.files`, what it says about itself read by
:mod:`host.policies.sb3.detect`, its actor described by :mod:`host.policies.sb3.actor`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_agent.contract.manifest import ObsWrapper, sha256_file
from host.errors import CheckpointError, SpaceMismatchError
from host.policies.algorithms import UnknownAlgorithmError, algorithm
from host.policies.env_choice import EnvSpaces, choose_env
from host.policies.env_setup import wrapper_by_name, wrappers_from_zoo, zoo_env_options
from host.policies.sb3.detect import choose_algo, read_checkpoint_info
from host.policies.sb3.files import config_dirs, find_vecnormalize, guess_env_id, resolve_checkpoint_path
from host.policies.sb3.vecnormalize import read_vecnormalize
from host.policies.spec import ObsNorm

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm


def _constant_zero(_progress_remaining: float) -> float:
    """Stands in for a pickled schedule: the value only matters for training, not for export."""
    return 0.0


@dataclass(frozen=True)
class LoadedCheckpoint:
    """An SB3 model loaded for export, with what is known about where it came from.

    :param model: the SB3 model, on CPU, with the env's Gymnasium spaces
    :param algo: lower-case algorithm name
    :param env_id: the Gymnasium env the model is exported for (buildable here)
    :param trained_env_id: the env the checkpoint names (zoo folder / args.yml), if any
    :param obs_norm: VecNormalize statistics, None when the policy sees raw observations
    :param checkpoint: the model zip
    :param checkpoint_sha256: sha256 of the model zip
    :param vecnormalize: the ``vecnormalize.pkl`` used, if any
    :param vecnormalize_sha256: its sha256
    :param training_seed: the seed the checkpoint was trained with, when it stores one
    :param sb3_version: the SB3 version that saved the checkpoint
    :param notes: things the user should know (e.g. the env version was changed)
    """

    model: BaseAlgorithm
    algo: str
    env_id: str
    trained_env_id: str | None
    obs_norm: ObsNorm | None
    checkpoint: Path
    checkpoint_sha256: str
    vecnormalize: Path | None
    vecnormalize_sha256: str | None
    training_seed: int | None
    sb3_version: str | None
    notes: tuple[str, ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    obs_wrappers: tuple[ObsWrapper, ...] = ()


def load_checkpoint(
    path: Path,
    env_id: str | None = None,
    algo: str | None = None,
    env_options: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[str | ObsWrapper] | None = None,
) -> LoadedCheckpoint:
    """Load an SB3 / RL Zoo checkpoint for export, with its VecNormalize statistics.

    :param path: the model ``.zip``, or an RL Zoo run folder holding it
    :param env_id: the Gymnasium env to export for; None: the env the checkpoint names, or the newest
        registered version whose spaces fit the checkpoint (:func:`host.policies.env_choice.choose_env`)
    :param algo: the algorithm, when detection from the checkpoint is not wanted
    :param env_options: env options (``gymnasium.make`` kwargs) on top of the zoo folder's
        ``env_kwargs.yml`` / ``args.yml`` ones
    :param obs_wrappers: observation wrappers (names or set-up wrappers); None: the ones the zoo's
        ``config.yml`` names as ``env_wrapper``
    :raises CheckpointError: for unreadable files, unknown algorithms, envs that cannot be built
    :raises SpaceMismatchError: when the checkpoint's spaces do not fit the env
    :raises UnsupportedPolicyError: for discrete, recurrent or image policies
    """
    checkpoint = resolve_checkpoint_path(Path(path))
    info = read_checkpoint_info(checkpoint)
    chosen_algo = choose_algo(checkpoint, info, algo.lower() if algo else None)

    trained_env_id = guess_env_id(checkpoint)
    notes: list[str] = []
    zoo_kwargs, zoo_wrapper = zoo_env_options(config_dirs(checkpoint))
    kwargs = {**zoo_kwargs, **(env_options or {})}
    horizon_env = trained_env_id or env_id or ""
    if obs_wrappers is None:
        wrappers = wrappers_from_zoo(zoo_wrapper, horizon_env)
        if wrappers:
            names = ", ".join(w.name for w in wrappers)
            notes.append(
                f"the zoo's config.yml says it was trained inside {zoo_wrapper}: the env gets {names}"
            )
    else:
        wrappers = tuple(
            w if isinstance(w, ObsWrapper) else wrapper_by_name(w, horizon_env) for w in obs_wrappers
        )
    if zoo_kwargs:
        notes.append(f"env options from the zoo folder: {zoo_kwargs}")
    choice = choose_env(
        checkpoint.name,
        info.observation_space,
        info.action_space,
        trained_env_id=trained_env_id,
        env_id=env_id,
        env_kwargs=kwargs,
        obs_wrappers=wrappers,
    )
    env = choice.spaces
    notes += choice.notes

    vecnormalize = find_vecnormalize(checkpoint)
    obs_norm = read_vecnormalize(vecnormalize) if vecnormalize is not None else None
    if obs_norm is not None and (obs_norm.mean.shape != env.observation_space.shape):
        raise SpaceMismatchError(
            f"{vecnormalize.name if vecnormalize else 'vecnormalize'} normalises observations of shape "
            f"{obs_norm.mean.shape}, but {env.describe()} has observation shape {env.observation_space.shape}"
        )

    model = _load_model(checkpoint, chosen_algo, env)
    return LoadedCheckpoint(
        model=model,
        algo=chosen_algo,
        env_id=env.env_id,
        trained_env_id=trained_env_id,
        obs_norm=obs_norm,
        checkpoint=checkpoint,
        checkpoint_sha256=sha256_file(checkpoint),
        vecnormalize=vecnormalize,
        vecnormalize_sha256=sha256_file(vecnormalize) if vecnormalize is not None else None,
        training_seed=info.seed,
        sb3_version=info.sb3_version,
        notes=tuple(notes),
        env_kwargs=dict(env.setup.env_kwargs),
        obs_wrappers=env.setup.obs_wrappers,
    )


def _load_model(checkpoint: Path, algo: str, env: EnvSpaces) -> BaseAlgorithm:
    """``cls.load`` with the pickles that cannot (or need not) be read replaced.

    The spaces come from the env; schedules become constants; state that only matters for
    continuing training (last observations, episode buffers, action noise, the replay buffer
    class) is dropped, so old pickles of it cannot break the load. Off-policy models get a
    one-transition replay buffer, as the RL Zoo's enjoy.py does, instead of allocating millions.
    """
    try:
        entry = algorithm(algo)
    except UnknownAlgorithmError as exc:
        raise CheckpointError(str(exc)) from None
    cls = entry.load_class()
    custom_objects: dict[str, Any] = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "learning_rate": 0.0,
        "lr_schedule": _constant_zero,
        "clip_range": _constant_zero,
        "clip_range_vf": None,
        "_last_obs": None,
        "_last_original_obs": None,
        "_last_episode_starts": None,
        "ep_info_buffer": None,
        "ep_success_buffer": None,
        "action_noise": None,
        "replay_buffer_class": None,
        "replay_buffer_kwargs": {},
    }
    kwargs: dict[str, Any] = {} if entry.on_policy else {"buffer_size": 1}
    try:
        with warnings.catch_warnings():
            # SB3 warns that old A2C/PPO zips lack pi_features_extractor; it repairs that itself.
            warnings.filterwarnings("ignore", message=".*SB3 < 1.7.0.*")
            return cls.load(checkpoint, device="cpu", custom_objects=custom_objects, **kwargs)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, ModuleNotFoundError) as exc:
        raise CheckpointError(f"SB3 could not load {checkpoint.name} as {algo.upper()}: {exc}") from exc
