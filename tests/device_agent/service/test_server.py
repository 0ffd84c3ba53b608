"""The agent over real gRPC on loopback: uploads, profile jobs in real MuJoCo with real ONNX Runtime."""

from __future__ import annotations

import time

import grpc
import pytest

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.measure.floor import FLOOR_CALLS
from device_agent.service.server import create_server
from host.measure.agent_client import AgentClient
from host.errors import DeviceError
from host.policies.random_policies import random_policy


UPLOAD_BOUND_S = 300.0
"""Longest an upload may take before a test fails: the agent's model check may use up to 60 s of CPU."""


def upload_bytes(
    client: AgentClient, data: bytes, sha: str, size: int | None = None
) -> pb.UploadModelResponse:
    def messages():
        yield pb.UploadModelRequest(
            header=pb.UploadHeader(sha256=sha, size_bytes=len(data) if size is None else size)
        )
        for i in range(0, len(data), 1000):
            yield pb.UploadModelRequest(chunk=data[i : i + 1000])

    # the bound only turns a hang into a failure: an upload includes the model's check in a process of its own
    return client.stub.UploadModel(messages(), timeout=UPLOAD_BOUND_S)


def profile_request(
    job_id: str, sha: str, episodes: int = 3, env_id: str = "", **settings
) -> pb.ProfileRequest:
    return pb.ProfileRequest(
        job_id=job_id,
        model_sha256=sha,
        env_id=env_id,
        settings=pb.ProfileSettings(
            n_episodes=episodes, seed=7, warmup_calls=10, keep_latencies=True, **settings
        ),
    )


def paced_request(job_id: str, sha: str, episodes: int = 1) -> pb.ProfileRequest:
    """A job that is slow by construction, whatever the CPU: HalfCheetah never terminates early, and in
    control-rate mode each of its 1000 steps waits for the env's control period (0.05 s), so every episode
    lasts at least 50 s of wall time. One measuring worker, so every episode is paced."""
    return profile_request(
        job_id, sha, episodes=episodes, env_id="HalfCheetah-v5", control_rate=True, quality_workers=1
    )


def wait_until(predicate, what: str, bound_s: float = 120.0) -> None:
    """Poll ``predicate`` until it holds. The bound only turns a hang into a failure; nothing here depends
    on how fast the machine is."""
    deadline = time.monotonic() + bound_s
    while not predicate():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_health_and_device_info(client: AgentClient) -> None:
    info = client.device_info()
    assert info.fingerprint and info.n_cpu_logical >= 1
    assert "CPUExecutionProvider" in info.execution_providers
    assert info.versions["onnxruntime"]
    assert info.limits.max_model_bytes > 0


def test_upload_dedupe_and_restart(tmp_path, agent, client: AgentClient) -> None:
    data, sha, manifest = random_policy()
    first = upload_bytes(client, data, sha)
    assert first.sha256 == sha and not first.already_present
    assert manifest.name in first.manifest_json
    assert client.has_models([sha, "0" * 64]) == {sha}
    second = upload_bytes(client, data, sha)
    assert second.already_present
    stored = list((tmp_path / "agent-data" / "models").glob("*.onnx"))
    assert [p.name for p in stored] == [f"{sha}.onnx"]
    # a new agent on the same data dir still holds it
    agent.stop(grace_s=0)
    again = create_server("127.0.0.1:0", tmp_path / "agent-data")
    try:
        with AgentClient(f"127.0.0.1:{again.port}") as c2:
            c2.wait_ready()
            assert c2.has_models([sha]) == {sha}
    finally:
        again.stop(grace_s=0)


def test_upload_refuses_hash_mismatch_and_bad_models(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    other_sha = random_policy(seed=1)[1]
    with pytest.raises(grpc.RpcError) as err:
        upload_bytes(client, data, other_sha)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "sha256 mismatch" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        upload_bytes(client, data[:-10], sha, size=len(data))
    assert "the upload was cut" in err.value.details()
    junk = b"not an onnx model at all" * 10
    from device_agent.contract.manifest import sha256_bytes

    with pytest.raises(grpc.RpcError) as err:
        upload_bytes(client, junk, sha256_bytes(junk))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert client.has_models([sha, other_sha]) == set()
    with pytest.raises(grpc.RpcError) as err:
        upload_bytes(client, data, "../../etc/passwd")
    assert "not a sha256" in err.value.details()


def test_profile_job_streams_episodes_and_summary(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    upload_bytes(client, data, sha)
    events = list(client.run_profile(profile_request("job-1", sha, episodes=4)))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["accepted", "started", "episode", "episode", "episode", "episode", "summary"]
    assert [e.sequence for e in events] == list(range(len(events)))
    episodes = [e.episode for e in events if e.HasField("episode")]
    assert [ep.seed for ep in episodes] == [7, 8, 9, 10]
    for ep in episodes:
        assert ep.length >= 1 and len(ep.inference_ns) == ep.length
        assert 0 < ep.inference.p50_ns <= ep.inference.p99_ns <= ep.inference.max_ns
        assert ep.env_step.count == ep.length
        assert ep.episode_return == ep.length - int(
            ep.terminated
        )  # InvertedPendulum-v5: 1 per step, 0 on the fall
    summary = events[-1].summary
    assert summary.n_episodes == 4
    assert summary.total_steps == sum(ep.length for ep in episodes)
    assert summary.inference.count == summary.total_steps
    assert summary.runtime.execution_provider == "CPUExecutionProvider"
    assert summary.runtime.timer_overhead_ns > 0
    assert summary.HasField("runtime_floor") and summary.runtime_floor.count == FLOOR_CALLS
    assert summary.runtime_floor_in_loop
    assert 0 < summary.runtime_floor.p50_ns
    mem = summary.memory
    assert 0 < mem.rss_before_load_bytes <= mem.rss_after_load_bytes <= mem.peak_rss_bytes
    assert mem.model_file_bytes == len(data)
    assert summary.effective.execution_providers == ["CPUExecutionProvider"]
    # same seed, same policy: the same returns (deterministic actions, seeded resets)
    again = [
        e.episode
        for e in client.run_profile(profile_request("job-2", sha, episodes=4))
        if e.HasField("episode")
    ]
    assert [ep.episode_return for ep in again] == [ep.episode_return for ep in episodes]
    record = client.get_job("job-1")
    assert record.state == pb.JOB_STATE_SUCCEEDED and len(record.episodes) == 4
    assert record.summary.return_mean == pytest.approx(summary.return_mean)


def test_lost_connection_then_fetch_by_id(client: AgentClient) -> None:
    data, sha, _ = random_policy("HalfCheetah-v5", hidden=(32, 32))
    upload_bytes(client, data, sha)
    call = client.run_profile(profile_request("job-cut", sha, episodes=3))
    first = next(call)
    assert first.HasField("accepted")
    call.cancel()  # the host goes away mid-job

    def finished() -> bool:
        state = client.get_job("job-cut").state
        assert state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, pb.JOB_STATE_SUCCEEDED), state
        return state == pb.JOB_STATE_SUCCEEDED

    wait_until(finished, "the job to finish with no host attached")
    record = client.get_job("job-cut")
    assert len(record.episodes) == 3 and all(ep.length == 1000 for ep in record.episodes)
    # re-attaching replays the whole job, marked as re-attached
    replay = list(client.watch_job("job-cut"))
    assert replay[0].accepted.reattached
    # (the same events whether the agent still holds the job in memory or reads its record from disk)
    assert [e.WhichOneof("event") for e in replay[1:]] == ["started"] + ["episode"] * 3 + ["summary"]
    assert [e.sequence for e in replay] == list(range(len(replay)))
    # the same job id with the same request re-attaches; with another request it is refused
    assert next(iter(client.run_profile(profile_request("job-cut", sha, episodes=3)))).accepted.reattached
    with pytest.raises(grpc.RpcError) as err:
        list(client.run_profile(profile_request("job-cut", sha, episodes=5)))
    assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS


def test_bad_requests_fail_clearly_and_agent_keeps_serving(client: AgentClient) -> None:
    data, sha, _ = random_policy()
    upload_bytes(client, data, sha)
    with pytest.raises(grpc.RpcError) as err:
        list(client.run_profile(profile_request("no-model", "ab" * 32)))
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        list(client.run_profile(profile_request("../evil", sha)))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        list(client.run_profile(profile_request("too-many", sha, episodes=10**6)))
    assert "n_episodes" in err.value.details()
    for env_id in (
        "NoSuchEnv-v0",
        "CartPole-v1",
    ):  # unknown, and known but not MuJoCo: refused before queueing
        with pytest.raises(grpc.RpcError) as err:
            list(client.run_profile(profile_request(f"env-{env_id}", sha, env_id=env_id)))
        assert (
            err.value.code() is grpc.StatusCode.PERMISSION_DENIED
            and "not a Gymnasium MuJoCo env" in err.value.details()
        )
    wrong_shape = list(client.run_profile(profile_request("wrong-env", sha, env_id="HalfCheetah-v5")))
    assert wrong_shape[-1].failed.error_type == "InvalidModelError"
    assert "HalfCheetah-v5 has observations [17]" in wrong_shape[-1].failed.message
    assert client.get_job("wrong-env").state == pb.JOB_STATE_FAILED
    ok = list(client.run_profile(profile_request("after", sha, episodes=1)))
    assert ok[-1].HasField("summary")
    with pytest.raises(DeviceError, match="NOT_FOUND"):
        client.get_job("never-ran")


def test_cancel_frees_the_device_promptly(client: AgentClient) -> None:
    data, sha, _ = random_policy("HalfCheetah-v5", hidden=(32, 32))
    upload_bytes(client, data, sha)
    # each accepted (queued) before the next is sent, so the queue's order is this one, not a race between
    # the agent's server threads
    long_job = client.run_profile(paced_request("long", sha, episodes=3))  # >= 150 s by construction
    assert next(long_job).HasField("accepted")
    queued = client.run_profile(profile_request("queued", sha, episodes=1))
    assert next(queued).HasField("accepted")
    never = client.run_profile(profile_request("never", sha, episodes=1))
    assert next(never).HasField("accepted")
    assert client.cancel_job("never").state == pb.JOB_STATE_CANCELLED  # still queued: cancelled at once
    assert list(never)[-1].failed.error_type == "Cancelled"
    started = next(e for e in long_job if e.HasField("started"))  # its worker is up: the job is running
    record = client.cancel_job("long")  # returns once the job has ended
    assert record.state == pb.JOB_STATE_CANCELLED and len(record.episodes) < 3
    assert list(long_job)[-1].failed.error_type == "Cancelled"
    wait_until(lambda: process_gone(started.started.runtime.worker_pid), "the cancelled job's worker to go")
    events = list(queued)  # the next job runs right after, long before the paced job could have ended
    assert events[-1].HasField("summary")
    assert client.cancel_job("queued").state == pb.JOB_STATE_SUCCEEDED  # finished jobs stay as they are


def nan_policy() -> tuple[bytes, str]:
    """A valid drlc model whose output layer is all NaN: it loads, then returns NaN actions."""
    import onnx

    from device_agent.contract.manifest import sha256_bytes

    data, _, _ = random_policy("Hopper-v5", hidden=(8,))
    model = onnx.load_from_string(data)
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == "layers.1.bias":
            broken = onnx.numpy_helper.to_array(tensor) * float("nan")
            model.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(broken, tensor.name))
    data = model.SerializeToString()
    return data, sha256_bytes(data)


def test_nan_and_crash_fail_only_their_job(client: AgentClient) -> None:
    import os
    import signal

    good, good_sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
    bad, bad_sha = nan_policy()
    upload_bytes(client, good, good_sha)
    upload_bytes(client, bad, bad_sha)
    nan_events = list(client.run_profile(profile_request("nan", bad_sha, episodes=1)))
    assert nan_events[-1].failed.error_type == "WorkerError"
    assert "non-finite action" in nan_events[-1].failed.message
    # a worker that dies (segfault in the runtime) fails only its job; the job is paced, so it is still
    # running when the signal arrives
    crash = client.run_profile(paced_request("crash", good_sha))
    started = next(e for e in crash if e.HasField("started"))
    os.kill(started.started.runtime.worker_pid, signal.SIGSEGV)
    last = list(crash)[-1]
    assert last.failed.error_type == "WorkerCrashed" and "exit code -11" in last.failed.message
    after = list(client.run_profile(profile_request("after", good_sha, episodes=1, max_steps_per_episode=50)))
    assert after[-1].HasField("summary")
    assert [client.get_job(j).state for j in ("nan", "crash", "after")] == [
        pb.JOB_STATE_FAILED,
        pb.JOB_STATE_FAILED,
        pb.JOB_STATE_SUCCEEDED,
    ]


def test_a_hanging_job_is_stopped_at_the_agent_limit_and_the_next_job_runs(tmp_path) -> None:
    """A hung worker (SIGSTOPped: it makes no progress at all) in a job that could not finish inside the
    limit anyway (paced): the agent kills it at its limit, whatever the CPU's speed, and moves on."""
    import os
    import signal

    from device_agent.limits import AgentLimits

    agent = create_server("127.0.0.1:0", tmp_path / "agent", limits=AgentLimits(max_job_duration_s=2.0))
    try:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            c.wait_ready()
            good, good_sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
            upload_bytes(c, good, good_sha)
            hang = c.run_profile(paced_request("hang", good_sha))
            # accepted (queued) before the next job is even sent: two RPCs sent back to back reach the agent's
            # queue in whichever order its server threads take its lock, so the order would be a race
            assert next(hang).HasField("accepted")
            nxt = c.run_profile(paced_request("next", good_sha))
            assert next(nxt).HasField("accepted")
            worker = None
            for event in hang:
                if event.HasField("started"):  # (a slow machine may hit the limit before the worker is up)
                    worker = event.started.runtime.worker_pid
                    os.kill(worker, signal.SIGSTOP)
                last = event
            assert last.failed.error_type == "JobTimeout"
            assert "limit of 2 s" in last.failed.message
            if worker is not None:
                wait_until(lambda: process_gone(worker), "the hung worker to be killed")
            # the device serves the next job: it starts (its worker comes up, or the limit ends it first)
            events = list(nxt)
            kinds = [e.WhichOneof("event") for e in events]
            assert kinds in (["started", "failed"], ["failed"]), kinds
            assert events[-1].failed.error_type == "JobTimeout"
            assert c.get_job("hang").state == c.get_job("next").state == pb.JOB_STATE_FAILED
            hung, then = c.get_job("hang"), c.get_job("next")
            spans = (hung.started_unix_ns, hung.ended_unix_ns, then.started_unix_ns, then.ended_unix_ns)
            assert 0 < spans[0] <= spans[1] <= spans[2], f"hung job's span and the next job's start: {spans}"
    finally:
        agent.stop(grace_s=0)


def test_two_hosts_at_once_are_queued_not_interleaved(agent) -> None:
    import threading

    data, sha, _ = random_policy("HalfCheetah-v5", hidden=(32, 32))
    received: dict[str, list[str]] = {}

    def host(name: str) -> None:
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            upload_bytes(c, data, sha)
            received[name] = [
                e.WhichOneof("event") for e in c.run_profile(profile_request(f"host-{name}", sha))
            ]

    threads = [threading.Thread(target=host, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert received == {n: ["accepted", "started", "episode", "episode", "episode", "summary"] for n in "ab"}
    # the agent's own clock, not the order in which two host threads happened to be scheduled: one whole
    # job ran, then the other
    with AgentClient(f"127.0.0.1:{agent.port}") as c:
        first, second = sorted((c.get_job(f"host-{n}") for n in "ab"), key=lambda r: r.started_unix_ns)
    assert 0 < first.started_unix_ns <= first.ended_unix_ns <= second.started_unix_ns <= second.ended_unix_ns
