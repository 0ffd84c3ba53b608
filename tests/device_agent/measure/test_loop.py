"""The measuring loop's call path: IO binding on preallocated buffers gives exactly session.run's actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_agent.contract.manifest import ArtifactManifest
from device_agent.measure.results import EpisodeOutcome, JobEnd, JobStart
from device_agent.measure.job import run_profile
from device_agent.measure.session import bind_session, open_session
from device_agent.contract.settings import MeasurementSettings
from host.policies.random_policies import random_policy

CPU = MeasurementSettings(execution_providers=("CPUExecutionProvider",))


def observations(n: int, dim: int) -> np.ndarray:
    """Raw-observation-like inputs over several orders of magnitude, as MuJoCo gives them."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, dim)) * rng.choice([0.01, 1.0, 30.0], size=(n, dim))).astype(np.float32)


def ptdq(data: bytes, tmp_path: Path) -> bytes:
    """PTDQ as drlc makes it (ONNX Runtime's dynamic quantization): activation ranges per call, so any
    change in how the call is made would show up in the actions."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp_path / "fp32.onnx", tmp_path / "ptdq.onnx"
    src.write_bytes(data)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst.read_bytes()


@pytest.mark.parametrize("kind", ["fp32", "ptdq"])
def test_io_binding_gives_session_runs_actions_bit_for_bit(tmp_path: Path, kind: str) -> None:
    data, _, manifest = random_policy("HalfCheetah-v5", hidden=(64, 64))
    if kind == "ptdq":
        data = ptdq(data, tmp_path)
    session = open_session(data, CPU)
    buffer = np.zeros((1, 17), dtype=np.float32)
    infer, how = bind_session(session, buffer, tuple(manifest.action_shape))
    assert how == "io_binding"
    first = infer()
    for obs in observations(500, 17):
        buffer[0] = obs
        got = infer()
        assert got is first  # one preallocated output buffer, written in place
        expected = session.run(None, {"obs": obs[None]})[0]
        assert got.dtype == expected.dtype and got.shape == expected.shape == (1, 6)
        assert np.array_equal(got, expected)


def test_binding_that_disagrees_with_the_model_falls_back_to_session_run() -> None:
    data, _, _ = random_policy("HalfCheetah-v5", hidden=(8,))
    session = open_session(data, CPU)
    buffer = np.ones((1, 17), dtype=np.float32)
    infer, how = bind_session(session, buffer, (7,))  # the model returns 6 actions, not 7
    assert how == "session_run"
    assert np.array_equal(infer(), session.run(None, {"obs": buffer})[0])


def test_parallel_path_in_one_process_gives_the_sequential_returns(tmp_path: Path) -> None:
    """quality_workers > 1 with no helpers (SoloScheduler): the returns-only episodes and the latency phase,
    compared with the classic job on the same seeds; Hopper falls, so episode lengths differ."""
    data, _, manifest = random_policy("Hopper-v5", hidden=(32, 32), seed=3)
    model = tmp_path / "m.onnx"
    model.write_bytes(data)
    manifest = ArtifactManifest.from_json(manifest.to_json())
    runs = {}
    for workers in (1, 2):
        settings = MeasurementSettings(
            n_episodes=4, seed=11, warmup_calls=5, quality_workers=workers, latency_calls=300, **CPU_KW
        )
        sent: list[object] = []
        run_profile(model, manifest, "Hopper-v5", settings, sent.append)
        start, *episodes, end = sent
        assert isinstance(start, JobStart) and isinstance(end, JobEnd)
        assert start.runtime.inference_binding == "io_binding"
        assert all(isinstance(e, EpisodeOutcome) for e in episodes)
        runs[workers] = (episodes, end)
    sequential, seq_end = runs[1]
    parallel, par_end = runs[2]
    assert [e.index for e in parallel] == [0, 1, 2, 3]
    assert [(e.seed, e.episode_return, e.length, e.terminated) for e in parallel] == [
        (e.seed, e.episode_return, e.length, e.terminated) for e in sequential
    ]
    assert len({e.length for e in sequential}) > 1  # the test covers episodes of different lengths
    assert all(e.returns_only and e.inference.count == 0 for e in parallel)
    assert not any(e.returns_only for e in sequential)
    assert seq_end.latency_phase is None and seq_end.inference.count == sum(e.length for e in sequential)
    assert par_end.latency_phase is not None and par_end.latency_phase.calls == 300
    assert par_end.inference.count == par_end.env_step.count == 300
    assert len(par_end.latency_phase.inference_ns) == 300


CPU_KW = {"execution_providers": ("CPUExecutionProvider",)}
