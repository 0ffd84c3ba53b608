"""Faults on real processes: the agent killed mid-deploy loses nothing and stores nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from typer.testing import CliRunner

from device_agent.contract.validity import ValidityRule
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.measure.deploy import DeployConfig, deploy
from host.measure.local_agent import local_agent
from host.measure.profiles import MeasurementOverrides, TargetProfile
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

KILLS = 3
EPISODES = 3
PACED = MeasurementOverrides(control_rate=True, max_steps_per_episode=20)
"""Jobs slow by construction, whatever the CPU: in control-rate mode every HalfCheetah step waits for the env's
control period (0.05 s), so a 20-step episode lasts at least 1 s and a job of 3 episodes at least 3 s. A fault
injected once a job has stored its first episode therefore lands mid-job on any machine."""


def job_in_progress(db_path, excluding: set[str]) -> str | None:
    """A job that has stored an episode but not finished (so a kill now is mid-job), not one of ``excluding``."""
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT j.job_id FROM jobs j JOIN episodes e ON e.job_id = j.job_id "
            "WHERE j.state IN ('queued', 'running') GROUP BY j.job_id ORDER BY j.job_id"
        ).fetchall()
    return next((r[0] for r in row if r[0] not in excluding), None)


def wait_for(predicate, what: str, bound_s: float = 300.0):
    """Poll until ``predicate`` returns something truthy. The bound only turns a hang into a failure."""
    deadline = time.monotonic() + bound_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)
    return value


def test_agent_killed_k_times_during_a_multi_model_deploy(tmp_path) -> None:
    workspace = Workspace.resolve(tmp_path / "home")
    with ResultsDB(workspace.db_path) as db:
        models = []
        for seed in range(4):
            data, _, manifest = random_policy("HalfCheetah-v5", hidden=(64, 64), seed=seed)
            models.append(store_artifact(workspace, db, data, manifest))
        with local_agent(tmp_path / "agent") as agent:
            profile = TargetProfile(name="flaky", address=agent.address, measurement=PACED)
            killed: set[str] = set()
            errors: list[BaseException] = []

            def killer() -> None:
                try:
                    for k in range(KILLS):
                        job = wait_for(lambda: job_in_progress(workspace.db_path, killed), "a job mid-way")
                        agent.process.kill()  # SIGKILL: no graceful shutdown, as in a power cut
                        killed.add(job)
                        wait_for(lambda k=k: agent.restarts > k, "the agent to be restarted")
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            thread = threading.Thread(target=killer)
            thread.start()
            outcome = deploy(
                models,
                profile,
                workspace,
                db,
                # one round, no validity retries: this test counts jobs, and this machine may be busy
                DeployConfig(
                    n_episodes=EPISODES,
                    warmup_calls=5,
                    quality_workers=1,
                    rounds=1,
                    validity_rule=ValidityRule.never(),
                ),
            )
            thread.join()
        assert not errors, errors
        assert len(killed) == KILLS and agent.restarts == KILLS
        assert outcome.failed == {}
        assert sorted(outcome.succeeded) == sorted(m.sha256 for m in models)

    conn = sqlite3.connect(workspace.db_path)
    per_model = dict(
        conn.execute("SELECT model_sha256, COUNT(*) FROM jobs WHERE state='succeeded' GROUP BY model_sha256")
    )
    assert per_model == {m.sha256: 1 for m in models}  # every expected result exactly once
    rows = conn.execute(
        "SELECT j.model_sha256, COUNT(e.idx), COUNT(DISTINCT e.idx) FROM jobs j JOIN episodes e ON e.job_id = j.job_id "
        "WHERE j.state='succeeded' GROUP BY j.job_id"
    ).fetchall()
    assert sorted(r[1:] for r in rows) == [(EPISODES, EPISODES)] * len(models)  # no episode lost, none twice
    # jobs the kills interrupted are recorded as failed, not silently dropped
    states = dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"))
    print("job states after the kills:", states)
    assert states.get("succeeded") == len(models) and not states.get("queued") and not states.get("running")


def test_host_killed_mid_deploy_then_deploy_again_finishes_only_the_rest(tmp_path) -> None:
    """SIGKILL the whole host (and its local agent) mid-deploy; the database stays consistent and
    a second deploy does only what is missing."""

    home = tmp_path / "home"
    workspace = Workspace.resolve(home)
    with ResultsDB(workspace.db_path) as db:
        models = []
        for seed in range(3):
            data, _, manifest = random_policy("HalfCheetah-v5", hidden=(32, 32), seed=seed)
            models.append(store_artifact(workspace, db, data, manifest))
    paced = tmp_path / "paced.toml"  # this machine, with jobs slow by construction (see PACED)
    paced.write_text(
        'address = "127.0.0.1:0"\nspawn_local = true\n'
        "[measurement]\ncontrol_rate = true\nmax_steps_per_episode = 20\n"
    )
    args = ["deploy", "--target", str(paced), "--episodes", "3", "--warmup-calls", "5", "--workers", "1"]
    args += ["--home", str(home)]
    args += ["--rounds", "1", "--spoiled-retries", "0"]  # this test counts jobs; this machine may be busy
    host = subprocess.Popen(
        [sys.executable, "-m", "host.cli.main", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def one_done_and_the_next_under_way() -> bool:  # then the rest needs >= 1 s of paced steps
        assert host.poll() is None, "the host exited before it was killed"
        with sqlite3.connect(workspace.db_path) as conn:
            done = conn.execute("SELECT COUNT(*) FROM jobs WHERE state='succeeded'").fetchone()[0]
            partial = conn.execute(
                "SELECT COUNT(*) FROM episodes e JOIN jobs j ON j.job_id=e.job_id WHERE j.state!='succeeded'"
            ).fetchone()[0]
        return done >= 1 and partial >= 1

    wait_for(one_done_and_the_next_under_way, "one job done and the next one under way")
    os.killpg(host.pid, signal.SIGKILL)  # the host and the agent it started, mid-write
    host.wait()
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done_before = conn.execute("SELECT COUNT(*) FROM jobs WHERE state='succeeded'").fetchone()[0]
    assert 1 <= done_before < len(models)

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{len(models) - done_before} profiled, {done_before} already done" in result.output
    per_model = dict(
        conn.execute("SELECT model_sha256, COUNT(*) FROM jobs WHERE state='succeeded' GROUP BY model_sha256")
    )
    assert per_model == {m.sha256: 1 for m in models}
    counts = conn.execute(
        "SELECT COUNT(*) FROM episodes e JOIN jobs j ON j.job_id=e.job_id WHERE j.state='succeeded' GROUP BY j.job_id"
    ).fetchall()
    assert counts == [(3,)] * len(models)
