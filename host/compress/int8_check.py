"""Which integer kernels ONNX Runtime really runs for a model.

A quantized ONNX file can be misleading: QuantizeLinear/DequantizeLinear pairs around fp32
ops are only a recipe, and whether the CPU then multiplies int8 numbers depends on ORT's
graph optimizer fusing them (QDQ -> QGemm / QLinearMatMul) at session creation. So the
check asks the runtime itself: it builds a real session with all optimizations on, has ORT
save the graph it will execute (``SessionOptions.optimized_model_filepath``), and counts
the integer op types in it.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort

#: Op types that compute with integer arithmetic on ORT's CPU execution provider (ONNX standard
#: and ``com.microsoft`` contrib ops that quantization passes and ORT's fusions produce).
INTEGER_OP_TYPES = frozenset(
    {
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeLinear",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QGemm",
        "QLinearMatMul",
        "QLinearConv",
        "QLinearAdd",
        "QLinearMul",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearSoftmax",
        "QAttention",
    }
)


def optimized_graph(model_bytes: bytes, optimization_level: str = "all") -> onnx.ModelProto:
    """The graph ONNX Runtime's CPU provider executes for ``model_bytes`` after its optimizations.

    :param model_bytes: a serialized ONNX model
    :param optimization_level: ``"basic"``, ``"extended"`` or ``"all"`` (ORT's default for sessions,
        and what the device agent uses)
    :return: the optimized model as ORT saved it
    """
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization_level]
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # ORT warns that an ENABLE_ALL graph is hardware-specific
    with tempfile.TemporaryDirectory(prefix="drlc-ort-opt.") as tmp:
        path = Path(tmp) / "optimized.onnx"
        options.optimized_model_filepath = str(path)
        ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        return onnx.load(str(path))


def op_type_counts(model: onnx.ModelProto | bytes) -> dict[str, int]:
    """How many nodes of each op type a model's main graph has, sorted by op type."""
    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def integer_kernels(model_bytes: bytes) -> dict[str, int]:
    """The integer kernels ONNX Runtime runs for ``model_bytes`` on this CPU: op type -> node count.

    Empty for an fp32 model, and for a quantized file whose int8 recipe ORT did not turn into
    integer kernels (e.g. QDQ pairs it could not fuse, left as fp32 ops between casts).
    """
    counts = op_type_counts(optimized_graph(model_bytes))
    return {op: n for op, n in counts.items() if op in INTEGER_OP_TYPES}


__all__ = ["INTEGER_OP_TYPES", "integer_kernels", "op_type_counts", "optimized_graph"]
