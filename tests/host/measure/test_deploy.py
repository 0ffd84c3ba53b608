"""Host side of the wire: deploy to real agents (spawned and in-process), SQLite results, reports."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.validity import ValidityRule
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.errors import ProfileError
from host.measure.agent_client import TRANSIENT_CODES, AgentClient
from host.measure.deploy import (
    DeployConfig,
    deploy,
    deploy_key,
    plan_session,
    profile_settings,
    run_job,
    settings_key,
)
from host.measure.profiles import (
    MeasurementOverrides,
    TargetProfile,
    find_profile,
    list_profiles,
    load_profile,
)
from host.measure.protocol import MAX_STEPS_PER_EPISODE_DEFAULT, N_EPISODES_DEFAULT, WARMUP_CALLS_DEFAULT
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]


def register(workspace: Workspace, db: ResultsDB, **kwargs):
    data, _, manifest = random_policy(**kwargs)
    return store_artifact(workspace, db, data, manifest)


def test_cli_deploy_local_then_report_and_resume(drlc_home) -> None:
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        a = register(workspace, db, seed=0)
        b = register(workspace, db, seed=1, hidden=(8,))
    # two rounds; a round the validity rule spoils (this machine may be busy) is kept, flagged, not re-run
    args = ["deploy", "--target", "local", "--episodes", "3", "--warmup-calls", "5", "--rounds", "2"]
    args += ["--spoiled-retries", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 profiled, 0 already done, 2 uploaded, 0 failed" in result.output
    assert "2 round(s), models shuffled per round" in result.output
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("SELECT COUNT(*), MIN(state), MAX(state) FROM jobs").fetchone() == (
        4,
        "succeeded",
        "succeeded",
    )
    assert conn.execute("SELECT COUNT(DISTINCT session_id), MIN(round), MAX(round) FROM jobs").fetchone() == (
        1,
        0,
        1,
    )
    assert conn.execute("SELECT COUNT(*) FROM jobs WHERE validity IS NULL").fetchone()[0] == 0
    # round 0 runs the episodes, round 1 is latency only
    assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 6
    assert conn.execute("SELECT COUNT(DISTINCT target_fingerprint) FROM jobs").fetchone()[0] == 1
    # a second deploy with the same settings finds everything done and sends nothing
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "0 profiled, 2 already done, 0 uploaded" in again.output
    # the spawned agent kept its models: a forced re-run profiles again without uploading
    forced = runner.invoke(app, [*args, "--models", a.sha256[:10], "--force"])
    assert "1 profiled, 0 already done, 0 uploaded" in forced.output, forced.output
    assert conn.execute("SELECT COUNT(DISTINCT session_id) FROM jobs").fetchone()[0] == 2
    md = runner.invoke(app, ["report", "--format", "md"])
    assert md.exit_code == 0 and "## Target `local`" in md.output
    assert a.name in md.output and b.name in md.output and "not measured" in md.output
    csv_out = runner.invoke(app, ["report", "--format", "csv"])
    lines = csv_out.output.strip().splitlines()
    assert lines[0].startswith("target,model,sha256") and len(lines) == 3
    table = runner.invoke(app, ["report"])
    assert table.exit_code == 0 and " on local:" in table.output and "…" not in table.output


def test_deploy_refuses_unknown_models_and_profiles(drlc_home) -> None:
    result = runner.invoke(app, ["deploy", "--target", "local"])
    assert result.exit_code == 1 and "no models to deploy" in result.output
    result = runner.invoke(app, ["deploy", "--target", "no-such-device"])
    assert result.exit_code == 1 and "no target 'no-such-device'; known targets: " in result.output


def test_broken_stream_is_reattached_and_stored_once(tmp_path, agent, client: AgentClient) -> None:
    """The host loses the stream mid-job (as when it crashed); the next deploy re-attaches by id."""
    workspace = Workspace.resolve(tmp_path / "home")
    profile = TargetProfile(name="loopback", address=f"127.0.0.1:{agent.port}")
    cfg = DeployConfig(n_episodes=3, warmup_calls=5, rounds=1, validity_rule=ValidityRule.never())
    settings = profile_settings(profile, cfg)
    key = settings_key(settings, cfg.rounds)
    with ResultsDB(workspace.db_path) as db:
        model = register(workspace, db, env_id="HalfCheetah-v5", hidden=(32, 32))
        client.upload(model.path, model.sha256)
        info = client.device_info()
        session = plan_session([model], profile.name, info.fingerprint, key, 1, seed=0)
        db.add_session(session)
        job_id = "cut-job"
        request = pb.ProfileRequest(job_id=job_id, model_sha256=model.sha256, settings=settings)
        db.add_job(job_id, model.sha256, profile.name, info.fingerprint, key, request, session.session_id, 0)
        stream = client.run_profile(request)
        for event in stream:
            if event.HasField("episode"):
                db.add_episode(job_id, event.episode)
                break
        stream.cancel()
        outcome = deploy([model], profile, workspace, db, cfg)
        assert outcome.succeeded == [model.sha256] and outcome.uploaded == []
        assert outcome.session_id == session.session_id  # the interrupted session is continued
        assert [j.job_id for j in db.jobs_for(model.sha256, info.fingerprint, key)] == [job_id]
        assert db.count_episodes(job_id) == 3
        assert db.job(job_id).state == "succeeded"
        # replaying a finished job again stores nothing twice
        assert run_job(client, db, job_id, None, model, 3, cfg, lambda *_: None) is None
        assert db.count_episodes(job_id) == 3


def test_a_job_the_agent_does_not_know_is_run_again(tmp_path, agent, client: AgentClient) -> None:
    """A job recorded as sent that the agent does not know (its data dir was wiped, say): the deploy's
    re-attach gets NOT_FOUND, marks the job lost and runs the model again, not failed."""
    workspace = Workspace.resolve(tmp_path / "home")
    profile = TargetProfile(name="loopback", address=f"127.0.0.1:{agent.port}")
    cfg = DeployConfig(n_episodes=2, warmup_calls=5, rounds=1, validity_rule=ValidityRule.never())
    settings = profile_settings(profile, cfg)
    key = settings_key(settings, cfg.rounds)
    with ResultsDB(workspace.db_path) as db:
        model = register(workspace, db, env_id="HalfCheetah-v5", hidden=(32, 32))
        info = client.device_info()
        session = plan_session([model], profile.name, info.fingerprint, key, 1, seed=0)
        db.add_session(session)
        request = pb.ProfileRequest(job_id="wiped", model_sha256=model.sha256, settings=settings)
        db.add_job("wiped", model.sha256, profile.name, info.fingerprint, key, request, session.session_id, 0)
        outcome = deploy([model], profile, workspace, db, cfg)
        assert outcome.succeeded == [model.sha256] and outcome.failed == {}
        lost = db.job("wiped")
        assert lost is not None and lost.state == "failed"
        assert lost.error is not None and "the agent lost this job (NOT_FOUND)" in lost.error
        (ran,) = [j for j in db.session_jobs(session.session_id) if j.state == "succeeded"]
        assert db.count_episodes(ran.job_id) == 2


def test_profile_n_episodes_is_honoured_unless_the_command_line_says(tmp_path, agent) -> None:
    """``[measurement] n_episodes`` in a profile is what a deploy runs; ``--episodes`` wins over it; with
    neither, the protocol's default. A real deploy on a real agent stores that many episodes."""
    profile = TargetProfile(
        name="loopback", address=f"127.0.0.1:{agent.port}", measurement=MeasurementOverrides(n_episodes=2)
    )
    bare = TargetProfile(name="loopback", address=f"127.0.0.1:{agent.port}")
    assert profile_settings(profile, DeployConfig()).n_episodes == 2
    assert profile_settings(profile, DeployConfig(n_episodes=4)).n_episodes == 4
    assert profile_settings(bare, DeployConfig()).n_episodes == N_EPISODES_DEFAULT
    assert deploy_key(profile, DeployConfig()) == deploy_key(bare, DeployConfig(n_episodes=2))
    workspace = Workspace.resolve(tmp_path / "home")
    with ResultsDB(workspace.db_path) as db:
        model = register(workspace, db, env_id="HalfCheetah-v5", hidden=(32, 32))
        cfg = DeployConfig(warmup_calls=5, rounds=1, validity_rule=ValidityRule.never())
        outcome = deploy([model], profile, workspace, db, cfg)
        assert outcome.succeeded == [model.sha256]
        (job,) = db.session_jobs(outcome.session_id)
        assert db.count_episodes(job.job_id) == 2
        assert db.job_request(job.job_id).settings.n_episodes == 2


def test_profile_settings_are_the_bytes_the_hand_built_message_had() -> None:
    """profile_settings goes through the contract's declared mapping (settings_request); the message is the one
    the hand-written builder made, byte for byte, so no workspace's settings keys (what counts as already done)
    change. The expected messages are that builder's output, written out."""
    bare = TargetProfile(name="t", address="127.0.0.1:1")
    old_default = pb.ProfileSettings(
        n_episodes=N_EPISODES_DEFAULT, seed=0, warmup_calls=100, max_steps_per_episode=0, quality_workers=0
    )
    full = TargetProfile(
        name="t",
        address="127.0.0.1:1",
        execution_providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        measurement=MeasurementOverrides(
            n_episodes=7,
            warmup_calls=20,
            max_steps_per_episode=50,
            intra_op_threads=2,
            keep_latencies=False,
            cpu_affinity=[0, 3],
            control_rate=True,
            idle_s=0.5,
            inference_phase_s=0.0,
            op_profile_calls=300,
            trt_engine_cache=True,
            trt_fp16=True,
            trt_int8=False,
        ),
    )
    cfg = DeployConfig(seed=11, quality_workers=2, latency_calls=400)
    old_full = pb.ProfileSettings(
        n_episodes=7,
        seed=11,
        warmup_calls=20,
        max_steps_per_episode=50,
        execution_providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        intra_op_threads=2,
        keep_latencies=False,
        cpu_affinity=[0, 3],
        control_rate=True,
        idle_s=0.5,
        inference_phase_s=0.0,
        quality_workers=2,
        latency_calls=400,
        op_profile_calls=300,
        trt_engine_cache=True,
        trt_fp16=True,
        trt_int8=False,
    )
    for profile, config, old in ((bare, DeployConfig(), old_default), (full, cfg, old_full)):
        built = profile_settings(profile, config)
        assert built.SerializeToString(deterministic=True) == old.SerializeToString(deterministic=True)
        assert settings_key(built) == settings_key(old)
    # false and zero given explicitly are on the wire (presence), unset ones are not: the check can tell them apart
    assert profile_settings(full, cfg).HasField("keep_latencies") and not profile_settings(
        bare, cfg
    ).HasField("keep_latencies")
    assert profile_settings(bare, cfg).SerializeToString() != old_default.SerializeToString()


def test_warmup_and_max_steps_take_the_command_then_the_profile_then_the_default() -> None:
    """The same precedence as n_episodes: a command-line value wins over the profile's (it used to lose
    silently), the profile's over the protocol's default."""
    profile = TargetProfile(
        name="t",
        address="127.0.0.1:1",
        measurement=MeasurementOverrides(warmup_calls=20, max_steps_per_episode=50),
    )
    bare = TargetProfile(name="t", address="127.0.0.1:1")

    def sent(p: TargetProfile, cfg: DeployConfig) -> tuple[int, int]:
        s = profile_settings(p, cfg)
        return s.warmup_calls, s.max_steps_per_episode

    assert sent(profile, DeployConfig()) == (20, 50)
    assert sent(profile, DeployConfig(warmup_calls=5, max_steps_per_episode=0)) == (5, 0)
    assert sent(bare, DeployConfig()) == (WARMUP_CALLS_DEFAULT, MAX_STEPS_PER_EPISODE_DEFAULT)


def test_the_shipped_profiles_are_found_from_any_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRLC_PROFILES", raising=False)
    assert load_profile(find_profile("local")).spawn_local


def test_transient_status_codes_are_declared_once() -> None:
    """Which gRPC codes mean "try again" is agent_client.TRANSIENT_CODES; no module of host/measure keeps a
    copy of its own (a copy drifts: deploy.TRANSIENT did, unused)."""
    copies = []
    for path in sorted((ROOT / "host").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            codes = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr.isupper()}
            codes &= {c.name for c in grpc.StatusCode}
            if codes == {c.name for c in TRANSIENT_CODES}:
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(copies) == 1 and copies[0].startswith("host/measure/agent_client.py:"), copies


def test_failed_job_is_reported(tmp_path, agent) -> None:
    workspace = Workspace.resolve(tmp_path / "home")
    profile = TargetProfile(
        name="loopback", address=f"127.0.0.1:{agent.port}", execution_providers=["NoSuchExecutionProvider"]
    )
    with ResultsDB(workspace.db_path) as db:
        model = register(workspace, db)
        outcome = deploy([model], profile, workspace, db, DeployConfig(n_episodes=1, rounds=2))
        assert list(outcome.failed) == [model.sha256]
        assert "none of the requested execution providers" in outcome.failed[model.sha256]


@pytest.mark.parametrize(
    "bad", ["nonsense = 1\naddress='x'", "address = 5", "address = 'a:1'\n[measurement]\nfoo = 1"]
)
def test_profile_loader_rejects_bad_files(tmp_path, bad: str) -> None:

    path = tmp_path / "pi5.toml"
    path.write_text(bad)
    with pytest.raises(ProfileError):
        load_profile(path)


def test_shipped_profiles_load() -> None:

    profiles = {p.stem: load_profile(p) for p in list_profiles()}
    assert profiles["local"].spawn_local


def test_profile_security_reads_token_from_env_and_files(tmp_path, monkeypatch) -> None:

    path = tmp_path / "robot.toml"
    path.write_text(
        'address = "robot1:50051"\n[security]\ntoken_env = "ROBOT1_TOKEN"\ntls_ca = "'
        + str(tmp_path / "ca.pem")
        + '"\n'
    )
    profile = load_profile(path)
    with pytest.raises(ProfileError, match=r"\$ROBOT1_TOKEN, which is not set"):
        profile.client_security()
    monkeypatch.setenv("ROBOT1_TOKEN", "t0ken-t0ken-t0ken-t0ken")
    with pytest.raises(ProfileError, match="cannot read the TLS CA"):
        profile.client_security()
    (tmp_path / "ca.pem").write_bytes(b"PEM")
    security = profile.client_security()
    assert security.token == "t0ken-t0ken-t0ken-t0ken" and security.tls_ca == b"PEM" and security.tls
    path.write_text('address = "x:1"\n[security]\ntoken = "inline secrets are refused"\n')
    with pytest.raises(ProfileError):
        load_profile(path)
