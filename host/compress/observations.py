"""Observations for compression: collected by rolling the baseline policy out in its own env.

PTSQ calibrates on them, QAT's distill mode and pruning's fine-tuning fit to the baseline's
actions on them, and every variant's action error is measured on a held-out set. What was
collected, how, and from which policy is recorded (``provenance``) in the variant's
manifest, because the study blames PTSQ's poor results on a calibration set that does not
match what the deployed policy sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from device_agent.contract.manifest import sha256_bytes
from host.errors import CompressionError, DrlcError
from host.policies.env_setup import EnvSetup

HELD_OUT_SEED = 1_000_000
"""Seeds from here on are for action-error evaluation only; calibration and training use smaller ones."""


@dataclass(frozen=True, eq=False)
class ObservationSet:
    obs: np.ndarray
    """float32 [n, obs_dim], raw (unnormalised) observations as the env returned them."""
    env_id: str
    policy_sha256: str
    seed: int
    n_episodes: int
    action_noise_std: float

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "source": "rollout",
            "env_id": self.env_id,
            "policy_sha256": self.policy_sha256,
            "seed": self.seed,
            "n_episodes": self.n_episodes,
            "n_observations": int(self.obs.shape[0]),
            "action_noise_std": self.action_noise_std,
        }


def session(data: bytes) -> Any:
    import onnxruntime as ort  # heavy: this module loads with the CLI (via variant), the session only on use

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def collect_observations(
    model_bytes: bytes,
    env_id: str | EnvSetup,
    n_episodes: int,
    seed: int,
    max_steps_per_episode: int = 1000,
    action_noise_std: float = 0.0,
) -> ObservationSet:
    """Roll the ONNX policy out (batch 1, deterministic unless ``action_noise_std`` > 0).

    :param env_id: the env, or (for a policy that needs options or wrappers) its whole setup, as
        ``EnvSetup.of(manifest)`` gives it: the rollouts must see what the device will see
    :param action_noise_std: Gaussian noise on the actions, as a fraction of the action range,
        to visit states near (not only on) the policy's own trajectories.
    """
    if n_episodes < 1:
        raise CompressionError(f"need at least one episode of observations, got {n_episodes}")
    setup = env_id if isinstance(env_id, EnvSetup) else EnvSetup(env_id)
    sess = session(model_bytes)
    try:
        env = setup.build(max_episode_steps=max_steps_per_episode)
    except DrlcError as exc:
        raise CompressionError(f"cannot build the policy's env for rollouts: {exc}") from exc
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    observations: list[np.ndarray] = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            x = np.asarray(obs, dtype=np.float32)[None]
            observations.append(x[0])
            action = sess.run(None, {"obs": x})[0][0]
            if action_noise_std > 0:
                action = np.clip(
                    action + rng.normal(0, action_noise_std, action.shape) * (high - low), low, high
                )
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return ObservationSet(
        obs=np.stack(observations).astype(np.float32),
        env_id=setup.env_id,
        policy_sha256=sha256_bytes(model_bytes),
        seed=seed,
        n_episodes=n_episodes,
        action_noise_std=action_noise_std,
    )


def actions(model_bytes: bytes, obs: np.ndarray, batch1: bool = True) -> np.ndarray:
    """The model's actions on ``obs``; one call per observation when ``batch1`` (PTDQ needs it:
    its activation ranges are computed over the whole batch, so a batched call changes the actions)."""
    sess = session(model_bytes)
    if not batch1:
        return sess.run(None, {"obs": obs})[0]
    return np.concatenate([sess.run(None, {"obs": obs[i : i + 1]})[0] for i in range(obs.shape[0])])
