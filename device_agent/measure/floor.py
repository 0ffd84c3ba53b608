"""The runtime's floor: a trivial graph with a policy's input and output shapes.

Timing the same provider on it, in the policy's own loop, shows the part of a policy's latency that no
compression can remove (session overhead, input binding, output allocation).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from device_agent.contract.manifest import INPUT_NAME, OUTPUT_NAME, ArtifactManifest
from device_agent.contract.settings import MeasurementSettings
from device_agent.measure.loop import gc_paused
from device_agent.measure.phases import latency_phase, warm_up
from device_agent.measure.session import make_infer, open_session


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


FLOOR_CALLS = 1000
"""Timed calls of the runtime floor (after a tenth as many untimed ones), as many as a latency phase: each is
followed by an env step, so they cost what the policy's calls cost; paced (control-rate mode): FLOOR_CALLS_PACED."""
FLOOR_CALLS_PACED = 200
"""A paced floor takes period x calls of wall time (200 x 50 ms = 10 s for HalfCheetah)."""


def open_floor_session(
    manifest: ArtifactManifest, settings: MeasurementSettings, trt_cache_dir: Path | None = None
) -> Any:
    """The same provider and options on a weightless graph of the policy's input and output shapes."""
    data = floor_model_bytes(manifest.observation_shape[0], manifest.action_shape[0])
    return open_session(data, settings, trt_cache_dir)


def measure_floor(
    env: Any,
    floor_session: Any,
    manifest: ArtifactManifest,
    seed: int,
    period_ns: int | None,
    n_calls: int | None = None,
) -> list[int]:
    """Time the floor session in the policy's own loop: each call followed by an env step, exactly as
    ``latency_phase`` times the policy (paced the same way in control-rate mode). Timed back-to-back instead,
    the same trivial graph reads about half as long (warm caches, no env step between calls), which would
    understate "the part no compression can remove". The env is stepped with the floor's output, which is the
    observation's first features: MuJoCo clamps a limited control to its range."""
    n = n_calls or (FLOOR_CALLS_PACED if period_ns is not None else FLOOR_CALLS)
    buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    infer = make_infer(floor_session, buffer, tuple(manifest.action_shape))
    warm_up(env, infer, buffer, max(1, n // 10), seed=seed)
    with gc_paused():
        return latency_phase(env, infer, buffer, n, seed, period_ns).calls_ns
