"""The agent against a hostile or careless network, and its own lifecycle: stalled streams, store limits
under concurrency, damaged files, orphaned workers. Real agents on loopback (in-process and as processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.errors import InvalidRequestError
from device_agent.service.server import create_server
from device_agent.contract.settings import MeasurementSettings
from device_agent.limits import AgentLimits, effective_settings
from host.measure.agent_client import AgentClient
from tests.device_agent.service.test_server import (
    paced_request,
    process_gone,
    profile_request,
    upload_bytes,
    wait_until,
)
from host.policies.random_policies import random_policy

SHORT_CALL_TIMEOUT_S = 10.0
"""A short call must answer at all (not queue behind stalled streams); the bound only turns a hang into a
failure. Stalled streams hold their threads for ever, so a starved server fails this on any machine."""


def answers(client: AgentClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=SHORT_CALL_TIMEOUT_S)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert client.stub.GetDeviceInfo(pb.GetDeviceInfoRequest(), timeout=SHORT_CALL_TIMEOUT_S).fingerprint
    client.stub.HasModels(pb.HasModelsRequest(sha256=["0" * 64]), timeout=SHORT_CALL_TIMEOUT_S)


def stalled_upload(client: AgentClient, release: threading.Event, sha: str = "ab" * 32):
    """An upload that sends its header, then nothing, until ``release`` is set."""

    def messages():
        yield pb.UploadModelRequest(header=pb.UploadHeader(sha256=sha, size_bytes=1000))
        release.wait()

    return client.stub.UploadModel.future(messages())


@pytest.fixture
def guarded(tmp_path: Path):
    limits = AgentLimits(upload_idle_s=1.0, max_streams=8, max_concurrent_uploads=4)
    agent = create_server("127.0.0.1:0", tmp_path / "agent", limits=limits)
    yield agent
    agent.stop(grace_s=0)


def test_stalled_uploads_and_many_followers_never_starve_short_calls(guarded) -> None:
    release = threading.Event()
    with AgentClient(f"127.0.0.1:{guarded.port}") as c:
        c.wait_ready()
        data, sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
        upload_bytes(c, data, sha)
        job = c.run_profile(paced_request("long", sha))  # >= 50 s by construction
        assert next(job).HasField("accepted")
        try:
            uploads = [stalled_upload(c, release) for _ in range(24)]
            followers = [c.watch_job("long") for _ in range(24)]
            firsts = []
            for f in followers:  # admitted followers replay the job's first event; the rest are refused
                try:
                    firsts.append(next(f).WhichOneof("event"))
                except grpc.RpcError as exc:
                    assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                    assert "job streams open, its limit" in exc.details()
                    firsts.append("refused")
            answers(c)  # with every upload and stream slot taken
            assert (
                firsts.count("accepted") == 7 and firsts.count("refused") == 17
            )  # 8 streams, 1 is the job's
            # the agent ends the stalled uploads itself (idle deadline 1 s); those past the cap were refused
            codes = [u.exception().code() for u in uploads]
            assert set(codes) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert codes.count(grpc.StatusCode.CANCELLED) >= 1
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 24 - 4
            assert not c.has_models(["ab" * 32])  # nothing half-sent was stored
            answers(c)
            # slots come back: a new upload is served once the stalled ones are gone
            other, other_sha, _ = random_policy("HalfCheetah-v5", hidden=(8,), seed=1)
            assert upload_bytes(c, other, other_sha).sha256 == other_sha
        finally:
            release.set()
            for f in followers:
                f.cancel()
            c.cancel_job("long")


def test_store_limits_hold_under_concurrent_uploads(tmp_path: Path) -> None:
    models = [random_policy("HalfCheetah-v5", hidden=(32,), seed=s) for s in range(20)]
    size = max(len(m[0]) for m in models)
    assert min(len(m[0]) for m in models) * 6 > 5 * size + size // 2  # so the byte limit admits at most 5
    for limits, most in (
        (AgentLimits(max_stored_models=5, max_concurrent_uploads=20), 5),
        (AgentLimits(max_store_bytes=5 * size + size // 2, max_concurrent_uploads=20), 5),
    ):
        data_dir = tmp_path / f"agent-{most}-{limits.max_stored_models}"
        agent = create_server("127.0.0.1:0", data_dir, limits=limits)
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as c:
                c.wait_ready()
                start = threading.Barrier(len(models))

                def upload(model, c=c, start=start):
                    data, sha, _ = model
                    start.wait()
                    try:
                        upload_bytes(c, data, sha)
                        return "stored"
                    except grpc.RpcError as exc:
                        assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT, exc
                        assert "remove some" in exc.details()
                        return "refused"

                with ThreadPoolExecutor(len(models)) as pool:
                    outcomes = list(pool.map(upload, models))
                stored = list((data_dir / "models").glob("*.onnx"))
                assert len(stored) == outcomes.count("stored") <= most
                assert outcomes.count("stored") >= 1
                assert sum(p.stat().st_size for p in stored) <= limits.max_store_bytes
        finally:
            agent.stop(grace_s=0)


def test_models_and_job_records_can_be_removed(agent) -> None:
    with AgentClient(f"127.0.0.1:{agent.port}") as c:
        c.wait_ready()
        data, sha, _ = random_policy()
        upload_bytes(c, data, sha)
        assert list(c.run_profile(profile_request("done", sha, episodes=1)))[-1].HasField("summary")
        assert c.prune_jobs(older_than_days=1) == []  # it ended just now
        assert c.prune_jobs(older_than_days=0) == ["done"]
        with pytest.raises(Exception, match="NOT_FOUND"):
            c.get_job("done")
        assert c.remove_models([sha, "0" * 64]) == [sha]
        assert c.has_models([sha]) == set()
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            c.remove_models(["../evil"])


def test_a_corrupt_stored_model_is_never_used_and_the_next_upload_replaces_it(tmp_path: Path) -> None:
    agent = create_server("127.0.0.1:0", tmp_path / "agent")
    try:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            c.wait_ready()
            data, sha, _ = random_policy()
            upload_bytes(c, data, sha)
            stored = tmp_path / "agent" / "models" / f"{sha}.onnx"
            damaged = bytearray(stored.read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte: a failing disk, or a hand edit
            stored.write_bytes(bytes(damaged))
            assert c.has_models([sha]) == set()
            with pytest.raises(grpc.RpcError) as err:
                list(c.run_profile(profile_request("on-damaged", sha, episodes=1)))
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            reply = upload_bytes(c, data, sha)
            assert not reply.already_present and stored.read_bytes() == data
            assert list(c.run_profile(profile_request("repaired", sha, episodes=1)))[-1].HasField("summary")
    finally:
        agent.stop(grace_s=0)


def test_a_damaged_job_record_is_set_aside_not_a_reason_not_to_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    agent = create_server("127.0.0.1:0", data_dir)
    try:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            c.wait_ready()
            data, sha, _ = random_policy()
            upload_bytes(c, data, sha)
            assert list(c.run_profile(profile_request("kept", sha, episodes=1)))[-1].HasField("summary")
    finally:
        agent.stop(grace_s=0)
    record = data_dir / "jobs" / "kept.pb"
    (data_dir / "jobs" / "torn.pb").write_bytes(record.read_bytes()[: len(record.read_bytes()) // 3])
    (data_dir / "jobs" / "noise.pb").write_bytes(b"\xff" * 64)
    again = create_server("127.0.0.1:0", data_dir)
    try:
        assert sorted(again.jobs.damaged) == ["noise", "torn"]
        assert sorted(p.name for p in (data_dir / "jobs" / "damaged").iterdir()) == ["noise.pb", "torn.pb"]
        with AgentClient(f"127.0.0.1:{again.port}") as c:
            c.wait_ready()
            assert c.get_job("kept").state == pb.JOB_STATE_SUCCEEDED
    finally:
        again.stop(grace_s=0)


def start_agent_process(data_dir: Path) -> tuple[subprocess.Popen, int]:
    port_file = data_dir.parent / f"{data_dir.name}.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "device_agent",
            "serve",
            "--address",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: port_file.is_file() or process.poll() is not None, "the agent to serve")
    assert process.poll() is None, "the agent exited at start-up"
    return process, int(port_file.read_text())


def running_paced_job(port: int) -> int:
    """Start a paced job on the agent at ``port``; returns its measuring worker's pid once it runs."""
    with AgentClient(f"127.0.0.1:{port}") as c:
        c.wait_ready()
        data, sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
        upload_bytes(c, data, sha)
        events = c.run_profile(paced_request("paced", sha))
        started = next(e for e in events if e.HasField("started"))
        events.cancel()
        return started.started.runtime.worker_pid


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_no_worker_outlives_its_agent(tmp_path: Path, how: str) -> None:
    process, port = start_agent_process(tmp_path / "agent")
    try:
        worker = running_paced_job(port)
        assert not process_gone(worker)
        os.kill(process.pid, getattr(signal, how))
        process.wait(timeout=120)  # the bound only turns a hang into a failure
        wait_until(lambda: process_gone(worker), f"the worker of an agent ended by {how} to go")
        if how == "SIGTERM":
            assert process.returncode == 0  # a clean shutdown
    finally:
        if process.poll() is None:
            process.kill()
    if how == "SIGTERM":  # the job it was running says why it stopped, and a restart serves it
        process, port = start_agent_process(tmp_path / "agent")
        try:
            with AgentClient(f"127.0.0.1:{port}") as c:
                c.wait_ready()
                record = c.get_job("paced")
                assert record.state == pb.JOB_STATE_FAILED and record.failure.error_type == "AgentStopped"
        finally:
            process.kill()


def test_a_worker_ends_itself_when_no_agent_is_left_to_stop_it(tmp_path: Path) -> None:
    """The worker's own alarm: its lifetime is the job limit plus a grace, however it was orphaned."""
    code = "import time\nfrom device_agent.jobs.worker import bind_lifetime\nbind_lifetime(1.0)\ntime.sleep(3600)\n"
    child = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert child.returncode == -signal.SIGALRM


def test_settings_are_range_checked_at_submit() -> None:
    limits, cpu = AgentLimits(), ["CPUExecutionProvider"]
    cpus = {0, 1}
    for bad, match in (
        (MeasurementSettings(intra_op_threads=3), "intra_op_threads=3 is outside 0..2"),
        (MeasurementSettings(intra_op_threads=1024), "intra_op_threads=1024"),
        (MeasurementSettings(seed=-1), "seed=-1 is outside"),
        (MeasurementSettings(seed=2**63 - 1), "seed=9223372036854775807 is outside"),
    ):
        with pytest.raises(InvalidRequestError, match=match):
            effective_settings(bad, limits, cpu, cpus=cpus)
    assert effective_settings(MeasurementSettings(intra_op_threads=2, seed=2**31 - 1), limits, cpu, cpus=cpus)
    oversubscribe = AgentLimits(max_intra_op_threads=8)  # the operator asked for it (--max-threads 8)
    assert effective_settings(MeasurementSettings(intra_op_threads=8), oversubscribe, cpu, cpus=cpus)


def test_bad_seed_is_refused_over_the_wire(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    upload_bytes(client, data, sha)
    for seed in (-1, 2**63 - 1):
        request = profile_request(f"seed-{seed}".replace("-", "m"), sha, episodes=1)
        request.settings.seed = seed
        with pytest.raises(grpc.RpcError) as err:
            list(client.run_profile(request))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "seed=" in err.value.details()


def test_records_append_episodes_and_large_ones_are_still_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from device_agent.service import servicer

    data_dir = tmp_path / "agent"
    agent = create_server("127.0.0.1:0", data_dir)
    try:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            c.wait_ready()
            data, sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
            upload_bytes(c, data, sha)
            for job_id, n in (("one", 1), ("five", 5)):
                request = profile_request(job_id, sha, episodes=n, max_steps_per_episode=200)
                assert list(c.run_profile(request))[-1].HasField("summary")
            jobs = data_dir / "jobs"
            # episodes (200 raw latencies each) are appended; the head that is rewritten stays as small
            assert abs((jobs / "five.pb").stat().st_size - (jobs / "one.pb").stat().st_size) < 200
            assert (jobs / "five.episodes").stat().st_size > 4 * (jobs / "one.episodes").stat().st_size
            # a record too large for one reply comes without its raw latencies, and says so; WatchJob has them
            monkeypatch.setattr(servicer, "REPLY_LIMIT_BYTES", 1000)
            small = c.get_job("five")
            assert small.latencies_omitted and len(small.episodes) == 5
            assert all(not ep.inference_ns for ep in small.episodes)
            replay = [e.episode for e in c.watch_job("five") if e.HasField("episode")]
            assert [len(ep.inference_ns) for ep in replay] == [200] * 5
    finally:
        agent.stop(grace_s=0)
    # a power cut mid-append tears only the last entry, which is dropped on reading
    with (data_dir / "jobs" / "five.episodes").open("ab") as fh:
        fh.write(b"\x40\x00\x00\x00partial")
    again = create_server("127.0.0.1:0", data_dir)
    try:
        with AgentClient(f"127.0.0.1:{again.port}") as c:
            c.wait_ready()
            record = c.get_job("five")
            assert record.state == pb.JOB_STATE_SUCCEEDED and [ep.index for ep in record.episodes] == list(
                range(5)
            )
    finally:
        again.stop(grace_s=0)
