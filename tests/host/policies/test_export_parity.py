"""Every shared RL Zoo agent exports to an ONNX graph that acts exactly like the SB3 model.

The zoo agents are SB3 1.x checkpoints trained on ``-v3`` MuJoCo envs under the old ``gym``; they
are imported for ``-v5`` and compared on observations from a real rollout of the SB3 policy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from device_agent.contract.manifest import ArtifactManifest, sha256_bytes
from device_agent.store.validation import check_model_bytes
from host.policies.importer import import_checkpoint
from host.policies.onnx_builder import read_manifest
from host.policies.sb3.loader import load_checkpoint
from host.policies.sb3.vecnormalize import read_vecnormalize
from host.policies.spec import ObsNorm
from tests.conftest import ZOO_AGENTS

pytestmark = pytest.mark.zoo

N_OBS = 1000
ATOL = 1e-5
ROLLOUT_SEED = 123
# What the zoo README says about the actors.
EXPECTED_ACTOR = {
    "ppo": ([256, 256], "relu", "clip", True),
    "trpo": ([64, 64], "tanh", "clip", True),
    "sac": ([256, 256], "relu", "tanh_rescale", False),
}


def v5(folder: str) -> str:
    return folder.rsplit("-v", 1)[0] + "-v5"


def zoo_vec_normalize(env_id: str, stats: ObsNorm) -> VecNormalize:
    """A real SB3 VecNormalize holding the zoo statistics, frozen, as the zoo evaluates with."""
    venv = VecNormalize(
        DummyVecEnv([lambda: gym.make(env_id)]),
        training=False,
        norm_obs=True,
        norm_reward=False,
        clip_obs=stats.clip_obs,
        epsilon=stats.epsilon,
    )
    venv.obs_rms.mean = stats.mean.copy()
    venv.obs_rms.var = stats.var.copy()
    return venv


def rollout(model, env_id: str, normalizer: VecNormalize | None) -> tuple[np.ndarray, np.ndarray]:
    """``N_OBS`` raw observations from a seeded rollout of the SB3 policy, with its actions for them."""
    env = gym.make(env_id)
    raw, actions = [], []
    obs, _ = env.reset(seed=ROLLOUT_SEED)
    while len(raw) < N_OBS:
        seen = normalizer.normalize_obs(obs) if normalizer is not None else obs
        action, _ = model.predict(seen, deterministic=True)
        raw.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(raw), np.asarray(actions)


@pytest.mark.parametrize(("algo", "folder"), ZOO_AGENTS)
def test_zoo_agent_onnx_matches_sb3(zoo_dir: Path, algo: str, folder: str) -> None:
    checkpoint = zoo_dir / algo / folder / f"{folder}.zip"
    env_id = v5(folder)

    exported = import_checkpoint(checkpoint)

    manifest = exported.manifest
    assert manifest.env_id == env_id
    assert any(folder in note and env_id in note for note in exported.notes)
    assert manifest.name == f"{algo}-{env_id}"
    assert manifest.algo == algo
    assert manifest.method == "baseline"
    hidden, activation, postprocess, normalised = EXPECTED_ACTOR[algo]
    assert (manifest.hidden_sizes, manifest.activation, manifest.action_postprocess) == (
        hidden,
        activation,
        postprocess,
    )
    assert (manifest.obs_normalization is not None) == normalised
    assert manifest.source["origin"] == "import"
    assert manifest.source["checkpoint_name"] == checkpoint.name
    assert manifest.source["checkpoint_sha256"] == sha256_bytes(checkpoint.read_bytes())
    assert manifest.training_seed is not None
    assert str(zoo_dir) not in manifest.to_json()  # no host paths in the passport

    loaded = load_checkpoint(checkpoint, env_id=env_id)
    normalizer = zoo_vec_normalize(env_id, loaded.obs_norm) if loaded.obs_norm is not None else None
    raw_obs, sb3_actions = rollout(loaded.model, env_id, normalizer)
    assert raw_obs.shape == (N_OBS, *manifest.observation_shape)

    session = ort.InferenceSession(exported.onnx_bytes, providers=["CPUExecutionProvider"])
    batch_actions = session.run(["action"], {"obs": raw_obs.astype(np.float32)})[0]
    assert batch_actions.shape == (N_OBS, *manifest.action_shape)
    max_error = float(np.max(np.abs(batch_actions - sb3_actions)))
    print(f"{algo}/{folder} -> {env_id}: max |onnx - sb3| over {N_OBS} obs = {max_error:.3g}")
    np.testing.assert_allclose(batch_actions, sb3_actions, rtol=0, atol=ATOL)
    for i in (0, 1, N_OBS // 2, N_OBS - 1):
        single = session.run(["action"], {"obs": raw_obs[i : i + 1].astype(np.float32)})[0]
        np.testing.assert_allclose(single[0], sb3_actions[i], rtol=0, atol=ATOL)

    # The passport round-trips, and the same checkpoint gives the same bytes.
    assert read_manifest(exported.onnx_bytes) == manifest
    assert ArtifactManifest.from_json(manifest.to_json()) == manifest
    again = import_checkpoint(checkpoint.parent, verify=False)  # the zoo run folder resolves to the same zip
    assert again.onnx_bytes == exported.onnx_bytes
    assert again.sha256 == exported.sha256 == sha256_bytes(exported.onnx_bytes)
    onnx.checker.check_model(onnx.load_from_string(exported.onnx_bytes), full_check=True)
    assert check_model_bytes(exported.onnx_bytes) == manifest  # what the device agent accepts


@pytest.mark.parametrize(("algo", "folder"), [a for a in ZOO_AGENTS if a[0] in ("ppo", "trpo")])
def test_zoo_vecnormalize_read_without_gym(zoo_dir: Path, algo: str, folder: str) -> None:
    stats = read_vecnormalize(zoo_dir / algo / folder / folder / "vecnormalize.pkl")
    assert stats is not None
    obs_dim = gym.make(v5(folder)).observation_space.shape[0]
    assert stats.mean.shape == stats.var.shape == (obs_dim,)
    assert stats.clip_obs == 10.0
    assert stats.epsilon == pytest.approx(1e-8)
    assert np.all(stats.var > 0)
    assert "gym" not in sys.modules  # the old package was never needed (nor imported)
