"""The whole job path with the issue-5 measurements: on this machine (no meter here, usually), and with a
fake meter in-process; control-rate mode, CPU affinity and the inference-only phase through the real agent."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from google.protobuf import json_format

from device_agent.jobs import convert
from device_agent.contract.proto import agent_pb2 as pb
from device_agent.energy.meters.base import EnergyMeter, Found
from device_agent.contract.errors import InvalidRequestError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.measure.results import EpisodeOutcome, JobEnd, JobStart
from device_agent.contract.settings import MeasurementSettings, settings_from_proto, settings_to_proto
from device_agent.limits import AgentLimits, effective_settings
from host.measure.agent_client import AgentClient
from host.report.summary import energy_per_item, energy_text
from tests.device_agent.service.test_server import profile_request, upload_bytes
from host.policies.random_policies import random_policy


def summary_json(summary: pb.JobSummary) -> dict:
    """The summary as the host's results database stores it."""
    import json

    return json.loads(json_format.MessageToJson(summary, indent=None, preserving_proto_field_name=True))


def test_local_job_reports_floor_latency_memory_and_no_energy(client: AgentClient) -> None:
    info = client.device_info()
    kinds = {m.name.split(":")[0] for m in info.energy_meters}
    assert kinds == {
        "nvml",
        "rapl",
        "ina3221",
        "pmic",
        "battery",
    }  # every kind looked for, each with a verdict
    assert all(m.reason for m in info.energy_meters if not m.available)
    has_meter = any(m.available for m in info.energy_meters)

    data, sha, manifest = random_policy()
    upload_bytes(client, data, sha)
    events = list(client.run_profile(profile_request("plain", sha, episodes=2)))
    summary = events[-1].summary
    assert summary.HasField("runtime_floor") and summary.runtime_floor.p50_ns > 0
    lat = summary.inference
    assert 0 < lat.p50_ns <= lat.p90_ns <= lat.p99_ns <= lat.p999_ns <= lat.max_ns
    assert sum(lat.bucket_counts) == lat.count == summary.total_steps
    assert summary.env_step.count == summary.total_steps
    mem = summary.memory
    assert 0 < mem.rss_before_load_bytes <= mem.rss_after_load_bytes <= mem.peak_rss_bytes
    assert mem.model_file_bytes == len(data) and mem.model_parameters == manifest.n_params
    assert not mem.HasField("device_memory_bytes")  # CPU provider: nothing to report
    assert list(summary.runtime.cpu_affinity) == sorted(os.sched_getaffinity(0))
    assert {m.name for m in summary.energy_meters} == {m.name for m in info.energy_meters}
    assert not summary.HasField("control_rate")
    if has_meter:
        pytest.skip("this machine has an energy meter; the no-meter path is covered where there is none")
    assert list(summary.energy) == [] and list(summary.idle_energy) == []
    assert not summary.HasField("inference_phase")  # automatic: only where a meter works
    assert all(list(e.episode.energy) == [] for e in events if e.HasField("episode"))
    assert energy_text(summary_json(summary)) == "not measured (no meter on this device)"


def test_control_rate_affinity_and_inference_phase_through_the_agent(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    upload_bytes(client, data, sha)
    cpu = max(os.sched_getaffinity(0))
    request = profile_request(
        "paced",
        sha,
        episodes=2,
        max_steps_per_episode=10,
        control_rate=True,
        cpu_affinity=[cpu],
        inference_phase_s=0.2,
        idle_s=0.0,
    )
    events = list(client.run_profile(request))
    summary = events[-1].summary
    assert summary.effective.control_rate and list(summary.effective.cpu_affinity) == [cpu]
    assert list(summary.runtime.cpu_affinity) == [cpu]
    episodes = [e.episode for e in events if e.HasField("episode")]
    # InvertedPendulum-v5's dt is 0.04 s: 2 episodes of at most 10 ticks take at most 0.8 s paced
    assert summary.control_rate.period_s == pytest.approx(0.04)
    assert summary.control_rate.ticks == summary.total_steps == sum(ep.length for ep in episodes)
    assert all(ep.HasField("deadline_misses") for ep in episodes)
    assert summary.control_rate.deadline_misses == sum(ep.deadline_misses for ep in episodes)
    assert all(ep.wall_s >= 0.9 * (ep.length - 1) * 0.04 for ep in episodes)
    phase = summary.inference_phase
    assert phase.calls >= 1000 and phase.calls % 1000 == 0  # whole passes over 1000 recorded observations
    assert phase.wall_s >= 0.2 and phase.mean_call_ns == pytest.approx(phase.wall_s * 1e9 / phase.calls)
    assert 1 < phase.distinct_observations <= 1000


def test_bad_affinity_and_energy_settings_are_refused() -> None:
    limits, providers = AgentLimits(), ["CPUExecutionProvider"]
    with pytest.raises(InvalidRequestError, match="does not have"):
        effective_settings(MeasurementSettings(cpu_affinity=(4096,)), limits, providers)
    with pytest.raises(InvalidRequestError, match="idle_s"):
        effective_settings(MeasurementSettings(idle_s=-1.0), limits, providers)
    with pytest.raises(InvalidRequestError, match="inference_phase_s"):
        effective_settings(MeasurementSettings(inference_phase_s=1e6), limits, providers)
    ok = effective_settings(MeasurementSettings(cpu_affinity=(0, 0)), limits, providers)
    assert ok.cpu_affinity == (0,)


def test_settings_round_trip_keeps_unset_apart_from_zero() -> None:
    defaults = MeasurementSettings()
    unset = settings_from_proto(pb.ProfileSettings(), defaults)
    assert unset.idle_s == defaults.idle_s and unset.inference_phase_s is None
    zero = settings_from_proto(pb.ProfileSettings(idle_s=0.0, inference_phase_s=0.0), defaults)
    assert zero.idle_s == 0.0 and zero.inference_phase_s == 0.0
    back = settings_to_proto(zero)
    assert back.HasField("idle_s") and back.HasField("inference_phase_s")
    assert not settings_to_proto(unset).HasField("inference_phase_s")


class ClockMeter(EnergyMeter):
    """A steady 5 W draw, counted in µJ from the real clock: the whole recorder path without hardware.

    Updates every 0.1 ms, so the two short episodes below (a few ms since the loop uses IO binding) still
    span the ten updates a window needs."""

    def __init__(self) -> None:
        super().__init__("fake:steady", 61e-6, 1e-4, "CPU package", wrap=None, scale_j=1e-6)
        self.t0 = self.last_t = time.perf_counter()
        # a sample's time is the instant of its raw read, so a preempted test process cannot skew a
        # short window's watts beyond the tolerances below
        self.clock = lambda: self.last_t

    def read_raw(self) -> float:
        self.last_t = time.perf_counter()
        return 5.0 * (self.last_t - self.t0) * 1e6


def test_job_with_a_meter_reports_idle_gross_net_per_episode_and_per_inference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from device_agent.measure import job
    from device_agent.energy import recorder

    fake = ClockMeter()
    monkeypatch.setattr(recorder, "probe_all", lambda avoid_cpus=None: [Found(fake.status(), lambda: fake)])
    data, _, manifest = random_policy()
    model = tmp_path / "m.onnx"
    model.write_bytes(data)
    settings = MeasurementSettings(
        n_episodes=2, warmup_calls=5, max_steps_per_episode=50, idle_s=0.2, inference_phase_s=0.2
    )
    sent: list[object] = []
    job.run_profile(
        model, ArtifactManifest.from_json(manifest.to_json()), manifest.env_id, settings, sent.append
    )
    start, *episodes, end = sent
    assert isinstance(start, JobStart) and isinstance(end, JobEnd)
    assert all(isinstance(e, EpisodeOutcome) and len(e.energy) == 1 for e in episodes)
    (idle,) = end.idle_energy
    assert idle.window_s >= 0.2 and idle.gross_j == pytest.approx(5.0 * idle.window_s, rel=1e-4)
    (whole,) = end.energy
    assert whole.n_items == 2 and whole.idle_power_w == pytest.approx(5.0, rel=1e-4)
    # a steady draw is all idle power: gross is 5 W x window, net is nothing
    assert whole.gross_j == pytest.approx(5.0 * whole.window_s, rel=1e-4)
    assert whole.net_j == pytest.approx(0.0, abs=1e-3) and whole.net_j_per_item == pytest.approx(
        0.0, abs=1e-3
    )
    (inference,) = end.inference_phase.energy
    assert inference.n_items == end.inference_phase.calls >= 1000
    assert end.meters[0].name == "fake:steady" and end.meters[0].available

    summary = convert.summary_to_proto(
        end,
        [convert.episode_to_proto(e) for e in episodes],
        pb.RuntimeInfo(),
        pb.ProfileSettings(),
        pb.ProfileSettings(),
    )
    stored = summary_json(summary)
    assert stored["idle_energy"][0]["meter"] == "fake:steady"
    assert stored["inference_phase"]["energy"][0]["n_items"] == str(
        end.inference_phase.calls
    )  # int64 as JSON text
    text = energy_text(stored)
    assert text.startswith("fake:steady: ") and "J/episode" in text and "µJ/inference" in text
    # a steady draw: net of idle power is zero up to rounding, and a figure that is not positive is never
    # one a verdict compares (README: How drlc decides)
    for value, tolerance in zip(energy_per_item(stored), (1e-3, 1e-6), strict=True):
        assert value is None or value == pytest.approx(0.0, abs=tolerance)


def test_report_energy_text_for_flagged_gross_and_missing_readings() -> None:
    flagged = {
        "energy": [
            {"meter": "nvml:gpu0", "gross_j": 0.0, "window_s": 0.05, "below_resolution": True, "n_items": "3"}
        ],
        "inference_phase": {
            "energy": [{"meter": "nvml:gpu0", "gross_j": 2.0, "window_s": 2.0, "n_items": "40000"}]
        },
    }
    # the episodes window was too short for NVML; the inference phase has no idle figure: gross 50 µJ/call
    assert energy_text(flagged) == "nvml:gpu0: episode below resolution, 50 µJ/inference gross"
    assert energy_per_item(flagged) == (None, None)  # below resolution, and gross only: nothing to compare
    assert energy_text({}) == "not measured"  # a summary from before energy was reported
    gone = {"energy_meters": [{"name": "rapl:package-0", "reason": "failed mid-job: file vanished"}]}
    assert energy_text(gone) == "not measured (rapl:package-0: failed mid-job: file vanished)"
