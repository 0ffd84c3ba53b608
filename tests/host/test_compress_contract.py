"""Every compression method on every shared zoo agent and on freshly trained TD3 and DDPG policies:
each variant is an ordinary drlc artifact the agent accepts and ONNX Runtime runs at batch 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_agent.store.validation import check_model_bytes
from host.compress import METHODS, make_variant, method_config
from host.compress.observations import actions
from host.compress.variant import Baseline, CompressionContext
from host.policies.importer import import_checkpoint
from host.training.run import TrainConfig, train
from tests.conftest import ZOO_AGENTS

# Small budgets: the contract is about what each method produces, not how well it trains.
FAST_OPTIONS = {
    "ptdq": {},
    "ptsq": {"calibration_episodes": 2},
    "qat": {"steps": 100, "rollout_episodes": 2},
    "l1": {"ratio": 0.3},
    "l2": {"ratio": 0.3},
}


def check_variant(baseline: Baseline, method: str, ctx: CompressionContext) -> None:
    variant = make_variant(baseline, method, method_config(method, **FAST_OPTIONS[method]), ctx)
    manifest = check_model_bytes(variant.data)  # what the agent itself will check on upload
    assert manifest.method == method and manifest.parent_sha256 == baseline.sha256
    assert manifest.env_id == baseline.manifest.env_id and manifest.algo == baseline.manifest.algo
    obs = ctx.held_out.obs[:50]
    got = actions(variant.data, obs)
    assert got.shape == (len(obs), baseline.spec.act_dim) and np.isfinite(got).all()
    low, high = np.array(manifest.action_low), np.array(manifest.action_high)
    assert (got >= low - 1e-6).all() and (got <= high + 1e-6).all()
    assert manifest.metrics["action_error_max_abs"] >= manifest.metrics["action_error_mean_abs"] >= 0
    if method in ("l1", "l2"):
        assert manifest.n_params < baseline.manifest.n_params
    else:
        assert len(variant.data) < len(baseline.data)  # int8 weights


@pytest.mark.zoo
@pytest.mark.parametrize(("algo", "folder"), ZOO_AGENTS)
def test_every_method_on_every_zoo_agent(zoo_dir: Path, algo: str, folder: str) -> None:
    exported = import_checkpoint(zoo_dir / algo / folder, env_id=folder.replace("-v3", "-v5"))
    baseline = Baseline.from_bytes(exported.onnx_bytes)
    ctx = CompressionContext(baseline, held_out_episodes=1)
    for method in METHODS:
        check_variant(baseline, method, ctx)


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_every_method_on_a_freshly_trained_policy(tmp_path: Path, algo: str) -> None:
    result = train(
        TrainConfig(algo=algo, env_id="Hopper-v5", total_steps=300, hyperparams={"learning_starts": 100}),
        tmp_path,
    )
    baseline = Baseline.from_bytes(result.exported.onnx_bytes, checkpoint=result.checkpoint)
    ctx = CompressionContext(baseline, held_out_episodes=1)
    for method in METHODS:
        check_variant(baseline, method, ctx)
