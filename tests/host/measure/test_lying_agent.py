"""A host that a lying agent cannot fool: a fake agent built from the generated stubs sends what a real one
never would, and the host stores nothing of it, fails that job with "the agent sent ...", and goes on."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.proto import agent_pb2_grpc
from device_agent.service.server import SERVICE_NAME
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.errors import DrlcError, ProfileError
from host.measure.agent_client import AgentClient, ClientSecurity
from host.measure.deploy import DeployConfig, deploy
from host.measure.profiles import TargetProfile
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

Lie = Callable[[pb.ProfileRequest], list[pb.EpisodeResult]]


def honest(request: pb.ProfileRequest) -> list[pb.EpisodeResult]:
    s = request.settings
    if s.latency_only:  # a later round: timed calls, no episode
        return []
    return [
        pb.EpisodeResult(index=i, seed=s.seed + i, episode_return=100.0 + i, length=50, wall_s=0.01)
        for i in range(s.n_episodes)
    ]


def replace(position: int, **fields) -> Lie:
    def lie(request: pb.ProfileRequest) -> list[pb.EpisodeResult]:
        episodes = honest(request)
        for name, value in fields.items():
            setattr(episodes[position], name, value)
        return episodes

    return lie


def duplicate_with_other_figures(request: pb.ProfileRequest) -> list[pb.EpisodeResult]:
    episodes = honest(request)
    twin = pb.EpisodeResult()
    twin.CopyFrom(episodes[1])
    twin.episode_return = -5.0
    return [*episodes[:2], twin, *episodes[2:]]


def too_many(request: pb.ProfileRequest) -> list[pb.EpisodeResult]:
    s = request.settings
    return [
        pb.EpisodeResult(index=i, seed=s.seed + i, episode_return=1.0, length=5, wall_s=0.01)
        for i in range(s.n_episodes * 30)
    ]


class LyingAgent(agent_pb2_grpc.AgentServicer):
    """Speaks the wire contract; says whatever ``lie`` makes of each job."""

    def __init__(self, lie: Lie, info: pb.DeviceInfo | None = None, failure: pb.JobFailed | None = None):
        self.lie = lie
        self.info = info or pb.DeviceInfo(fingerprint="f" * 16, hostname="liar", n_cpu_logical=2)
        self.failure = failure

    def GetDeviceInfo(self, request, context):
        return self.info

    def HasModels(self, request, context):
        return pb.HasModelsResponse(present=list(request.sha256))

    def RunProfile(self, request, context) -> Iterator[pb.ProfileEvent]:
        yield pb.ProfileEvent(job_id=request.job_id, accepted=pb.JobAccepted(job_id=request.job_id))
        yield pb.ProfileEvent(job_id=request.job_id, started=pb.JobStarted())
        if self.failure is not None:
            yield pb.ProfileEvent(job_id=request.job_id, failed=self.failure)
            return
        episodes = self.lie(request)
        for episode in episodes:
            yield pb.ProfileEvent(job_id=request.job_id, episode=episode)
        returns = [e.episode_return for e in episodes]
        mean = sum(returns) / len(returns) if returns else math.nan  # (the agent's "not defined")
        summary = pb.JobSummary(n_episodes=len(episodes), return_mean=mean, total_steps=50, wall_s=1.0)
        yield pb.ProfileEvent(job_id=request.job_id, summary=summary)


def serve(servicer: LyingAgent):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    agent_pb2_grpc.add_AgentServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


def deploy_to_liar(tmp_path: Path, servicer: LyingAgent):
    workspace = Workspace.resolve(tmp_path / "home")
    server, port = serve(servicer)
    try:
        with ResultsDB(workspace.db_path) as db:
            data, _, manifest = random_policy()
            model = store_artifact(workspace, db, data, manifest)
            profile = TargetProfile(name="liar", address=f"127.0.0.1:{port}")
            cfg = DeployConfig(n_episodes=4, warmup_calls=5, max_attempts=1)
            try:
                outcome = deploy([model], profile, workspace, db, cfg)
            except DrlcError as exc:  # a refusal before any job (device info) is the other honest outcome
                return exc, workspace, model
        return outcome, workspace, model
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    "lie, says",
    [
        (replace(1, episode_return=math.nan), "a non-finite number (nan) in episode 1.episode_return"),
        (replace(2, episode_return=math.inf), "a non-finite number (inf)"),
        (replace(0, episode_return=-math.inf), "a non-finite number (-inf)"),
        (replace(3, index=-7), "episode index -7 for a job of 4 episodes"),
        (replace(1, length=-5), "episode 1 of length -5"),
        (replace(1, seed=12345), "episode 1 with seed 12345"),
        (duplicate_with_other_figures, "episode 1 twice, with different figures"),
        (too_many, "episode index 4 for a job of 4 episodes"),
        (replace(0, wall_s=-1.0), "negative wall time"),
    ],
)
def test_a_lie_fails_its_job_and_stores_nothing_of_it(tmp_path: Path, lie: Lie, says: str) -> None:
    outcome, workspace, model = deploy_to_liar(tmp_path, LyingAgent(lie))
    error = outcome.failed[model.sha256]
    assert error.startswith("the agent sent ") and says in error and "nothing of this job was stored" in error
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM jobs WHERE state='succeeded'").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM jobs WHERE state='failed'").fetchone()[0] >= 1


def test_the_honest_fake_is_believed(tmp_path: Path) -> None:
    """(So the rows above fail for their lie, not for the fake.)"""
    outcome, workspace, model = deploy_to_liar(tmp_path, LyingAgent(honest))
    assert outcome.succeeded == [model.sha256] and not outcome.failed
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] >= 4


def test_huge_text_and_markup_from_an_agent_stay_plain_and_bounded(tmp_path: Path) -> None:
    huge = pb.DeviceInfo(fingerprint="f" * 16, hostname="h" * 30_000_000)
    refused, _, _ = deploy_to_liar(tmp_path / "a", LyingAgent(honest, info=huge))
    assert "30000000 characters in device info.hostname" in str(refused)
    assert not (tmp_path / "a" / "home" / "results.sqlite").exists() or (
        sqlite3.connect(tmp_path / "a" / "home" / "results.sqlite")
        .execute("SELECT COUNT(*) FROM targets")
        .fetchone()[0]
        == 0
    )
    failure = pb.JobFailed(error_type="WorkerError", message="[/oops] input [batch, 11] " + "x" * 10_000_000)
    outcome, _, model = deploy_to_liar(tmp_path / "b", LyingAgent(honest, failure=failure))
    error = outcome.failed[model.sha256]
    assert error.startswith("WorkerError: [/oops] input [batch, 11] ") and len(error) < 5000
    assert f"({len(failure.message)} characters)" in error


def test_a_token_goes_in_plain_text_only_to_loopback_or_when_allowed() -> None:
    token = ClientSecurity(token="secret")
    with AgentClient("127.0.0.1:1", security=token):  # loopback (an SSH tunnel): fine
        pass
    with pytest.raises(
        ProfileError, match=r"refusing to send the agent token in plain text to robot1\.invalid:50051"
    ):
        AgentClient("robot1.invalid:50051", security=token)
    with AgentClient(
        "robot1.invalid:50051", security=ClientSecurity(token="secret", allow_plaintext_token=True)
    ):
        pass  # (no call is made: nothing leaves this machine)


def test_clean_removes_models_and_old_job_records_from_a_target(tmp_path: Path) -> None:
    """The host side of storage housekeeping, through the real CLI and a real local agent."""

    home = tmp_path / "home"
    workspace = Workspace.resolve(home)
    with ResultsDB(workspace.db_path) as db:
        data, _, manifest = random_policy(name="tidy")
        model = store_artifact(workspace, db, data, manifest)
    runner = CliRunner()
    deployed = runner.invoke(
        app, ["deploy", "--target", "local", "--episodes", "1", "--warmup-calls", "5", "--home", str(home)]
    )
    assert deployed.exit_code == 0, deployed.output
    stored = workspace.local_agent_dir / "models" / f"{model.sha256}.onnx"
    assert stored.is_file()
    nothing = runner.invoke(app, ["clean", "--target", "local", "--home", str(home)])
    assert nothing.exit_code == 1 and "nothing to clean" in nothing.output
    cleaned = runner.invoke(
        app, ["clean", "--target", "local", "--models", "tidy", "--jobs-older-than", "0", "--home", str(home)]
    )
    assert cleaned.exit_code == 0, cleaned.output
    assert "1 of 1 models removed" in cleaned.output and "job records deleted" in cleaned.output
    assert not stored.exists() and not list((workspace.local_agent_dir / "jobs").glob("*.pb"))
    conn = sqlite3.connect(workspace.db_path)  # the results here are kept
    assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] >= 1


def test_a_paired_phase_must_be_against_the_model_asked_for_and_as_long() -> None:
    from host.measure.agent_checks import AgentSentInvalidData, JobCheck

    asked, other = "a" * 64, "b" * 64
    request = pb.ProfileRequest(
        job_id="j",
        model_sha256="c" * 64,
        settings=pb.ProfileSettings(latency_only=True, paired_with_sha256=asked),
    )

    def summary(reference: str, own: int, ref: int, block: int = 25) -> pb.JobSummary:
        return pb.JobSummary(
            inference=pb.LatencyStats(count=own, p50_ns=1e4),
            paired=pb.PairedLatency(
                reference_sha256=reference,
                block_calls=block,
                reference=pb.LatencyStats(count=ref, p50_ns=1e4),
            ),
        )

    JobCheck(request).summary(summary(asked, 300, 300))  # what a real agent sends
    for lie, says in [
        (summary(other, 300, 300), "against bbbbbbbbbbbb when aaaaaaaaaaaa was asked for"),
        (summary(asked, 300, 299), "299 reference and 300 own calls"),
        (summary(asked, 300, 300, block=0), "in blocks of 0"),
    ]:
        with pytest.raises(AgentSentInvalidData, match=says):
            JobCheck(request).summary(lie)
    unasked = pb.ProfileRequest(
        job_id="j", model_sha256="c" * 64, settings=pb.ProfileSettings(latency_only=True)
    )
    with pytest.raises(AgentSentInvalidData, match="when none was asked for"):
        JobCheck(unasked).summary(summary(asked, 300, 300))
