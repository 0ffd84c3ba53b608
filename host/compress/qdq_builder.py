"""Express a quantized actor as an int8 QDQ ONNX graph that ONNX Runtime runs with integer kernels.

The graph is the fp32 graph of :func:`host.policies.onnx_builder.build_graph` (same observation
normalisation, activations, action post-processing, node names and opset), rewritten around
each quantized dense layer ``i``:

- its input goes through ``layers.{i}.input.quantize`` (QuantizeLinear to uint8, per-tensor,
  asymmetric) and ``layers.{i}.input.dequantize``, with the frozen ``layers.{i}.input.scale`` and
  ``layers.{i}.input.zero_point``;
- its weight is stored as int8 in ``layers.{i}.weight.quantized`` (symmetric, one scale per output
  channel: ``layers.{i}.weight.scale``, zero points ``layers.{i}.weight.zero_point``) and read
  through ``layers.{i}.weight.dequantize`` (axis 0 of the ``[out, in]`` Gemm weight);
- its bias is stored as int32 in ``layers.{i}.bias.quantized`` with scale ``input scale * weight
  scale`` (``layers.{i}.bias.scale``) and read through ``layers.{i}.bias.dequantize``.

``layers.{i}.gemm`` itself is unchanged, so ONNX Runtime's QDQ fusion (graph optimization level
extended or all) turns ``DQ(input), DQ(weight), DQ(bias) -> Gemm`` into one ``QGemm``: uint8 x
int8 products accumulated in int32, with a float output, or a uint8 output when the next node is
the following layer's QuantizeLinear (ReLU is dropped when the quantizer's zero point makes it
redundant). Layers without quantization parameters stay fp32 (``fp32_first_layer``). The pre-squash
clip of gSDE actors becomes Max + Min when the last layer is quantized (see :func:`_clip_as_max_min`).

The caller supplies every integer: the torch fake-quant actor computes them, so the graph
computes exactly what was trained (up to float rounding in the kernels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

import host
from host.errors import CompressionError
from host.policies.onnx_builder import IR_VERSION, OPSET, build_graph
from host.policies.spec import PolicySpec

#: uint8 activations: ORT's CPU kernels multiply uint8 activations by int8 weights (U8S8).
ACTIVATION_QMIN, ACTIVATION_QMAX = 0, 255
#: The int32 range a quantized bias is clamped to (float32 represents these bounds exactly).
BIAS_QMIN, BIAS_QMAX = -(2**31) + 128, 2**31 - 128


@dataclass(frozen=True, eq=False)
class LayerQuant:
    """The frozen integer form of one dense layer, ``y = (x_q - zp) * s_x @ (W_q * s_w).T + b_q * s_b``.

    :param input_scale: scale of the per-tensor uint8 input quantizer (float32 value, > 0)
    :param input_zero_point: its zero point in ``[0, 255]``
    :param weight_q: int8 weights ``[out, in]``, symmetric (zero point 0)
    :param weight_scale: float32 ``[out]``, one scale per output channel
    :param bias_q: int32 ``[out]``, quantized with scale ``input_scale * weight_scale`` in float32
    """

    input_scale: float
    input_zero_point: int
    weight_q: np.ndarray
    weight_scale: np.ndarray
    bias_q: np.ndarray

    def __post_init__(self) -> None:
        scale = np.float32(self.input_scale)
        if not (np.isfinite(scale) and scale > 0):
            raise CompressionError(f"an activation scale must be positive and finite, got {self.input_scale}")
        if not ACTIVATION_QMIN <= int(self.input_zero_point) <= ACTIVATION_QMAX:
            raise CompressionError(f"a uint8 zero point must lie in [0, 255], got {self.input_zero_point}")
        object.__setattr__(self, "input_scale", float(scale))
        object.__setattr__(self, "input_zero_point", int(self.input_zero_point))
        weight_q = np.asarray(self.weight_q)
        if weight_q.dtype != np.int8 or weight_q.ndim != 2:
            raise CompressionError(
                f"quantized weights must be int8 [out, in], got {weight_q.dtype} {weight_q.shape}"
            )
        weight_scale = np.ascontiguousarray(self.weight_scale, dtype=np.float32)
        if weight_scale.shape != (weight_q.shape[0],) or not np.all(
            np.isfinite(weight_scale) & (weight_scale > 0)
        ):
            raise CompressionError("weight scales must be positive, finite and one per output channel")
        bias_q = np.asarray(self.bias_q)
        if bias_q.dtype != np.int32 or bias_q.shape != (weight_q.shape[0],):
            raise CompressionError(f"quantized biases must be int32 [out], got {bias_q.dtype} {bias_q.shape}")
        object.__setattr__(self, "weight_q", np.ascontiguousarray(weight_q))
        object.__setattr__(self, "weight_scale", weight_scale)
        object.__setattr__(self, "bias_q", np.ascontiguousarray(bias_q))

    @property
    def bias_scale(self) -> np.ndarray:
        """``input_scale * weight_scale`` in float32, the scale of the int32 bias."""
        return (np.float32(self.input_scale) * self.weight_scale).astype(np.float32)


def activation_qparams(low: float, high: float) -> tuple[float, int]:
    """uint8 scale and zero point covering ``[low, high]`` (widened to include 0, so 0 is exact).

    A degenerate range (a layer whose inputs are all 0) gets scale 1.
    """
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = np.float32((high - low) / (ACTIVATION_QMAX - ACTIVATION_QMIN))
    if not (np.isfinite(scale) and scale > 0):
        return 1.0, 0
    zero_point = int(np.clip(np.round(ACTIVATION_QMIN - low / scale), ACTIVATION_QMIN, ACTIVATION_QMAX))
    return float(scale), zero_point


def _initializer(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value), name=name)


def _quantized_layer_parts(
    index: int, quant: LayerQuant, layer_input: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[str]]:
    """Nodes and initializers feeding ``layers.{index}.gemm``, and the Gemm's new inputs."""
    p = f"layers.{index}"
    out_features = quant.weight_q.shape[0]
    inits = [
        _initializer(f"{p}.input.scale", np.array(quant.input_scale, dtype=np.float32)),
        _initializer(f"{p}.input.zero_point", np.array(quant.input_zero_point, dtype=np.uint8)),
        _initializer(f"{p}.weight.quantized", quant.weight_q),
        _initializer(f"{p}.weight.scale", quant.weight_scale),
        _initializer(f"{p}.weight.zero_point", np.zeros(out_features, dtype=np.int8)),
        _initializer(f"{p}.bias.quantized", quant.bias_q),
        _initializer(f"{p}.bias.scale", quant.bias_scale),
        _initializer(f"{p}.bias.zero_point", np.zeros(out_features, dtype=np.int32)),
    ]
    nodes = [
        helper.make_node(
            "QuantizeLinear",
            [layer_input, f"{p}.input.scale", f"{p}.input.zero_point"],
            [f"{p}.input.quantize"],
            name=f"{p}.input.quantize",
        ),
        helper.make_node(
            "DequantizeLinear",
            [f"{p}.input.quantize", f"{p}.input.scale", f"{p}.input.zero_point"],
            [f"{p}.input.dequantize"],
            name=f"{p}.input.dequantize",
        ),
        helper.make_node(
            "DequantizeLinear",
            [f"{p}.weight.quantized", f"{p}.weight.scale", f"{p}.weight.zero_point"],
            [f"{p}.weight.dequantize"],
            name=f"{p}.weight.dequantize",
            axis=0,
        ),
        helper.make_node(
            "DequantizeLinear",
            [f"{p}.bias.quantized", f"{p}.bias.scale", f"{p}.bias.zero_point"],
            [f"{p}.bias.dequantize"],
            name=f"{p}.bias.dequantize",
            axis=0,
        ),
    ]
    return nodes, inits, [f"{p}.input.dequantize", f"{p}.weight.dequantize", f"{p}.bias.dequantize"]


def build_qdq_model(spec: PolicySpec, quants: Sequence[LayerQuant | None]) -> onnx.ModelProto:
    """The QDQ model of ``spec`` with layer ``i`` quantized as ``quants[i]`` (None: kept fp32).

    No manifest is attached (the compression registry's ``finalize`` writes it).

    :param spec: the actor: observation normalisation, fp32 weights of unquantized layers, the
        activation and post-processing (the float weights of quantized layers are not used)
    :param quants: one entry per dense layer
    :raises CompressionError: when ``quants`` does not fit ``spec``, or the graph fails ``onnx.checker``
    """
    if len(quants) != len(spec.layers):
        raise CompressionError(f"{len(quants)} layer quantizations given for {len(spec.layers)} dense layers")
    for i, (quant, layer) in enumerate(zip(quants, spec.layers, strict=True)):
        if quant is not None and quant.weight_q.shape != layer.weight.shape:
            raise CompressionError(
                f"layer {i}: quantized weights {quant.weight_q.shape} do not match the spec's {layer.weight.shape}"
            )
    graph = build_graph(spec, linear_op="gemm")
    replaced = {
        f"layers.{i}.{name}" for i, q in enumerate(quants) if q is not None for name in ("weight", "bias")
    }
    nodes: list[onnx.NodeProto] = []
    initializers = [t for t in graph.initializer if t.name not in replaced]
    for node in graph.node:
        if node.name == "action.pre_clip" and quants[-1] is not None:
            nodes.extend(_clip_as_max_min(node))
            continue
        index = _gemm_index(node)
        quant = quants[index] if index is not None else None
        if quant is not None:
            assert index is not None  # for mypy
            extra_nodes, extra_inits, gemm_inputs = _quantized_layer_parts(index, quant, node.input[0])
            nodes.extend(extra_nodes)
            initializers.extend(extra_inits)
            del node.input[:]
            node.input.extend(gemm_inputs)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="drlc",
        producer_version=host.__version__,
        ir_version=IR_VERSION,
    )
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise CompressionError(f"the QDQ graph is invalid (a drlc bug, please report it): {exc}") from exc
    return model


def _clip_as_max_min(clip: onnx.NodeProto) -> list[onnx.NodeProto]:
    """``Clip(x, lo, hi)`` as ``Min(Max(x, lo), hi)``, the same function.

    ONNX Runtime 1.32 does not fuse ``DQ -> Gemm -> Clip`` into QGemm unless a QuantizeLinear
    follows the Clip (it treats a Clip after a QDQ node as part of the group), so the last layer of
    a SAC/TQC actor with gSDE (``action.pre_clip`` before ``action.tanh``) would stay fp32. Max and
    Min leave the Gemm alone. The Min node keeps the Clip's name and output, so nothing downstream
    changes.
    """
    x, low, high = clip.input
    maximum = f"{clip.name}.max"
    return [
        helper.make_node("Max", [x, low], [maximum], name=maximum),
        helper.make_node("Min", [maximum, high], [clip.output[0]], name=clip.name),
    ]


def _gemm_index(node: onnx.NodeProto) -> int | None:
    """``i`` for the node ``layers.{i}.gemm``, else None."""
    parts = node.name.split(".")
    if node.op_type == "Gemm" and len(parts) == 3 and parts[0] == "layers" and parts[2] == "gemm":
        return int(parts[1])
    return None


__all__ = ["LayerQuant", "activation_qparams", "build_qdq_model"]
