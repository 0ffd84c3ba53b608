"""Parallel return evaluation through the real agent: several worker processes per job, same returns."""

from __future__ import annotations

import os
import signal
import time

import grpc
import psutil
import pytest

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.errors import InvalidRequestError
from device_agent.contract.settings import MeasurementSettings
from device_agent.limits import AgentLimits, effective_settings
from host.measure.agent_client import AgentClient
from host.measure.deploy import DeployConfig, profile_settings, settings_key
from host.measure.profiles import TargetProfile
from tests.device_agent.service.test_server import profile_request, upload_bytes
from host.policies.random_policies import random_policy

CPU = ["CPUExecutionProvider"]


def run(client: AgentClient, job_id: str, sha: str, **settings) -> list[pb.ProfileEvent]:
    return list(client.run_profile(profile_request(job_id, sha, **settings)))


def test_parallel_episodes_give_the_sequential_returns(client: AgentClient) -> None:
    data, sha, _ = random_policy("Hopper-v5", hidden=(32, 32), seed=5)
    upload_bytes(client, data, sha)
    sequential = run(client, "seq", sha, episodes=5, quality_workers=1)
    parallel = run(client, "par", sha, episodes=5, quality_workers=2, latency_calls=200)
    assert [e.WhichOneof("event") for e in parallel] == ["accepted", "started"] + ["episode"] * 5 + [
        "summary"
    ]

    def by_index(events: list[pb.ProfileEvent]) -> dict[int, tuple]:
        eps = [e.episode for e in events if e.HasField("episode")]
        return {ep.index: (ep.seed, ep.episode_return, ep.length, ep.terminated) for ep in eps}

    assert by_index(parallel) == by_index(sequential)  # same seeds, same returns, to the bit
    assert sorted(by_index(parallel)) == [0, 1, 2, 3, 4]
    episodes = [e.episode for e in parallel if e.HasField("episode")]
    assert all(ep.returns_only and not ep.inference_ns and ep.inference.count == 0 for ep in episodes)
    assert {ep.worker for ep in episodes} <= {0, 1}
    summary = parallel[-1].summary
    assert summary.effective.quality_workers == 2 and summary.effective.latency_calls == 200
    assert len(summary.runtime.quality_worker_pids) == 1
    assert summary.runtime.inference_binding == "io_binding"
    assert summary.latency_phase.calls == 200 and len(summary.latency_phase.inference_ns) == 200
    assert summary.inference.count == summary.env_step.count == 200  # latency from the quiet phase only
    assert summary.total_steps == sum(ep.length for ep in episodes)
    assert summary.return_mean == pytest.approx(sequential[-1].summary.return_mean)
    assert summary.HasField("runtime_floor")
    seq_summary = sequential[-1].summary
    assert not seq_summary.HasField("latency_phase") and seq_summary.effective.quality_workers == 1
    assert seq_summary.inference.count == seq_summary.total_steps


def test_cancel_and_a_dying_helper_end_the_job_and_free_the_device(client: AgentClient) -> None:
    data, sha, _ = random_policy("HalfCheetah-v5", hidden=(32, 32))
    upload_bytes(client, data, sha)
    # A helper killed mid-job fails the job, as a crashing measuring worker does. The helper is stopped
    # (SIGSTOP) as soon as the job has started: the episode it is handed can never end, so the job cannot
    # finish on its own however fast this machine is, and the kill lands mid-job by construction.
    crash = client.run_profile(profile_request("helper-crash", sha, episodes=400, quality_workers=2))
    started = next(e for e in crash if e.HasField("started"))
    (helper,) = started.started.runtime.quality_worker_pids
    os.kill(helper, signal.SIGSTOP)
    next(e for e in crash if e.HasField("episode"))  # the parallel phase is under way
    os.kill(helper, signal.SIGKILL)
    last = list(crash)[-1]
    assert last.failed.error_type == "WorkerCrashed" and "quality worker 1 died" in last.failed.message
    wait_gone([started.started.runtime.worker_pid])  # the measuring worker is stopped with it
    # cancelling a parallel job kills every one of its workers, a stopped one included
    long_job = client.run_profile(profile_request("par-long", sha, episodes=400, quality_workers=2))
    started = next(e for e in long_job if e.HasField("started"))
    pids = [started.started.runtime.worker_pid, *started.started.runtime.quality_worker_pids]
    os.kill(pids[1], signal.SIGSTOP)  # the job cannot end before the cancel
    next(e for e in long_job if e.HasField("episode"))
    assert client.cancel_job("par-long").state == pb.JOB_STATE_CANCELLED
    wait_gone(pids)
    after = run(client, "after", sha, episodes=2, quality_workers=2, max_steps_per_episode=20)
    assert after[-1].HasField("summary")


def wait_gone(pids: list[int], bound_s: float = 120.0) -> None:
    """Wait until every pid has exited. The bound only turns a hang into a failure."""

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + bound_s
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} still running"
        time.sleep(0.05)


def test_worker_memory_limit_still_applies_to_parallel_jobs(tmp_path) -> None:
    from device_agent.service.server import create_server

    agent = create_server("127.0.0.1:0", tmp_path / "agent", limits=AgentLimits(max_worker_rss_bytes=1 << 20))
    try:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            c.wait_ready()
            data, sha, _ = random_policy("Hopper-v5", hidden=(8,))
            upload_bytes(c, data, sha)
            events = run(c, "big", sha, episodes=4, quality_workers=2)
            assert events[-1].failed.error_type == "WorkerMemoryLimit"
    finally:
        agent.stop(grace_s=0)


def test_quality_workers_resolution_and_limits() -> None:
    limits, cpus = AgentLimits(), {0, 1, 2, 3}

    def effective(**kw) -> MeasurementSettings:
        return effective_settings(MeasurementSettings(**kw), limits, CPU, cpus=cpus)

    assert effective().quality_workers == 1  # an old host that never sets it: every episode alone
    assert effective(quality_workers=0).quality_workers == 4  # automatic: one per CPU
    assert effective(quality_workers=0, cpu_affinity=(1, 2)).quality_workers == 2
    assert effective(quality_workers=0, n_episodes=3).quality_workers == 3  # never more than episodes
    assert effective(quality_workers=3).quality_workers == 3
    metered = effective_settings(
        MeasurementSettings(quality_workers=0), limits, CPU, cpus, has_energy_meter=True
    )
    assert metered.quality_workers == 1  # per-episode energy needs the episodes alone
    with pytest.raises(InvalidRequestError, match=r"quality_workers=5 is outside 0\.\.4"):
        effective(quality_workers=5)
    with pytest.raises(InvalidRequestError, match="quality_workers=-1"):
        effective(quality_workers=-1)
    with pytest.raises(InvalidRequestError, match="latency_calls=0"):
        effective(latency_calls=0)
    few = AgentLimits(max_quality_workers=2)
    assert effective_settings(MeasurementSettings(quality_workers=0), few, CPU, cpus).quality_workers == 2


def test_refused_quality_workers_is_invalid_argument(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    upload_bytes(client, data, sha)
    with pytest.raises(grpc.RpcError) as err:
        run(client, "too-many-workers", sha, quality_workers=10_000)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "quality_workers" in err.value.details()


def test_everything_that_changes_what_is_measured_is_in_the_settings_key() -> None:
    """--workers decides what latency is computed from (every episode step, or the latency phase), and the
    rounds how many paired samples there are: jobs differing in either are not the same measurement."""
    profile = TargetProfile(name="t", address="127.0.0.1:1")
    keys = {settings_key(profile_settings(profile, DeployConfig(quality_workers=n))) for n in (0, 1, 2, 8)}
    assert len(keys) == 4
    plain = profile_settings(profile, DeployConfig())
    assert not plain.HasField("latency_calls")
    assert settings_key(plain, rounds=5) != settings_key(plain, rounds=3)
    assert settings_key(plain, rounds=5, round_calls=500) != settings_key(plain, rounds=5, round_calls=200)
    assert settings_key(plain, rounds=5) == settings_key(profile_settings(profile, DeployConfig()), rounds=5)
    assert settings_key(profile_settings(profile, DeployConfig(latency_calls=500))) != settings_key(plain)
    assert profile_settings(profile, DeployConfig()).quality_workers == 0  # automatic unless asked
