"""The operator profile phase: a real agent on loopback profiles a real policy and its PTDQ variant with ONNX
Runtime's profiler, in a worker of its own after the timed phases, and sends the breakdown back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.measure.op_profile import reduce_events
from device_agent.measure.providers import TENSORRT, cached_engines, engine_cache_outcome, provider_options
from device_agent.measure.setup import setup
from device_agent.contract.settings import MeasurementSettings
from device_agent.limits import AgentLimits, effective_settings
from device_agent.contract.errors import InvalidRequestError
from host.measure.agent_client import AgentClient
from host.compress import make_variant, method_config
from host.compress.variant import Baseline, CompressionContext
from tests.device_agent.service.test_server import profile_request, upload_bytes
from host.policies.random_policies import random_policy

CALLS = 200


def _run(client: AgentClient, job_id: str, sha: str, **settings) -> pb.JobSummary:
    request = profile_request(
        job_id, sha, episodes=1, env_id="HalfCheetah-v5", max_steps_per_episode=50, **settings
    )
    events = list(client.run_profile(request))
    last = events[-1]
    assert last.HasField("summary"), last
    return last.summary


@pytest.fixture(scope="module")
def policies() -> tuple[bytes, bytes]:
    data, _, _ = random_policy("HalfCheetah-v5", hidden=(64, 64))
    baseline = Baseline.from_bytes(data)
    variant = make_variant(
        baseline, "ptdq", method_config("ptdq"), CompressionContext(baseline, held_out_episodes=1)
    )
    return data, variant.data


def test_op_profile_of_a_policy_and_its_ptdq_variant(client: AgentClient, policies) -> None:
    from device_agent.contract.manifest import sha256_bytes

    by_kind: dict[str, pb.JobSummary] = {}
    for kind, data in zip(("fp32", "ptdq"), policies, strict=True):
        sha = sha256_bytes(data)
        upload_bytes(client, data, sha)
        by_kind[kind] = _run(client, f"op-{kind}", sha, op_profile_calls=CALLS, quality_workers=1)
    for kind, summary in by_kind.items():
        assert summary.HasField("op_profile"), kind
        prof = summary.op_profile
        assert not prof.error, prof.error
        assert prof.calls == CALLS
        # the job's own timed call travels beside the profiled one; the shares are of the profiled call, whose
        # wall holds ONNX Runtime's model_run, which holds every kernel
        assert prof.timed_call_us == pytest.approx(summary.inference.p50_ns / 1e3)
        assert prof.wall_per_call_us >= prof.run_per_call_us >= prof.kernel_per_call_us > 0
        types = {t.name: t for t in prof.op_types}
        assert prof.kernel_per_call_us == pytest.approx(sum(t.mean_us for t in prof.op_types))
        assert prof.kernel_per_call_us == pytest.approx(sum(n.mean_us for n in prof.nodes))
        assert sum(t.share for t in prof.op_types) + prof.outside_kernels_share == pytest.approx(1.0)
        assert prof.outside_kernels_us == pytest.approx(prof.wall_per_call_us - prof.kernel_per_call_us)
        assert 0 < prof.outside_kernels_share < 1
        # the profiler rounds each kernel down to a whole µs: a tiny one may read 0 on a fast CPU, never less
        assert all(t.mean_us >= 0 and t.share >= 0 and t.trimmed_us >= 0 for t in prof.op_types)
        assert prof.op_types[0].mean_us > 0
        assert [t.mean_us for t in prof.op_types] == sorted((t.mean_us for t in prof.op_types), reverse=True)
        assert all(n.provider == "CPUExecutionProvider" for n in prof.nodes)
        assert prof.execution_provider == "CPUExecutionProvider"
        if kind == "fp32":
            assert "FusedGemm" in types and "DynamicQuantizeMatMul" not in types
        else:
            assert "DynamicQuantizeMatMul" in types
            assert (
                sum(1 for n in prof.nodes if n.op_type == "DynamicQuantizeMatMul") == 3
            )  # every dense layer
        assert summary.runtime.session_create_s > 0
        # the floor's do-nothing kernels, profiled in the same loop, say what a kernel reads for no work
        assert prof.kernel_overhead_us >= 0


def test_op_profile_is_off_by_default_and_the_timed_phases_do_not_change(
    client: AgentClient, policies
) -> None:
    """The same job with and without the op profile: the timed figures are made the same way (same calls, same
    episodes, same floor), and only the profiled job carries a profile."""
    from device_agent.contract.manifest import sha256_bytes

    data = policies[0]
    sha = sha256_bytes(data)
    upload_bytes(client, data, sha)
    plain = _run(client, "plain", sha)
    profiled = _run(client, "profiled", sha, op_profile_calls=CALLS)
    assert not plain.HasField("op_profile") and profiled.HasField("op_profile")
    assert plain.effective.op_profile_calls == 0 and profiled.effective.op_profile_calls == CALLS
    for s in (plain, profiled):
        assert s.inference.count == s.total_steps == 50
        assert s.runtime_floor.count > 0 and s.runtime_floor_in_loop
    assert plain.return_mean == profiled.return_mean  # the same seeded episode, the same actions
    # the profile ran in a process of its own, after the measuring worker (whose pid the runtime names)
    assert profiled.runtime.worker_pid != 0


def test_latency_only_rounds_never_profile() -> None:
    requested = MeasurementSettings(latency_only=True, op_profile_calls=100)
    assert effective_settings(requested, AgentLimits(), ["CPUExecutionProvider"]).op_profile_calls == 0
    with pytest.raises(InvalidRequestError, match="op_profile_calls=-1 is outside"):
        effective_settings(MeasurementSettings(op_profile_calls=-1), AgentLimits(), ["CPUExecutionProvider"])


def test_reduction_counts_only_the_last_runs_and_assigns_kernels_by_window() -> None:
    def run(ts: float, dur: float) -> dict:
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def kernel(node: str, op: str, ts: float, dur: float) -> dict:
        return {"cat": "Node", "name": f"{node}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        run(0, 100),
        kernel("warm", "Gemm", 10, 90),  # a warm-up run: left out
        run(200, 20),
        kernel("a", "MatMul", 201, 6),
        kernel("b", "Relu", 208, 2),
        {"cat": "Node", "name": "a_fence_before", "ts": 201, "dur": 1, "args": {"op_name": "MatMul"}},
        run(300, 20),
        kernel("a", "MatMul", 301, 8),
        kernel("b", "Relu", 310, 2),
    ]
    out = reduce_events(events, calls=2, wall_per_call_us=20.0)
    assert out.kernel_per_call_us == pytest.approx(9.0)
    assert [(t.name, t.mean_us) for t in out.op_types] == [("MatMul", 7.0), ("Relu", 2.0)]
    assert out.outside_kernels_us == pytest.approx(11.0) and out.outside_kernels_share == pytest.approx(0.55)
    assert out.run_per_call_us == pytest.approx(20.0)
    assert [(t.name, t.trimmed_us) for t in out.op_types] == [("MatMul", 7.0), ("Relu", 2.0)]
    # a trimmed mean ignores the one preempted call that moves a plain mean
    slow = [run(100 * k, 20) for k in range(1, 11)]
    slow += [kernel("a", "MatMul", 100 * k + 1, 6) for k in range(1, 10)] + [kernel("a", "MatMul", 1001, 16)]
    out = reduce_events(slow, calls=10, wall_per_call_us=20.0)
    assert out.op_types[0].trimmed_us == 6.0 and out.op_types[0].mean_us == 7.0


# ------------------------------------------------------------------ TensorRT options (no GPU here: the boundary)


def test_tensorrt_gets_the_profiles_options_and_the_agents_own_cache(tmp_path: Path) -> None:
    settings = MeasurementSettings(
        execution_providers=(TENSORRT, "CUDAExecutionProvider", "CPUExecutionProvider"),
        trt_engine_cache=True,
        trt_fp16=True,
    )
    providers, options = provider_options(settings, tmp_path / "cache")
    assert providers == list(settings.execution_providers)
    assert options[0] == {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path / "cache"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path / "cache"),
        "trt_fp16_enable": "True",
    }
    assert options[1:] == [{}, {}]
    assert (tmp_path / "cache").is_dir()
    _, plain = provider_options(MeasurementSettings(execution_providers=(TENSORRT,), trt_int8=True), None)
    assert plain == [{"trt_int8_enable": "True"}]
    with pytest.raises(ValueError, match="cache directory"):
        provider_options(MeasurementSettings(execution_providers=(TENSORRT,), trt_engine_cache=True), None)


def test_engine_cache_outcome_says_built_then_reused(tmp_path: Path) -> None:
    on = MeasurementSettings(trt_engine_cache=True)
    before = cached_engines(tmp_path)
    (tmp_path / "TensorrtExecutionProvider_TRTKernel_graph_1.engine").write_bytes(b"x")
    after = cached_engines(tmp_path)
    assert engine_cache_outcome(TENSORRT, on, before, after) == "built"
    assert engine_cache_outcome(TENSORRT, on, after, cached_engines(tmp_path)) == "reused"
    assert engine_cache_outcome("CPUExecutionProvider", on, before, after) == ""
    assert engine_cache_outcome(TENSORRT, MeasurementSettings(), before, after) == ""


def test_session_creation_time_is_a_runtime_fact_on_cpu(tmp_path: Path) -> None:
    data, _, manifest = random_policy("HalfCheetah-v5", hidden=(8,))
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    settings = MeasurementSettings(execution_providers=("CPUExecutionProvider",), trt_engine_cache=True)
    *_, loaded = setup(path, manifest, "HalfCheetah-v5", settings, trt_cache_dir=tmp_path / "c")
    assert loaded.session_create_s is not None and loaded.session_create_s > 0
    assert loaded.engines == (set(), set())  # CPU never touches the cache
    assert json.dumps(sorted(cached_engines(tmp_path / "c"))) == "[]"
