"""Post-training int8 quantization with ONNX Runtime's own tools: PTDQ and PTSQ.

- **PTDQ** (:func:`compress_ptdq`): ``onnxruntime.quantization.quantize_dynamic``. Weights are
  stored as int8; activations are quantized at run time (``DynamicQuantizeLinear``, uint8) from
  the range of the batch being evaluated, and the products run as ``MatMulInteger`` (ORT fuses
  the chain into ``DynamicQuantizeMatMul``). Because the range is the batch's, a PTDQ policy's
  action depends on what else is in the batch: evaluate it at batch 1, as it is deployed.
- **PTSQ** (:func:`compress_ptsq`): ``onnxruntime.quantization.quantize_static``, QDQ format by
  default, with activation ranges calibrated on observations collected by rolling the baseline
  policy out in its env (:meth:`CompressionContext.rollout`), uint8 activations by default.
  ORT fuses the QDQ pairs around each Gemm into ``QGemm`` at session creation.

Only the dense layers are quantized: observation normalisation (``obs_norm.*``) and action
post-processing (``action.*``) stay fp32 arithmetic, exactly as in the baseline, so the variant
differs from its baseline by int8 rounding and nothing else. ``fp32_first_layer`` also keeps
layer 0 in fp32: raw observations mix features of very different scales (Hopper: velocities
around ±6, angles around ±0.1), and one per-tensor int8 range for all of them rounds the small
ones away (issue #3).

Calibration is run by drlc, not by ``quantize_static``: its Entropy method is configured with
128 histogram bins and 128 quantized bins, which leaves the KL search a single candidate, the
full range, so "entropy" silently returns the MinMax ranges (onnxruntime 1.32,
``calibrate.create_calibrator``), and ``quantize_static`` has no option to change the bins.
:func:`calibrate` builds ORT's calibrator itself with a real histogram, and the ranges it
computes reach ``quantize_static`` through its calibration cache.

Both methods return one self-contained ONNX file (no external data), with the same ``obs`` /
``action`` names and dynamic batch axis as the baseline, and the same bytes for the same
baseline and config.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

import host
from device_agent.contract.platform_facts import cpu_model_and_flags
from host.compress.int8_check import integer_kernels
from host.compress.variant import Baseline, CompressionContext, MethodOutput
from host.errors import CompressionError
from host.policies.onnx_builder import build_onnx
from host.policies.spec import PolicySpec

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_FORMATS = ("qdq", "qoperator")
ACTIVATION_TYPES = ("uint8", "int8")
#: Quantized bins of the Entropy (KL) search: ORT's and TensorRT's default.
ENTROPY_QUANTIZED_BINS = 128
#: ORT kernels that compute one dense layer in integers (fused or not).
LAYER_KERNELS = frozenset(
    {"QGemm", "QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
)
#: Hidden activations the static quantizer may fold into the preceding layer's output range.
_FOLDABLE_ACTIVATIONS = ("Relu",)


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PTDQConfig:
    """Post-training dynamic quantization (``quantize_dynamic``): int8 weights, uint8 activations
    quantized per call from the batch's own range."""

    fp32_first_layer: bool = False
    """Keep the first dense layer in fp32, so raw observations are never rounded to int8."""
    per_channel: bool = False
    """One weight scale per output neuron instead of one per layer (ORT's default: per layer)."""
    reduce_range: bool = False
    """7-bit weights, for x86 CPUs without VNNI whose u8*s8 kernels can saturate at full range."""


@dataclass(frozen=True)
class PTSQConfig:
    """Post-training static quantization (``quantize_static``): int8 weights, 8-bit activations
    whose ranges are calibrated on rollout observations of the baseline policy.

    ``per_channel`` defaults to True (ORT's default is False): an actor's neurons have weight
    rows of very different magnitudes (the first layer's rows weigh features of very different
    scales), and one scale per row stops the large rows from rounding the small ones to zero.
    The fused kernel is the same QGemm (it takes a per-column weight scale). Measured on the RL
    Zoo's SAC HalfCheetah (minmax, 20 episodes): mean |Δa| 0.27 per layer, 0.17 per channel.
    """

    calibration_episodes: int = 20
    """Episodes of the baseline policy whose observations calibrate the activation ranges."""
    calibration_seed: int = 0
    """Env seed of the first calibration episode (episode k uses seed + k); below the held-out seeds."""
    calibration_method: str = "minmax"
    """How a tensor's range is chosen from its calibration values: minmax, entropy or percentile."""
    percentile: float = 99.999
    """percentile method: the share (%) of |values| the range must cover."""
    histogram_bins: int = 2048
    """entropy and percentile methods: bins of the value histogram (the KL search's resolution)."""
    action_noise_std: float = 0.0
    """Gaussian action noise (fraction of the action range) during calibration rollouts, to visit
    states near the policy's own trajectories."""
    per_channel: bool = True
    """One weight scale per output neuron (see the class docstring for why this is the default)."""
    reduce_range: bool = False
    """7-bit weights, for x86 CPUs without VNNI whose u8*s8 kernels can saturate at full range."""
    fp32_first_layer: bool = False
    """Keep the first dense layer in fp32, so raw observations are never rounded to int8."""
    quant_format: str = "qdq"
    """qdq (QuantizeLinear/DequantizeLinear pairs that ORT fuses into QGemm; ORT's recommended
    format) or qoperator (QGemm written into the file)."""
    activation_type: str = "uint8"
    """uint8 or int8 activations (asymmetric, so both give the same values). uint8 is ORT's advice
    for x86, and on x86 ORT converts int8 QDQ activations to uint8 anyway, which fails to fuse a
    layer whose output feeds two nodes (silu, gelu): it would stay fp32 between Q/DQ pairs."""


# ---------------------------------------------------------------------------------------------
# PTDQ
# ---------------------------------------------------------------------------------------------


def compress_ptdq(baseline: Baseline, cfg: PTDQConfig, ctx: CompressionContext) -> MethodOutput:
    """Quantize the baseline's dense layers with ``quantize_dynamic`` (int8 weights, QInt8).

    The fp32 graph is rebuilt from the baseline's spec with MatMul + Add layers, so the nodes to
    quantize have stable names (``layers.{i}.matmul``): ``quantize_dynamic`` would otherwise split
    each Gemm itself and name the halves after it.

    :param ctx: unused (dynamic quantization needs no observations); part of the method signature
    :raises CompressionError: nothing is left to quantize, or ORT runs no integer kernel for the result
    """
    del ctx
    spec = baseline.spec
    layers = _quantized_layers(spec, cfg.fp32_first_layer)
    fp32 = onnx.load_from_string(build_onnx(spec, linear_op="matmul"))
    with tempfile.TemporaryDirectory(prefix="drlc-ptdq.") as tmp, _quiet_quantizer():
        out = Path(tmp) / "ptdq.onnx"
        quantize_dynamic(
            fp32,
            out,
            op_types_to_quantize=["MatMul"],
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=[f"layers.{i}.matmul" for i in layers],
            use_external_data_format=False,
        )
        model = _load_self_contained(out)
    model = _clean(model)
    params = {
        "weight_type": "int8",
        "activations": "dynamic uint8",
        "per_channel": cfg.per_channel,
        "reduce_range": cfg.reduce_range,
        "fp32_first_layer": cfg.fp32_first_layer,
    }
    return _output(baseline, model, params, layers, "PTDQ")


# ---------------------------------------------------------------------------------------------
# PTSQ
# ---------------------------------------------------------------------------------------------


def compress_ptsq(baseline: Baseline, cfg: PTSQConfig, ctx: CompressionContext) -> MethodOutput:
    """Quantize the baseline's dense layers with ``quantize_static``, calibrated on rollouts.

    :raises CompressionError: a bad option, nothing left to quantize, or ORT runs no integer
        kernel for the result
    """
    _check_ptsq_config(cfg)
    spec = baseline.spec
    layers = _quantized_layers(spec, cfg.fp32_first_layer)
    quantized_nodes = _static_layer_nodes(spec, layers)
    calibration = ctx.rollout(
        cfg.calibration_episodes, seed=cfg.calibration_seed, action_noise_std=cfg.action_noise_std
    )
    fp32 = onnx.load_from_string(build_onnx(spec, linear_op="gemm"))
    op_types = ["Gemm", *_FOLDABLE_ACTIVATIONS]
    ranges = calibrate(fp32, calibration.obs, cfg, op_types)
    with tempfile.TemporaryDirectory(prefix="drlc-ptsq.") as tmp, _quiet_quantizer():
        cache = Path(tmp) / "calibration.json"
        save_tensors_data(ranges, cache)
        out = Path(tmp) / "ptsq.onnx"
        quantize_static(
            fp32,
            out,
            calibration_data_reader=None,  # the ranges come from the cache: drlc ran the calibrator
            calibration_cache_path=cache,
            quant_format=QuantFormat.QDQ if cfg.quant_format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=op_types,
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
            activation_type=QuantType.QUInt8 if cfg.activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=quantized_nodes,
            calibrate_method=ranges.calibration_method,  # must match the cache's
            use_external_data_format=False,
        )
        model = _load_self_contained(out)
    model = _clean(model)
    params = {
        "quant_format": cfg.quant_format,
        "weight_type": "int8",
        "activation_type": cfg.activation_type,
        "per_channel": cfg.per_channel,
        "reduce_range": cfg.reduce_range,
        "fp32_first_layer": cfg.fp32_first_layer,
        "calibration": _calibration_params(cfg),
        "calibration_data": calibration.provenance,
    }
    output = _output(baseline, model, params, layers, "PTSQ")
    output.metrics["calibration_ranges"] = {
        name: [round(float(lo), 6), round(float(hi), 6)]
        for name, (lo, hi) in sorted(range_values(ranges).items())
    }
    return output


def calibrate(model: onnx.ModelProto, obs: np.ndarray, cfg: PTSQConfig, op_types: list[str]) -> Any:
    """Activation ranges of ``model`` on ``obs``, by ``cfg.calibration_method``, computed by ORT's
    own calibrator configured directly (see the module docstring for why not via quantize_static).

    :param model: the fp32 graph to calibrate
    :param obs: float32 [n, obs_dim] raw observations, fed as one batch
    :param op_types: node types whose input and output tensors get a range
    :return: ORT's ``TensorsData`` (tensor name -> range), ready for ``quantize_static``
    """

    class _OneBatch(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                [{"obs": np.ascontiguousarray(obs, np.float32)}]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    if cfg.calibration_method == "minmax":
        method, options = CalibrationMethod.MinMax, {}
    elif cfg.calibration_method == "entropy":
        options = {"num_bins": cfg.histogram_bins, "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
        method = CalibrationMethod.Entropy
    else:
        options = {"num_bins": cfg.histogram_bins, "percentile": cfg.percentile}
        method = CalibrationMethod.Percentile
    with tempfile.TemporaryDirectory(prefix="drlc-calib.") as tmp, _quiet_quantizer():
        path = Path(tmp) / "fp32.onnx"
        onnx.save(model, path)
        calibrator = create_calibrator(
            path,
            op_types,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=method,
            providers=["CPUExecutionProvider"],
            extra_options=options,
        )
        calibrator.collect_data(_OneBatch())
        ranges = calibrator.compute_data()
        del calibrator  # holds an ORT session on files in tmp
    return ranges


def range_values(ranges: Any) -> dict[str, tuple[float, float]]:
    """``{tensor: (low, high)}`` from ORT's ``TensorsData``."""
    return {
        name: (
            float(np.asarray(data.range_value[0]).ravel()[0]),
            float(np.asarray(data.range_value[1]).ravel()[0]),
        )
        for name, data in ranges.data.items()
    }


def _check_ptsq_config(cfg: PTSQConfig) -> None:
    if cfg.calibration_method not in CALIBRATION_METHODS:
        raise CompressionError(
            f"calibration_method {cfg.calibration_method!r} is not known; use one of {', '.join(CALIBRATION_METHODS)}"
        )
    if cfg.quant_format not in QUANT_FORMATS:
        raise CompressionError(
            f"quant_format {cfg.quant_format!r} is not known; use one of {', '.join(QUANT_FORMATS)}"
        )
    if cfg.activation_type not in ACTIVATION_TYPES:
        raise CompressionError(
            f"activation_type {cfg.activation_type!r} is not known; use one of {', '.join(ACTIVATION_TYPES)}"
        )
    if not 0.0 < cfg.percentile <= 100.0:
        raise CompressionError(f"percentile must be in (0, 100], got {cfg.percentile}; e.g. 99.999")
    if cfg.calibration_episodes < 1:
        raise CompressionError(f"calibration_episodes must be >= 1, got {cfg.calibration_episodes}")
    if cfg.histogram_bins < 2 * ENTROPY_QUANTIZED_BINS:
        # Fewer bins leave the KL search nothing to choose: entropy would silently be minmax.
        raise CompressionError(
            f"histogram_bins must be >= {2 * ENTROPY_QUANTIZED_BINS}, got {cfg.histogram_bins}; the default is 2048"
        )


def _calibration_params(cfg: PTSQConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"method": cfg.calibration_method}
    if cfg.calibration_method == "entropy":
        params |= {"histogram_bins": cfg.histogram_bins, "quantized_bins": ENTROPY_QUANTIZED_BINS}
    elif cfg.calibration_method == "percentile":
        params |= {"histogram_bins": cfg.histogram_bins, "percentile": cfg.percentile}
    return params


def _static_layer_nodes(spec: PolicySpec, layers: list[int]) -> list[str]:
    """Names of the nodes quantize_static may touch: the chosen layers' Gemm and foldable activation."""
    names = []
    for i in layers:
        names.append(f"layers.{i}.gemm")
        if i < len(spec.layers) - 1 and spec.activation == "relu":
            names.append(f"layers.{i}.relu")
    return names


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------


def _quantized_layers(spec: PolicySpec, fp32_first_layer: bool) -> list[int]:
    layers = list(range(1 if fp32_first_layer else 0, len(spec.layers)))
    if not layers:
        raise CompressionError(
            "the policy has a single dense layer and fp32_first_layer keeps it in fp32: nothing to quantize; "
            "drop fp32_first_layer"
        )
    return layers


def _load_self_contained(path: Path) -> onnx.ModelProto:
    """Load a model the quantizer wrote, with any external data pulled back into the proto."""
    model = onnx.load(str(path), load_external_data=True)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise CompressionError(
                f"the quantized tensor {tensor.name!r} still refers to external data (a drlc bug)"
            )
    return model


def _clean(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop what the quantizer adds that is not part of the policy: its metadata (``onnx.infer``),
    its producer name. finalize() writes the manifest."""
    del model.metadata_props[:]
    model.producer_name = "drlc"
    model.producer_version = host.__version__
    return model


def _output(
    baseline: Baseline, model: onnx.ModelProto, params: dict[str, Any], layers: list[int], what: str
) -> MethodOutput:
    _check_interface(baseline, model)
    kernels = integer_kernels(model.SerializeToString(deterministic=True))
    n_integer_layers = sum(n for op, n in kernels.items() if op in LAYER_KERNELS)
    if n_integer_layers < len(layers):
        raise CompressionError(
            f"ONNX Runtime {ort.__version__} runs integer kernels for only {n_integer_layers} of the "
            f"{len(layers)} quantized layers of the {what} graph on this CPU ({kernels or 'none'}); the rest "
            "would compute in fp32 between quantize/dequantize pairs. Try activation_type='uint8' or "
            "quant_format='qoperator', or report it with `drlc-agent info` output"
        )
    cpu_model, cpu_flags = cpu_model_and_flags()
    metrics: dict[str, Any] = {
        "integer_kernels": kernels,
        "n_quantized_layers": len(layers),
        "fp32_layers": [i for i in range(len(baseline.spec.layers)) if i not in layers],
        "quantizer": f"onnxruntime {ort.__version__}",
        "cpu_model": cpu_model,
        "cpu_flags": cpu_flags,
    }
    return MethodOutput(
        model=model,
        params=params,
        hidden_sizes=baseline.spec.hidden_sizes,
        n_params=baseline.spec.n_params,
        metrics=metrics,
    )


def _check_interface(baseline: Baseline, model: onnx.ModelProto) -> None:
    """The quantizer must keep the graph's interface: obs -> action with a dynamic batch axis."""

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    spec = baseline.spec
    got = [(v.name, dims(v)) for v in (*inputs, *model.graph.output)]
    want = [("obs", ["batch", spec.obs_dim]), ("action", ["batch", spec.act_dim])]
    if got != want:
        raise CompressionError(
            f"the quantizer changed the graph's interface to {got}, expected {want} (a drlc bug)"
        )


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Silence ORT's quantization chatter: calibrators ``print`` progress, and quantize_* log a
    root-logger warning advising shape pre-processing (irrelevant: drlc's graphs are fully typed).
    The NullHandler keeps ``logging.warning`` from configuring the root logger as a side effect."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    drop_hint = _DropPreprocessHint()
    root.addHandler(guard)
    root.addFilter(drop_hint)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(drop_hint)
        root.removeHandler(guard)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


__all__ = [
    "ACTIVATION_TYPES",
    "CALIBRATION_METHODS",
    "QUANT_FORMATS",
    "PTDQConfig",
    "PTSQConfig",
    "calibrate",
    "compress_ptdq",
    "compress_ptsq",
    "range_values",
]
