"""PTDQ and PTSQ: real int8 graphs that ONNX Runtime runs with integer kernels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from device_agent.store.validation import check_model_bytes
from host.compress import make_variant, method_config
from host.compress.int8_check import INTEGER_OP_TYPES, integer_kernels, op_type_counts, optimized_graph
from host.compress.observations import session
from host.compress.quantize import PTSQConfig, calibrate, range_values
from host.compress.variant import Baseline, CompressionContext
from host.errors import CompressionError
from host.policies.onnx_builder import build_onnx
from host.policies.spec import ObsNorm
from host.policies.random_policies import random_policy

#: Small and fast: Hopper episodes of a random policy end after a few dozen steps.
FAST_PTSQ = {"calibration_episodes": 3, "histogram_bins": 512}


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    data, _, _ = random_policy("Hopper-v5", hidden=(32, 16))
    return Baseline.from_bytes(data)


@pytest.fixture(scope="module")
def ctx(baseline: Baseline) -> CompressionContext:
    return CompressionContext(baseline, held_out_episodes=1)


@pytest.fixture(scope="module")
def normalized_baseline() -> Baseline:
    """A policy with VecNormalize statistics and clip post-processing (PPO-like)."""
    data, _, manifest = random_policy("Hopper-v5", hidden=(32, 16), seed=1)
    spec = Baseline.from_bytes(data).spec
    rng = np.random.default_rng(1)
    norm = ObsNorm(
        mean=rng.normal(0, 1, spec.obs_dim),
        var=rng.uniform(0.01, 4, spec.obs_dim),
        clip_obs=10.0,
        epsilon=1e-8,
    )
    spec = spec.replace(obs_norm=norm, postprocess="clip")
    manifest = manifest.model_copy(
        update={"name": "normalized", "obs_normalization": norm.to_manifest(), "action_postprocess": "clip"}
    )
    return Baseline.from_bytes(build_onnx(spec, manifest))


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _run_batch1(data: bytes, obs_dim: int) -> np.ndarray:
    obs = np.random.default_rng(0).normal(size=(1, obs_dim)).astype(np.float32)
    return session(data).run(None, {"obs": obs})[0]


# --------------------------------------------------------------------------------------------- PTDQ


def test_ptdq_runs_integer_kernels(baseline: Baseline, ctx: CompressionContext) -> None:
    variant = make_variant(baseline, "ptdq", method_config("ptdq"), ctx)
    model = onnx.load_from_string(variant.data)
    in_file = op_type_counts(model)
    # the file holds ORT's dynamic-quantization recipe, with int8 weights
    assert in_file["MatMulInteger"] == 3 and in_file["DynamicQuantizeLinear"] == 3
    weights = _initializers(model)
    for i in range(3):
        assert f"layers.{i}.weight" not in weights
        assert weights[f"layers.{i}.weight_quantized"].dtype == np.int8
    # ... and the session ORT builds really computes in integers (fused or not)
    kernels = integer_kernels(variant.data)
    assert kernels.get("DynamicQuantizeMatMul", 0) + kernels.get("MatMulInteger", 0) == 3
    assert variant.manifest.metrics["integer_kernels"] == kernels
    assert variant.manifest.metrics["n_quantized_layers"] == 3
    assert variant.manifest.metrics["cpu_flags"] is not None
    assert variant.manifest.hidden_sizes == baseline.manifest.hidden_sizes
    assert variant.manifest.n_params == baseline.manifest.n_params


def test_ptdq_fp32_first_layer_keeps_layer0_in_fp32(baseline: Baseline, ctx: CompressionContext) -> None:
    variant = make_variant(baseline, "ptdq", method_config("ptdq", fp32_first_layer=True), ctx)
    assert variant.manifest.name.endswith("-ptdq-fp32first")
    model = onnx.load_from_string(variant.data)
    weights = _initializers(model)
    assert weights["layers.0.weight"].dtype == np.float32
    assert "layers.0.weight_quantized" not in weights
    # the raw observations go straight into an fp32 MatMul
    (consumer,) = [n for n in model.graph.node if "obs" in n.input]
    assert (consumer.name, consumer.op_type) == ("layers.0.matmul", "MatMul")
    kernels = integer_kernels(variant.data)
    assert sum(kernels.values()) == 2 and variant.manifest.metrics["fp32_layers"] == [0]
    optimized = optimized_graph(variant.data)
    touching_layer0 = [
        n.op_type
        for n in optimized.graph.node
        if n.op_type in INTEGER_OP_TYPES and any(x in ("obs", "layers.0.weight") for x in n.input)
    ]
    assert touching_layer0 == []


@pytest.mark.parametrize("per_channel", [False, True])
def test_ptdq_options_are_recorded(baseline: Baseline, ctx: CompressionContext, per_channel: bool) -> None:
    cfg = method_config("ptdq", per_channel=per_channel, reduce_range=True)
    variant = make_variant(baseline, "ptdq", cfg, ctx)
    params = variant.manifest.method_params
    assert params["per_channel"] is per_channel and params["reduce_range"] is True
    assert params["fp32_first_layer"] is False and params["weight_type"] == "int8"
    scale = _initializers(onnx.load_from_string(variant.data))["layers.0.weight_scale"]
    assert scale.size == (32 if per_channel else 1)


# --------------------------------------------------------------------------------------------- PTSQ


@pytest.mark.parametrize("quant_format", ["qdq", "qoperator"])
def test_ptsq_runs_integer_kernels(baseline: Baseline, ctx: CompressionContext, quant_format: str) -> None:
    cfg = method_config("ptsq", quant_format=quant_format, **FAST_PTSQ)
    variant = make_variant(baseline, "ptsq", cfg, ctx)
    in_file = op_type_counts(variant.data)
    if quant_format == "qdq":  # a recipe: Q/DQ pairs around fp32 Gemms, fused by ORT at load
        assert in_file["Gemm"] == 3 and in_file["DequantizeLinear"] >= 3
    else:
        assert in_file["QGemm"] == 3 and "Gemm" not in in_file
    assert integer_kernels(variant.data) == {"QGemm": 3}
    assert variant.manifest.metrics["integer_kernels"] == {"QGemm": 3}
    assert variant.manifest.method_params["quant_format"] == quant_format
    assert variant.manifest.metrics["action_error_mean_abs"] < 0.5


@pytest.mark.parametrize("activation", ["silu", "gelu", "tanh"])
def test_ptsq_fuses_every_layer_whatever_the_activation(activation: str) -> None:
    """silu and gelu feed a layer's output to two nodes; with int8 activations ORT (x86) left
    those layers as fp32 Gemms between Q/DQ pairs, with uint8 (the default) it fuses all."""
    data, _, manifest = random_policy("Hopper-v5", hidden=(32, 16))
    spec = Baseline.from_bytes(data).spec.replace(activation=activation, activation_params={})
    baseline = Baseline.from_bytes(build_onnx(spec, manifest.model_copy(update={"activation": activation})))
    ctx = CompressionContext(baseline, held_out_episodes=1)
    variant = make_variant(baseline, "ptsq", method_config("ptsq", **FAST_PTSQ), ctx)
    assert integer_kernels(variant.data) == {"QGemm": 3}


def test_ptsq_fp32_first_layer_keeps_layer0_in_fp32(baseline: Baseline, ctx: CompressionContext) -> None:
    cfg = method_config("ptsq", fp32_first_layer=True, **FAST_PTSQ)
    variant = make_variant(baseline, "ptsq", cfg, ctx)
    model = onnx.load_from_string(variant.data)
    weights = _initializers(model)
    assert weights["layers.0.weight"].dtype == np.float32
    producers = _producers(model)
    gemm0 = next(n for n in model.graph.node if n.name == "layers.0.gemm")
    assert gemm0.op_type == "Gemm" and gemm0.input[0] == "obs"
    assert all(x not in producers or producers[x].op_type != "DequantizeLinear" for x in gemm0.input)
    assert integer_kernels(variant.data) == {"QGemm": 2}
    optimized = optimized_graph(variant.data)
    assert not [n for n in optimized.graph.node if n.op_type == "QGemm" and "obs" in n.input]


def test_ptsq_records_calibration_provenance(baseline: Baseline, ctx: CompressionContext) -> None:
    cfg = method_config(
        "ptsq", calibration_method="percentile", percentile=99.9, calibration_seed=5, **FAST_PTSQ
    )
    variant = make_variant(baseline, "ptsq", cfg, ctx)
    params = variant.manifest.method_params
    assert params["calibration"] == {"method": "percentile", "histogram_bins": 512, "percentile": 99.9}
    assert params["calibration_data"] == ctx.rollout(3, seed=5).provenance
    assert params["calibration_data"]["policy_sha256"] == baseline.sha256
    assert params["calibration_data"]["seed"] == 5
    ranges = variant.manifest.metrics["calibration_ranges"]
    assert set(ranges) >= {"obs", "layers.0.gemm", "layers.2.gemm"}
    assert all(lo <= hi for lo, hi in ranges.values())


def test_calibration_methods_compute_different_ranges(baseline: Baseline, ctx: CompressionContext) -> None:
    """Each method really does what it says: entropy and percentile clip outliers minmax keeps."""
    fp32 = onnx.load_from_string(build_onnx(baseline.spec))
    obs = ctx.rollout(3).obs
    ranges = {
        method: range_values(
            calibrate(
                fp32,
                obs,
                PTSQConfig(calibration_method=method, histogram_bins=512, percentile=99.0),
                ["Gemm", "Relu"],
            )
        )
        for method in ("minmax", "entropy", "percentile")
    }
    minmax = ranges["minmax"]
    assert minmax["obs"] == pytest.approx((float(obs.min()), float(obs.max())))
    for method in ("entropy", "percentile"):
        assert ranges[method].keys() == minmax.keys()
        narrower = [
            name
            for name, (lo, hi) in ranges[method].items()
            if hi - lo < 0.99 * (minmax[name][1] - minmax[name][0])
        ]
        assert narrower, f"{method} gave the minmax ranges"
        # never wider than what was seen
        assert all(
            lo >= minmax[n][0] - 1e-6 and hi <= minmax[n][1] + 1e-6 for n, (lo, hi) in ranges[method].items()
        )


def test_onnxruntime_default_entropy_calibration_is_minmax(
    baseline: Baseline, ctx: CompressionContext
) -> None:
    """Why drlc configures the calibrator itself: with the bins quantize_static uses (128/128) ORT's
    Entropy calibration returns the MinMax ranges. If this starts failing, ORT fixed it."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    obs = ctx.rollout(3).obs

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"obs": obs}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(onnx.load_from_string(build_onnx(baseline.spec)), f"{tmp}/m.onnx")
        calibrator = create_calibrator(
            Path(f"{tmp}/m.onnx"), ["Gemm", "Relu"], f"{tmp}/aug.onnx", CalibrationMethod.Entropy
        )
        calibrator.collect_data(Reader())
        ort_entropy = range_values(calibrator.compute_data())
        del calibrator
    ours = range_values(
        calibrate(onnx.load_from_string(build_onnx(baseline.spec)), obs, PTSQConfig(), ["Gemm", "Relu"])
    )
    assert ort_entropy.keys() == ours.keys()
    assert all(ort_entropy[name] == pytest.approx(ours[name]) for name in ours)


def test_calibration_method_changes_the_quantized_model(baseline: Baseline, ctx: CompressionContext) -> None:
    scales = {}
    for method in ("minmax", "entropy"):
        cfg = method_config("ptsq", calibration_method=method, **FAST_PTSQ)
        model = onnx.load_from_string(make_variant(baseline, "ptsq", cfg, ctx).data)
        scales[method] = {
            name: value
            for name, value in _initializers(model).items()
            if name.endswith("_scale") and "weight" not in name
        }
    assert scales["minmax"].keys() == scales["entropy"].keys()
    assert any(not np.array_equal(scales["minmax"][k], scales["entropy"][k]) for k in scales["minmax"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"calibration_method": "kl"},
            "calibration_method 'kl' is not known; use one of minmax, entropy, percentile",
        ),
        ({"quant_format": "qop"}, "quant_format 'qop' is not known"),
        ({"percentile": 120.0}, "percentile must be in"),
        ({"calibration_episodes": 0}, "calibration_episodes must be >= 1"),
        ({"histogram_bins": 128}, "histogram_bins must be >= 256"),
        ({"activation_type": "int4"}, "activation_type 'int4' is not known"),
    ],
)
def test_bad_ptsq_options_are_refused(
    baseline: Baseline, ctx: CompressionContext, options: dict, match: str
) -> None:
    with pytest.raises(CompressionError, match=match):
        make_variant(baseline, "ptsq", method_config("ptsq", **options), ctx)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(
        CompressionError, match=r"ptdq takes no --calibration-method \(that is an option of ptsq\)"
    ):
        method_config("ptdq", calibration_method="minmax")


# --------------------------------------------------------------------------------------------- both


@pytest.mark.parametrize(
    ("method", "options"), [("ptdq", {}), ("ptsq", {**FAST_PTSQ, "calibration_method": "entropy"})]
)
def test_same_baseline_and_config_give_the_same_bytes(baseline: Baseline, method: str, options: dict) -> None:
    cfg = method_config(method, **options)
    # fresh contexts: the calibration rollouts are collected again, not reused
    first = make_variant(baseline, method, cfg, CompressionContext(baseline, held_out_episodes=1))
    second = make_variant(baseline, method, cfg, CompressionContext(baseline, held_out_episodes=1))
    assert first.data == second.data


@pytest.mark.parametrize(("method", "options"), [("ptdq", {}), ("ptsq", FAST_PTSQ)])
def test_normalisation_and_postprocessing_stay_fp32(
    normalized_baseline: Baseline, method: str, options: dict
) -> None:
    ctx = CompressionContext(normalized_baseline, held_out_episodes=1)
    variant = make_variant(normalized_baseline, method, method_config(method, **options), ctx)
    base = onnx.load_from_string(normalized_baseline.data)
    model = onnx.load_from_string(variant.data)
    base_consts, consts = _initializers(base), _initializers(model)
    nodes = {n.name: n for n in model.graph.node}
    kept = [n for n in base.graph.node if n.name.startswith(("obs_norm.", "action."))]
    assert {n.name for n in kept} >= {"obs_norm.sub", "obs_norm.mul", "obs_norm.clip", "action.clip"}
    for node in kept:
        assert nodes[node.name].op_type == node.op_type
        for name in node.input:
            if name in base_consts:  # the same fp32 constants, not quantized ones
                assert consts[name].dtype == np.float32 and np.array_equal(consts[name], base_consts[name])
    assert nodes["obs_norm.sub"].input[0] == "obs"
    assert model.graph.output[0].name == "action" and nodes["action.clip"].output[0] == "action"
    assert variant.manifest.metrics["action_error_max_abs"] < 0.5


@pytest.mark.parametrize("method", ["ptdq", "ptsq"])
def test_variant_passes_the_agents_validator_and_runs_at_batch_1(
    baseline: Baseline, ctx: CompressionContext, method: str
) -> None:
    options = FAST_PTSQ if method == "ptsq" else {}
    variant = make_variant(baseline, method, method_config(method, **options), ctx)
    manifest = check_model_bytes(variant.data)
    assert manifest.method == method and manifest.parent_sha256 == baseline.sha256
    model = onnx.load_from_string(variant.data)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", baseline.spec.obs_dim]
    action = _run_batch1(variant.data, baseline.spec.obs_dim)
    assert action.shape == (1, baseline.spec.act_dim) and np.isfinite(action).all()


# --------------------------------------------------------------------------------------------- zoo


def test_zoo_sac_fp32_first_layer_reduces_the_int8_error(zoo_dir) -> None:
    """SAC HalfCheetah has no observation normalisation: raw observations span about ±25 with
    small features beside large ones, and int8 on the first layer rounds the small ones away."""
    from host.policies.importer import import_checkpoint

    exported = import_checkpoint(zoo_dir / "sac" / "HalfCheetah-v3", env_id="HalfCheetah-v5")
    baseline = Baseline.from_bytes(exported.onnx_bytes)
    ctx = CompressionContext(baseline, held_out_episodes=1)
    errors = {}
    for method, options in [("ptdq", {}), ("ptsq", {"calibration_episodes": 2})]:
        for fp32_first in (False, True):
            cfg = method_config(method, fp32_first_layer=fp32_first, **options)
            variant = make_variant(baseline, method, cfg, ctx)
            errors[method, fp32_first] = variant.manifest.metrics["action_error_mean_abs"]
            assert sum(variant.manifest.metrics["integer_kernels"].values()) == (2 if fp32_first else 3)
            check_model_bytes(variant.data)
            assert len(variant.data) < 0.5 * len(baseline.data)  # int8 weights: about a quarter
            assert _run_batch1(variant.data, baseline.spec.obs_dim).shape == (1, 6)
    # measured: ptdq 0.26 -> 0.07, ptsq 0.17 -> 0.04 (3 held-out episodes)
    for method in ("ptdq", "ptsq"):
        assert errors[method, True] < 0.6 * errors[method, False], errors
