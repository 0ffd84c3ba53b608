"""Train a baseline policy with Stable-Baselines3 and export it as a drlc artifact.

Reads top to bottom: the config, the env, the algorithm, the training loop with its
progress callback, then save and export. The run is named
``{env_id}__{algo}__{seed}__{timestamp}`` and lives in ``$DRLC_HOME/runs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.errors import DrlcError
from host.importer import ExportedPolicy, export_model

ALGOS = ("ppo", "a2c", "trpo", "sac", "td3", "ddpg", "tqc")


class TrainingError(DrlcError):
    """Training cannot start or did not produce a policy."""


@dataclass(frozen=True)
class TrainConfig:
    algo: str
    """One of ppo, a2c, trpo (sb3-contrib), sac, td3, ddpg, tqc (sb3-contrib)."""
    env_id: str
    """Any Gymnasium env id with a Box observation and a Box action space."""
    total_steps: int = 100_000
    """Environment steps to train for."""
    seed: int = 0
    """Seeds the algorithm, the env and torch; recorded in the artifact's manifest."""
    normalize: bool = False
    """Wrap the env in VecNormalize (observations only); the statistics are baked into the exported graph."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the SB3 algorithm, over its defaults."""
    torch_threads: int = 1
    """Small MLPs train fastest on one thread; more threads just contend with the env."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    exported: ExportedPolicy
    wall_s: float


def algo_class(algo: str) -> type:
    import sb3_contrib
    import stable_baselines3 as sb3

    classes = {
        "ppo": sb3.PPO,
        "a2c": sb3.A2C,
        "sac": sb3.SAC,
        "td3": sb3.TD3,
        "ddpg": sb3.DDPG,
        "trpo": sb3_contrib.TRPO,
        "tqc": sb3_contrib.TQC,
    }
    if algo not in classes:
        raise TrainingError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGOS)}")
    return classes[algo]


ProgressFn = Callable[[int, int, float | None], None]
"""(steps done, total steps, mean return of recent episodes or None)."""


def train(cfg: TrainConfig, runs_dir: Path, progress: ProgressFn | None = None) -> TrainResult:
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(cfg.torch_threads)
    run_dir = runs_dir / f"{cfg.env_id}__{cfg.algo}__{cfg.seed}__{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- env
    try:
        venv = make_vec_env(cfg.env_id, n_envs=1, seed=cfg.seed)
    except gym.error.Error as exc:
        raise TrainingError(f"cannot make env {cfg.env_id!r}: {exc}") from exc
    if cfg.normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True)

    # ---- algorithm
    try:
        model = algo_class(cfg.algo)(
            "MlpPolicy", venv, seed=cfg.seed, device="cpu", verbose=0, **cfg.hyperparams
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise TrainingError(
            f"cannot build {cfg.algo} for {cfg.env_id} with {cfg.hyperparams}: {exc}"
        ) from exc

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            if progress and self.num_timesteps % 200 == 0:
                infos = list(self.model.ep_info_buffer or [])
                recent = sum(i["r"] for i in infos) / len(infos) if infos else None
                progress(self.num_timesteps, cfg.total_steps, recent)
            return True

    # ---- train
    start = time.perf_counter()
    model.learn(total_timesteps=cfg.total_steps, callback=Progress())
    wall_s = time.perf_counter() - start
    if progress:
        progress(cfg.total_steps, cfg.total_steps, None)

    # ---- save and export
    checkpoint = run_dir / "model.zip"
    model.save(checkpoint)
    obs_norm = None
    if isinstance(venv, VecNormalize):
        venv.save(str(run_dir / "vecnormalize.pkl"))
        obs_norm = venv
    exported = export_model(
        model,
        obs_norm,
        env_id=cfg.env_id,
        algo=cfg.algo,
        source={
            "origin": "train",
            "run": run_dir.name,
            "total_steps": cfg.total_steps,
            "hyperparams": cfg.hyperparams,
        },
        training_seed=cfg.seed,
    )
    venv.close()
    return TrainResult(run_dir=run_dir, checkpoint=checkpoint, exported=exported, wall_s=wall_s)
