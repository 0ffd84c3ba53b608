"""A checkpoint's reference return: its own evaluation in the env it will run in.

A published figure (the RL Zoo's benchmark) was measured in another env version, sometimes with
another simulator (mujoco-py): the zoo's TQC Hopper-v3 agent published 3754 ± 8 but gives
3273 ± 499 under Stable-Baselines3's own ``predict`` in Gymnasium's Hopper-v5. What drlc's
measurement should be compared with is the source library's deterministic ``predict`` in the
same env (options, observation wrappers, observation normalisation) on the same seeds the
agent uses (episode ``i`` reset with ``seed + i``); the published figure is shown beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.policies.algorithms import algorithm
from host.policies.env_setup import EnvSetup
from host.policies.sb3.loader import LoadedCheckpoint

PUBLISHED_RETURNS_FILE = "reference_returns.csv"
#: The agent's default time limit; the reference runs episodes as long as the device does.
DEFAULT_MAX_STEPS = 1000


@dataclass(frozen=True)
class PublishedReturn:
    """A return someone published for ``algo`` on ``env_id`` (e.g. the RL Zoo's benchmark.md)."""

    algo: str
    env_id: str
    mean: float
    std: float
    n_episodes: int | None
    source: str


@dataclass(frozen=True)
class ReferenceReturn:
    """The checkpoint's own deterministic returns, one per seed, in ``env``."""

    env: str
    seeds: tuple[int, ...]
    returns: tuple[float, ...]
    library: str

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns, ddof=1)) if len(self.returns) > 1 else 0.0

    def describe(self) -> str:
        return (
            f"{self.mean:.1f} ± {self.std:.1f} ({self.library} predict, deterministic, "
            f"{len(self.returns)} episodes, seeds {self.seeds[0]}-{self.seeds[-1]}, in {self.env})"
        )


def evaluate_checkpoint(
    loaded: LoadedCheckpoint, n_episodes: int, seed: int = 0, max_steps: int = DEFAULT_MAX_STEPS
) -> ReferenceReturn:
    """Run ``loaded.model.predict(deterministic=True)`` for ``n_episodes`` in the env drlc exports it for.

    Observations are normalised with the checkpoint's VecNormalize statistics in float64, as
    VecNormalize hands them to the model; rewards are the env's raw ones, as the agent sums them.
    """
    setup = EnvSetup(loaded.env_id, dict(loaded.env_kwargs), loaded.obs_wrappers)
    env = setup.build(max_episode_steps=max_steps)
    seeds = tuple(seed + i for i in range(n_episodes))
    returns = []
    try:
        for episode_seed in seeds:
            obs, _ = env.reset(seed=episode_seed)
            total, done = 0.0, False
            while not done:
                x = np.asarray(obs, dtype=np.float64)[None]
                if loaded.obs_norm is not None:
                    x = loaded.obs_norm.normalize(x)
                action, _ = loaded.model.predict(x, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action[0])
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return ReferenceReturn(setup.describe(), seeds, tuple(returns), algorithm(loaded.algo).library)


def find_published_returns(checkpoint: Path) -> Path | None:
    """The ``reference_returns.csv`` of the zoo checkout ``checkpoint`` lies in, if any.

    Looked for in the checkpoint's ancestors, and beside them in a ``zoo/`` folder (the shared
    ``zoo-extra/`` keeps its published figures in ``../zoo/``).
    """
    for folder in checkpoint.resolve().parents:
        for candidate in (folder / PUBLISHED_RETURNS_FILE, folder / "zoo" / PUBLISHED_RETURNS_FILE):
            if candidate.is_file():
                return candidate
    return None


def published_return(csv_path: Path, algo: str, env_id: str) -> PublishedReturn | None:
    """The published return for ``(algo, env_id)`` in a ``reference_returns.csv``, if it has one."""
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("algo") == algo and row.get("env_id") == env_id:
                n = row.get("n_eval_episodes")
                return PublishedReturn(
                    algo=algo,
                    env_id=env_id,
                    mean=float(row["mean_return"]),
                    std=float(row["std_return"]),
                    n_episodes=int(n) if n and n.isdigit() else None,
                    source=row.get("source_file") or csv_path.name,
                )
    return None


def within_noise(
    measured: list[float], reference: ReferenceReturn, z: float = 3.0, floor: float = 0.02
) -> bool:
    """Whether a measured mean return agrees with the reference's, given both samples' spread.

    ``|mean difference| <= z * sqrt(s1²/n1 + s2²/n2)``, or ``floor`` of the reference's magnitude,
    whichever is wider: the same seeds give nearly the same episodes, but float32 against float64
    maths can tip a chaotic episode (a fall) one way or the other.
    """
    m = np.asarray(measured, dtype=float)
    var = float(np.var(m, ddof=1)) if len(m) > 1 else 0.0  # one episode: only the floor applies
    spread = math.sqrt(var / len(m) + reference.std**2 / len(reference.returns))
    bound = max(z * spread, floor * abs(reference.mean))
    return abs(float(m.mean()) - reference.mean) <= bound


def reference_path(artifact: Path) -> Path:
    """Where the reference of the artifact at ``artifact`` is kept: beside it, ``<artifact>.reference.json``."""
    return artifact.with_name(artifact.name + ".reference.json")


def write_reference(artifact: Path, reference: ReferenceReturn, published: PublishedReturn | None) -> Path:
    """Keep the reference (and the published figure) beside the artifact, for later comparisons."""
    data = {
        "reference": dataclasses.asdict(reference),
        "published": dataclasses.asdict(published) if published else None,
    }
    data["reference"].update(mean=reference.mean, std=reference.std)
    path = reference_path(Path(artifact))
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
