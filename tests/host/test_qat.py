"""QAT: a fake-quantised actor, trained by distillation or by its own RL algorithm, exported as int8 QDQ.

Every check runs the exported graph in a real ONNX Runtime session; "int8" means ORT's optimized
graph (what the device executes) contains QGemm kernels, not only QuantizeLinear/DequantizeLinear.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from device_agent.contract.manifest import sha256_file
from device_agent.store.validation import check_model_bytes
from host.compress import make_variant, method_config
from host.compress.int8_check import integer_kernels, optimized_graph
from host.compress.observations import actions
from host.compress.qat import QATConfig, calibrate, export_quantized, fake_quant_mlp
from host.compress.torch_actor import forward_actions
from host.compress.variant import Baseline, CompressionContext
from host.errors import CompressionError
from host.policies.spec import DenseLayer, ObsNorm, PolicySpec
from host.policies.random_policies import random_policy

FAST = {"steps": 50, "rollout_episodes": 2}


def _variant(baseline: Baseline, ctx: CompressionContext | None = None, **options: object):
    variant = make_variant(baseline, "qat", method_config("qat", **options), ctx)
    check_model_bytes(variant.data)  # what the device agent accepts
    return variant


def _random_spec(
    activation: str, postprocess: str, obs_norm: bool, pre_squash_clip: float | None = None, seed: int = 0
) -> PolicySpec:
    rng = np.random.default_rng(seed)
    sizes = [11, 32, 16, 3]
    layers = tuple(
        DenseLayer(rng.normal(0, 1 / np.sqrt(i), (o, i)), rng.normal(0, 0.1, o))
        for i, o in itertools.pairwise(sizes)
    )
    norm = ObsNorm(rng.normal(0, 1, 11), rng.uniform(0.01, 4, 11), 10.0, 1e-8) if obs_norm else None
    return PolicySpec(
        layers=layers,
        activation=activation,
        postprocess=postprocess,  # type: ignore[arg-type]
        action_low=-np.ones(3),
        action_high=np.ones(3),
        obs_norm=norm,
        pre_squash_clip=pre_squash_clip,
    )


@pytest.mark.parametrize(
    ("activation", "postprocess", "obs_norm", "pre_squash_clip"),
    [
        ("relu", "tanh_rescale", False, None),
        ("tanh", "clip", True, None),
        ("elu", "tanh_rescale", True, None),
        ("relu", "tanh_rescale", False, 0.5),  # SAC/TQC with gSDE clip the mean before tanh
    ],
)
def test_qdq_graph_runs_qgemm_and_computes_what_the_fake_quant_actor_computes(
    activation: str, postprocess: str, obs_norm: bool, pre_squash_clip: float | None
) -> None:
    spec = _random_spec(activation, postprocess, obs_norm, pre_squash_clip)
    obs = np.random.default_rng(1).normal(0, 3, (512, 11)).astype(np.float32)
    obs[:8, 0] = 10.0  # values on the quantizer's half steps must round as ORT rounds them
    cfg = QATConfig()
    mlp = fake_quant_mlp(spec, calibrate(spec, obs, cfg), cfg)
    data = export_quantized(spec, [m for m in mlp if isinstance(m, torch.nn.Linear)]).SerializeToString()

    assert integer_kernels(data) == {"QGemm": 3}
    with torch.no_grad():
        expected = forward_actions(spec, mlp, torch.from_numpy(obs)).numpy()
    got = actions(data, obs, batch1=False)
    error = np.abs(got - expected)
    # Float rounding only, except where a hidden value lands within rounding error of a half step
    # and quantizes one step apart: ORT's Tanh differs from torch's in the last bits, and its fused
    # QGemm requantizes with one combined scale (measured: <= 24 of 1536 actions, max 0.009).
    assert (error > 1e-4).mean() < 0.05
    assert error.mean() < 1e-4 and error.max() < 0.05


def test_random_policy_distill_is_int8_in_ort_and_recorded() -> None:
    data, sha, _ = random_policy("Hopper-v5", hidden=(32, 32))
    baseline = Baseline.from_bytes(data)
    variant = _variant(baseline, CompressionContext(baseline, held_out_episodes=1), **FAST)

    assert integer_kernels(variant.data) == {"QGemm": 3}
    weights = {
        t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(variant.data).graph.initializer
    }
    assert all(weights[f"layers.{i}.weight.quantized"].dtype == np.int8 for i in range(3))
    assert weights["layers.0.weight.scale"].shape == (32,)  # per output channel
    assert not any(name in weights for name in ("layers.0.weight", "layers.1.weight", "layers.2.weight"))
    m = variant.manifest
    assert m.name.endswith("-qat-distill") and m.method == "qat" and m.parent_sha256 == sha
    assert m.method_params["rollout"]["seed"] == 0 and m.method_params["rollout"]["n_episodes"] == 2
    assert m.method_params["calibration"]["method"] == "minmax"
    assert m.metrics["integer_kernels"] == {"QGemm": 3} and m.metrics["distill_steps"] == 50
    assert m.metrics["fake_quant_vs_onnx_mean_abs"] < 1e-5
    assert "wall" not in " ".join(m.metrics)  # the manifest (and so the sha256) stays reproducible


def test_same_inputs_give_the_same_bytes() -> None:
    data, _, _ = random_policy("Hopper-v5", hidden=(32, 32), seed=3)
    baseline = Baseline.from_bytes(data)
    first = _variant(baseline, CompressionContext(baseline, held_out_episodes=1), **FAST)
    again = _variant(baseline, CompressionContext(baseline, held_out_episodes=1), **FAST)
    other_seed = _variant(baseline, CompressionContext(baseline, held_out_episodes=1), **FAST, seed=1)
    assert first.sha256 == again.sha256 and first.data == again.data
    assert other_seed.sha256 != first.sha256


def test_fp32_first_layer_keeps_layer_0_float() -> None:
    data, _, _ = random_policy("Hopper-v5", hidden=(32, 32))
    baseline = Baseline.from_bytes(data)
    variant = _variant(
        baseline, CompressionContext(baseline, held_out_episodes=1), **FAST, fp32_first_layer=True
    )
    weights = {
        t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(variant.data).graph.initializer
    }
    assert weights["layers.0.weight"].dtype == np.float32 and "layers.0.weight.quantized" not in weights
    assert weights["layers.1.weight.quantized"].dtype == np.int8
    ops = {node.name: node.op_type for node in optimized_graph(variant.data).graph.node}
    assert ops["layers.0.gemm"] in ("Gemm", "FusedGemm") and ops["layers.1.gemm"] == "QGemm"
    assert variant.manifest.name.endswith("-qat-fp32first-distill")
    assert variant.manifest.metrics["n_int8_layers"] == 2


def test_steps_default_per_mode() -> None:
    assert QATConfig().steps == 2000  # gradient steps
    assert QATConfig(mode="rl").steps == 50_000  # env steps
    assert QATConfig(mode="rl", steps=0).steps == 0


def test_bad_options_are_refused() -> None:
    with pytest.raises(CompressionError, match="mode must be one of distill, rl"):
        method_config("qat", mode="finetune")
    with pytest.raises(CompressionError, match="calibration must be one of"):
        method_config("qat", calibration="entropy")
    with pytest.raises(CompressionError, match="steps=-1"):
        method_config("qat", steps=-1)


def test_rl_mode_without_a_checkpoint_says_what_to_pass() -> None:
    data, _, _ = random_policy("Hopper-v5", hidden=(16,))
    baseline = Baseline.from_bytes(data)
    with pytest.raises(CompressionError, match=r"--checkpoint PATH.*--mode distill"):
        make_variant(
            baseline, "qat", QATConfig(mode="rl", **FAST), CompressionContext(baseline, held_out_episodes=1)
        )


# --------------------------------------------------------------------------------------------
# A real RL Zoo agent: training must beat the naive fake-quant export
# --------------------------------------------------------------------------------------------


@pytest.mark.zoo
def test_zoo_sac_hopper_distill_beats_naive_fake_quant(zoo_dir: Path) -> None:
    from host.policies.importer import import_checkpoint

    exported = import_checkpoint(zoo_dir / "sac" / "Hopper-v3", env_id="Hopper-v5")
    baseline = Baseline.from_bytes(exported.onnx_bytes)
    ctx = CompressionContext(baseline, held_out_episodes=2)
    options = {"rollout_episodes": 10}
    error = {}
    for name, extra in {
        "naive": {"steps": 0},
        "qat": {"steps": 400},
        "naive_fp32_first": {"steps": 0, "fp32_first_layer": True},
        "qat_fp32_first": {"steps": 400, "fp32_first_layer": True},
    }.items():
        variant = _variant(baseline, ctx, **options, **extra)
        kernels = integer_kernels(variant.data)
        assert kernels == {"QGemm": 2 if "fp32_first" in name else 3}
        error[name] = variant.manifest.metrics["action_error_mean_abs"]
    # measured (held-out mean |Δa|): naive 0.16, QAT 0.11; fp32 first layer: 0.032 -> 0.023
    assert error["qat"] < 0.9 * error["naive"]
    assert error["qat_fp32_first"] < 0.9 * error["naive_fp32_first"]
    assert error["naive_fp32_first"] < error["naive"] / 2
    assert error["qat_fp32_first"] < 0.05


# --------------------------------------------------------------------------------------------
# rl mode: the policy's own algorithm continues training with fake quantization in the actor
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def td3_pendulum(tmp_path_factory: pytest.TempPathFactory) -> tuple[Baseline, Path]:
    """A TD3 policy trained for a few hundred steps, saved and exported as a drlc baseline."""
    from stable_baselines3 import TD3

    from host.policies.importer import export_model

    torch.set_num_threads(1)
    model = TD3(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        device="cpu",
        learning_starts=100,
        batch_size=64,
        policy_kwargs={"net_arch": [32, 32]},
    )
    model.learn(300)
    path = tmp_path_factory.mktemp("td3") / "td3_pendulum.zip"
    model.save(path)
    exported = export_model(model, None, env_id="Pendulum-v1", algo="td3")
    return Baseline.from_bytes(exported.onnx_bytes, checkpoint=path), path


def test_rl_mode_continues_td3_training_and_exports_int8(td3_pendulum: tuple[Baseline, Path]) -> None:
    baseline, path = td3_pendulum
    ctx = CompressionContext(baseline, held_out_episodes=1)
    untrained = _variant(baseline, ctx, mode="rl", steps=0, rollout_episodes=1)
    variant = _variant(baseline, ctx, mode="rl", steps=300, rollout_episodes=1)

    assert integer_kernels(variant.data) == {"QGemm": 3}
    m = variant.manifest
    assert m.name.endswith("-qat-rl") and m.method_params["algo"] == "td3"
    assert m.method_params["checkpoint_sha256"] == sha256_file(path)
    assert m.method_params["replay_warmup_steps"] == 64 and m.method_params["action_noise_std"] == 0.1
    assert m.metrics["rl_env_steps"] == 300 and m.metrics["rl_episodes"] >= 1
    assert variant.sha256 != untrained.sha256  # the actor did train
    # the caller's global RNG is left as it was: SB3 seeds it, QAT restores it
    state = torch.get_rng_state()
    _variant(baseline, ctx, mode="rl", steps=0, rollout_episodes=1)
    assert torch.equal(state, torch.get_rng_state())


def test_rl_mode_refuses_a_checkpoint_that_is_not_the_baselines(
    td3_pendulum: tuple[Baseline, Path], tmp_path: Path
) -> None:
    from stable_baselines3 import TD3

    baseline, _ = td3_pendulum
    other = tmp_path / "other.zip"
    TD3("MlpPolicy", "Pendulum-v1", seed=1, device="cpu", policy_kwargs={"net_arch": [32, 32]}).save(other)
    wrong = dataclasses.replace(baseline, checkpoint=other)
    with pytest.raises(CompressionError, match="not the checkpoint this baseline was exported from"):
        make_variant(wrong, "qat", QATConfig(mode="rl", steps=0, rollout_episodes=1))
