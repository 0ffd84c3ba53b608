"""Untrusted models: every place ONNX can hold external data or a subgraph is refused, and the check runs in
a memory-limited process of its own, so a parsing bomb costs that process and not the agent."""

from __future__ import annotations

from pathlib import Path

import grpc
import onnx
import psutil
import pytest
from onnx import helper

from device_agent.contract.errors import InvalidModelError
from device_agent.contract.manifest import sha256_bytes
from device_agent.store.model_check import check_file
from device_agent.store.validation import check_model_bytes
from host.measure.agent_client import AgentClient
from tests.device_agent.service.test_server import upload_bytes
from host.policies.random_policies import random_policy


def external(name: str, location: str = "weights.bin") -> onnx.TensorProto:
    tensor = helper.make_tensor(name, onnx.TensorProto.FLOAT, [2], [0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def sparse(values: onnx.TensorProto) -> onnx.SparseTensorProto:
    indices = helper.make_tensor(values.name + "_idx", onnx.TensorProto.INT64, [2], [0, 1])
    return helper.make_sparse_tensor(values, indices, [4])


def base_model() -> onnx.ModelProto:
    data, _, _ = random_policy()
    model = onnx.load_from_string(data)
    check_model_bytes(model.SerializeToString())  # the unmodified policy passes
    return model


def with_sparse_initializer(model: onnx.ModelProto) -> None:
    model.graph.sparse_initializer.append(sparse(external("hidden")))


def with_sparse_value(model: onnx.ModelProto) -> None:
    node = helper.make_node("Constant", [], ["unused"], sparse_value=sparse(external("c")))
    model.graph.node.append(node)


def with_constant_in_a_local_function(model: onnx.ModelProto) -> None:
    constant = helper.make_node("Constant", [], ["y"], value=external("c"))
    model.functions.append(helper.make_function("local", "F", [], ["y"], [constant], model.opset_import))


def with_loop_in_a_local_function(model: onnx.ModelProto) -> None:
    body = helper.make_graph([], "body", [], [])
    loop = helper.make_node("Loop", ["n", ""], [], body=body)
    model.functions.append(helper.make_function("local", "G", ["n"], [], [loop], model.opset_import))


def with_a_neighbour_as_external_data(model: onnx.ModelProto) -> None:
    """An initializer whose bytes would come from another model stored beside it in models/."""
    model.graph.initializer[0].CopyFrom(external(model.graph.initializer[0].name, "0" * 64 + ".onnx"))


def with_tensors_attribute(model: onnx.ModelProto) -> None:
    node = model.graph.node[0]
    node.attribute.append(helper.make_attribute("extra", [external("t1"), external("t2")]))


def with_training_info(model: onnx.ModelProto) -> None:
    model.training_info.add().initialization.CopyFrom(helper.make_graph([], "init", [], []))


def with_subgraph_attribute(model: onnx.ModelProto) -> None:
    node = model.graph.node[0]
    node.attribute.append(helper.make_attribute("g", helper.make_graph([], "g", [], [])))


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (with_sparse_initializer, "sparse initializer 'hidden' refers to external data"),
        (with_sparse_value, "refers to external data"),
        (with_constant_in_a_local_function, "local functions ['local:F'] are not allowed"),
        (with_loop_in_a_local_function, "local functions ['local:G'] are not allowed"),
        (with_a_neighbour_as_external_data, "refers to external data"),
        (with_tensors_attribute, "attribute 'extra'"),
        (with_training_info, "training info"),
        (with_subgraph_attribute, "subgraphs (attribute 'g'"),
    ],
)
def test_every_hiding_place_is_refused(tmp_path: Path, mutate, reason: str) -> None:
    model = base_model()
    mutate(model)
    data = model.SerializeToString()
    with pytest.raises(InvalidModelError) as err:
        check_model_bytes(data)
    assert reason in str(err.value)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(InvalidModelError, match=r"refers to external data|not allowed"):
        check_file(path)  # the same answer from the sandboxed process


def bomb(data: bytes, n_nodes: int) -> bytes:
    """The policy with millions of empty nodes appended to its graph: protobuf merges a repeated embedded
    message field, so the file stays small on the wire (2 bytes a node) and huge once parsed."""
    payload = b"\x0a\x00" * n_nodes  # GraphProto.node (field 1), each an empty NodeProto
    length, out = len(payload), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            break
    return data + b"\x3a" + bytes(out) + payload  # ModelProto.graph (field 7, length-delimited)


def test_a_parsing_bomb_costs_the_checking_process_not_the_agent(agent, tmp_path: Path) -> None:
    data, _, _ = random_policy()
    bombed = bomb(data, 8_000_000)  # 16 MB on the wire, far beyond the check's memory once parsed
    path = tmp_path / "bomb.onnx"
    path.write_bytes(bombed)
    with pytest.raises(InvalidModelError, match=r"could not be checked within|too large to parse"):
        check_file(path)
    me = psutil.Process()
    before = me.memory_info().rss
    with AgentClient(f"127.0.0.1:{agent.port}") as c:
        c.wait_ready()
        with pytest.raises(grpc.RpcError) as err:
            upload_bytes(c, bombed, sha256_bytes(bombed))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "could not be checked within" in err.value.details() or "too large" in err.value.details()
        assert c.has_models([sha256_bytes(bombed)]) == set()
        # the agent (in this process) holds the upload's bytes, never the parsed graph of 8 M nodes
        assert me.memory_info().rss - before < 400 * 2**20
        # a real model next to it is still stored and its manifest kept, so it is never parsed again
        good, sha, manifest = random_policy(seed=3)
        assert upload_bytes(c, good, sha).manifest_json
        kept = Path(agent.jobs.store.root) / f"{sha}.json"
        assert kept.is_file() and manifest.name in kept.read_text()
