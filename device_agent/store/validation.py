"""Checks on uploaded model bytes before they are stored: models are untrusted input.

A drlc policy is a single self-contained ONNX file: no external data (it could name any
file on the device), no subgraphs, local functions or training info, only standard operator
domains (custom ops load native code), one float input and one float output whose shapes
agree with the manifest it carries.

The agent never runs these checks in its own process: ``device_agent.store.model_check`` runs them
in a short-lived, memory- and CPU-limited process (``python -m device_agent.store.model_check``), so
a hostile file costs that process, not the agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx
from google.protobuf.message import DecodeError

from device_agent.contract.errors import InvalidModelError
from device_agent.contract.manifest import MANIFEST_KEY, ArtifactManifest

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
"""com.microsoft holds ONNX Runtime's own contrib ops (the int8 kernels quantization emits)."""


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every tensor a graph holds: initializers, sparse initializers (values and indices) and the tensors of
    every node attribute, of every kind."""
    for tensor in graph.initializer:
        yield f"initializer {tensor.name!r}", tensor
    for sparse in graph.sparse_initializer:
        yield f"sparse initializer {sparse.values.name!r}", sparse.values
        yield f"sparse initializer {sparse.values.name!r} (indices)", sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[tuple[str, onnx.TensorProto]]:
    for node in nodes:
        for attr in node.attribute:
            where = f"attribute {attr.name!r} of node {node.name or node.op_type!r}"
            if attr.HasField("t"):
                yield where, attr.t
            yield from ((where, t) for t in attr.tensors)
            if attr.HasField("sparse_tensor"):
                yield where, attr.sparse_tensor.values
                yield where, attr.sparse_tensor.indices
            for sparse in attr.sparse_tensors:
                yield where, sparse.values
                yield where, sparse.indices


def _check_no_external_data(model: onnx.ModelProto) -> None:
    """Refuse external data anywhere it can hide, subgraphs, local functions and training info: a policy is
    one self-contained straight-line graph, and any of these could make a stored model read another file
    on the device (so its sha256 would no longer pin its behaviour) or run a loop of the sender's choosing."""
    if model.functions:
        names = sorted(f"{f.domain}:{f.name}" for f in model.functions)
        raise InvalidModelError(f"local functions {names} are not allowed in a policy graph")
    if model.training_info:
        raise InvalidModelError("training info (initializers and algorithms for training) is not allowed")
    for where, tensor in _graph_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidModelError(
                f"{where} refers to external data; drlc models must be single files "
                "(export with all weights inside the .onnx)"
            )
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("g") or attr.graphs:
                raise InvalidModelError(
                    f"subgraphs (attribute {attr.name!r} of {node.op_type}) are not allowed in a policy graph"
                )


class ParseMemoryError(InvalidModelError):
    """Parsing ran out of the memory the checking process may use: protobuf reports a refused allocation as a
    parse error, whose text is the only place that says so; it is read here, once, and turned into this type."""


PROTOBUF_ALLOC_FAILED = "alloc failed"
"""What protobuf's parse error says when an allocation was refused (it has no type of its own for it)."""


def check_model_bytes(data: bytes) -> ArtifactManifest:
    """Parse and check an uploaded model; return its manifest or raise InvalidModelError (ParseMemoryError when
    the parser ran out of memory)."""
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        if PROTOBUF_ALLOC_FAILED in str(exc):
            raise ParseMemoryError(f"not an ONNX model: {exc}") from exc
        raise InvalidModelError(f"not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise InvalidModelError("the ONNX graph has no nodes")
    _check_no_external_data(model)
    custom = sorted(
        ({n.domain for n in model.graph.node} | {o.domain for o in model.opset_import}) - STANDARD_DOMAINS
    )
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
