"""The runtime's floor: a trivial graph with a policy's input and output shapes.

Timing the same provider on it shows the part of a policy's latency that no compression
can remove (session overhead, input binding, output allocation).
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from device_agent.contract.manifest import INPUT_NAME, OUTPUT_NAME


def floor_model_bytes(obs_dim: int, act_dim: int, opset: int = 17) -> bytes:
    """obs [batch, obs_dim] -> the first act_dim features (tiled when obs_dim < act_dim): no arithmetic."""
    repeats = max(1, math.ceil(act_dim / obs_dim))
    nodes = [
        helper.make_node("Tile", [INPUT_NAME, "floor.repeats"], ["floor.tiled"], name="floor.tile"),
        helper.make_node(
            "Slice",
            ["floor.tiled", "floor.starts", "floor.ends", "floor.axes"],
            [OUTPUT_NAME],
            name="floor.slice",
        ),
    ]
    inits = [
        helper.make_tensor("floor.repeats", TensorProto.INT64, [2], [1, repeats]),
        helper.make_tensor("floor.starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("floor.ends", TensorProto.INT64, [1], [act_dim]),
        helper.make_tensor("floor.axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes,
        "drlc-runtime-floor",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", obs_dim])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", act_dim])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8, producer_name="drlc"
    )
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)
