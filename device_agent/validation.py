"""Checks on uploaded model bytes before they are stored: models are untrusted input.

A drlc policy is a single self-contained ONNX file: no external data (it could name any
file on the device), only standard operator domains (custom ops load native code), one
float input and one float output whose shapes agree with the manifest it carries.
"""

from __future__ import annotations

import onnx
from google.protobuf.message import DecodeError

from device_agent.errors import InvalidModelError
from device_agent.manifest import MANIFEST_KEY, ArtifactManifest

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
"""com.microsoft holds ONNX Runtime's own contrib ops (the int8 kernels quantization emits)."""


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def _check_no_external_data(model: onnx.ModelProto) -> None:
    tensors = list(model.graph.initializer)
    tensors += [a.t for node in model.graph.node for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidModelError(
                f"tensor {tensor.name!r} refers to external data; drlc models must be single files "
                "(export with all weights inside the .onnx)"
            )
    for graph_attr in (a for node in model.graph.node for a in node.attribute if a.HasField("g")):
        raise InvalidModelError(
            f"subgraphs (attribute {graph_attr.name!r}) are not allowed in a policy graph"
        )


def check_model_bytes(data: bytes) -> ArtifactManifest:
    """Parse and check an uploaded model; return its manifest or raise InvalidModelError."""
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise InvalidModelError("the ONNX graph has no nodes")
    _check_no_external_data(model)
    custom = sorted({n.domain for n in model.graph.node} - STANDARD_DOMAINS)
    if custom:
        raise InvalidModelError(
            f"custom operator domains {custom} are not allowed; allowed: {sorted(STANDARD_DOMAINS)}"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    if MANIFEST_KEY not in meta:
        raise InvalidModelError(
            f"the model has no {MANIFEST_KEY!r} entry in metadata_props; make it with drlc-host import/train/compress"
        )
    manifest = ArtifactManifest.from_json(meta[MANIFEST_KEY])
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [manifest.input_name] or [o.name for o in model.graph.output] != [
        manifest.output_name
    ]:
        raise InvalidModelError(
            f"graph inputs {[i.name for i in inputs]} / outputs {[o.name for o in model.graph.output]} do not match "
            f"the manifest's {manifest.input_name!r} -> {manifest.output_name!r}"
        )
    for value, shape, what in (
        (inputs[0], manifest.observation_shape, "input"),
        (model.graph.output[0], manifest.action_shape, "output"),
    ):
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise InvalidModelError(f"the graph's {what} {value.name!r} must be float32")
        dims = _dims(value)
        if len(dims) != 1 + len(shape) or any(
            isinstance(d, int) and d != s for d, s in zip(dims[1:], shape, strict=True)
        ):
            raise InvalidModelError(
                f"the graph's {what} {value.name!r} has shape {dims}; the manifest says [batch, {', '.join(map(str, shape))}]"
            )
    return manifest
