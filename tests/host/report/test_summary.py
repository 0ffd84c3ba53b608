"""JobSummary: the one reader of a job's stored summary (agent.proto JobSummary as JSON)."""

from __future__ import annotations

import math

from google.protobuf import json_format

from device_agent.contract.proto import agent_pb2 as pb
from host.report.summary import JobSummary


def stored(summary: pb.JobSummary) -> JobSummary:
    """As the results database keeps it (ResultsDB.finish_job): int64 as strings, defaults left out."""
    return JobSummary.parse(json_format.MessageToJson(summary, indent=None, preserving_proto_field_name=True))


def test_figures_come_back_in_their_units_from_the_stored_json() -> None:
    summary = pb.JobSummary(
        inference=pb.LatencyStats(p50_ns=20_000, p99_ns=35_000, p999_ns=50_000),
        env_step=pb.LatencyStats(mean_ns=7_000),
        runtime_floor=pb.LatencyStats(p50_ns=3_000),
        memory=pb.MemoryStats(
            rss_before_load_bytes=100 << 20, rss_after_load_bytes=103 << 20, peak_rss_bytes=200 << 20
        ),
        control_rate=pb.ControlRate(ticks=100, deadline_misses=4),
        runtime=pb.RuntimeInfo(execution_provider="CPUExecutionProvider", onnxruntime_version="1.2"),
    )
    s = stored(summary)
    assert (s.p50_us, s.p99_us, s.p999_us, s.env_step_us) == (20.0, 35.0, 50.0, 7.0)
    assert s.has_floor and s.floor_p50_us == 3.0
    assert s.model_mb == 3.0 and s.peak_rss_mb == 200.0  # older agents: the whole growth at load
    assert s.deadline_misses == 4
    assert s.execution_provider == "CPUExecutionProvider"
    assert (
        "onnxruntime_version=1.2" in s.runtime_key
        and "execution_provider=CPUExecutionProvider" in s.runtime_key
    )
    summary.memory.model_added_bytes = 1 << 20  # newer agents measure the model apart from the runtime
    assert stored(summary).model_mb == 1.0


def test_what_the_agent_did_not_report_is_unknown_not_zero() -> None:
    s = JobSummary.parse(None)
    assert math.isnan(s.p50_us) and math.isnan(s.env_step_us) and math.isnan(s.peak_rss_mb)
    assert not s.has_floor and s.deadline_misses is None and s.validity is None
    assert s.energy_text() == "not measured" and s.energy_per_item() == (None, None)
    assert s.latency_phase_batches() == []
    # a job that ran back-to-back has no control_rate; one paced without a miss has deadline_misses 0
    assert stored(pb.JobSummary(control_rate=pb.ControlRate(ticks=10))).deadline_misses == 0
