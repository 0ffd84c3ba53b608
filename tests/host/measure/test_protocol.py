"""The measurement protocol on a real agent over loopback: sessions, shuffled rounds, spoiled rounds re-run,
resuming per (model, round), the results-database migration, and study targets grouped by device."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_agent.contract.validity import ValidityRule
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.measure.deploy import DeployConfig, deploy, judge
from host.measure.profiles import TargetProfile
from host.report.noise import noise_lines
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

QUIET = ValidityRule.never()
"""Tests about the rounds themselves must not depend on how busy this machine is."""


def setup_models(tmp_path: Path, n: int) -> tuple[Workspace, ResultsDB, list]:
    workspace = Workspace.resolve(tmp_path / "home")
    db = ResultsDB(workspace.db_path)
    models = []
    for seed in range(n):
        data, _, manifest = random_policy(seed=seed, hidden=(8 + seed,))
        models.append(store_artifact(workspace, db, data, manifest))
    return workspace, db, models


def loopback(agent) -> TargetProfile:
    return TargetProfile(name="loopback", address=f"127.0.0.1:{agent.port}")


def cfg(**kw) -> DeployConfig:
    base = {
        "n_episodes": 2,
        "warmup_calls": 5,
        "latency_calls": 50,
        "round_latency_calls": 40,
        "validity_rule": QUIET,
    }
    return DeployConfig(**{**base, **kw})


def test_rounds_share_one_session_in_recorded_shuffled_orders(tmp_path, agent) -> None:
    workspace, db, models = setup_models(tmp_path, 3)
    with db:
        outcome = deploy(models, loopback(agent), workspace, db, cfg(rounds=4, order_seed=11))
        assert sorted(outcome.succeeded) == sorted(m.sha256 for m in models) and not outcome.failed
        rows = db.conn.execute(
            "SELECT model_sha256, round, session_id, summary FROM jobs ORDER BY created_at, rowid"
        ).fetchall()
        assert len(rows) == 3 * 4
        assert {r["session_id"] for r in rows} == {outcome.session_id}
        # every model once per round, in the order the session recorded for that round
        session = db.session(outcome.session_id)
        assert session is not None and session.order_seed == 11
        ran = [[r["model_sha256"] for r in rows if r["round"] == k] for k in range(4)]
        assert ran == session.orders
        # the recorded orders are the seeded shuffles, and they are shuffles (not all the same order)
        rng = random.Random(11)
        expected = []
        for _ in range(4):
            order = [m.sha256 for m in models]
            rng.shuffle(order)
            expected.append(order)
        assert session.orders == expected and len({tuple(o) for o in expected}) > 1
        # round 0 ran the episodes; later rounds are latency-only jobs of round_latency_calls in-loop calls
        for r in rows:
            summary = json.loads(r["summary"])
            if r["round"] == 0:
                assert summary["n_episodes"] == 2 and "runtime_floor" in summary
            else:
                assert summary.get("n_episodes", 0) == 0 and "runtime_floor" not in summary
                assert int(summary["latency_phase"]["calls"]) == 40
                assert summary["effective"]["latency_only"] is True
        episodes = db.conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
        assert episodes == 3 * 2


def test_a_spoiled_round_is_run_again_and_never_used(tmp_path, agent) -> None:
    workspace, db, models = setup_models(tmp_path, 2)
    victim = models[1].sha256
    seen: list[tuple[str, int]] = []

    def spoil_first_tries(job_id: str) -> list[str]:
        """Spoil, by construction, the first job of the victim's rounds 0 and 2; judge the rest for real."""
        job = db.job(job_id)
        assert job is not None
        seen.append((job.model_sha256, job.round or 0))
        judge(db, job_id, QUIET)
        if job.model_sha256 == victim and job.round in (0, 2) and seen.count((victim, job.round)) == 1:
            db.set_validity(job_id, {"reasons": ["planted"]}, True)
            return ["planted"]
        return []

    with db:
        outcome = deploy(models, loopback(agent), workspace, db, cfg(rounds=3), rule=spoil_first_tries)
        assert not outcome.failed and not outcome.kept_spoiled
        assert sorted((sha, r) for sha, r, _ in outcome.spoiled) == [(victim, 0), (victim, 2)]
        line = outcome.noisy_line()
        assert line is not None and "2 job(s) spoiled and run again" in line and "planted" in line
        rounds = db.conn.execute(
            "SELECT round, COUNT(*), SUM(spoiled) FROM jobs WHERE model_sha256=? GROUP BY round", (victim,)
        ).fetchall()
        assert [tuple(r) for r in rounds] == [(0, 2, 1), (1, 1, 0), (2, 2, 1)]
        # the report's job for the victim is its unspoiled round 0, not the spoiled one
        picked = {r["model_sha256"]: r for r in db.succeeded_jobs()}
        assert picked[victim]["spoiled"] == 0 and picked[victim]["round"] == 0
        # one unspoiled job per (model, round): what the decision layer pairs
        clean = db.conn.execute(
            "SELECT model_sha256, round, COUNT(*) FROM jobs WHERE spoiled=0 GROUP BY model_sha256, round"
        ).fetchall()
        assert len(clean) == 2 * 3 and {r[2] for r in clean} == {1}


@pytest.mark.skipif(not Path("/proc/loadavg").is_file(), reason="needs /proc/loadavg (Linux)")
def test_a_threshold_nothing_can_meet_spoils_every_job_with_bounded_retries(tmp_path, agent) -> None:
    """max_load_per_cpu = -1: any load average (>= 0) spoils the job, so every round is retried twice, then
    kept flagged; the real facts the agent sent are stored with the verdict."""
    workspace, db, models = setup_models(tmp_path, 1)
    impossible = ValidityRule(None, None, -1.0, None, None, None)
    with db:
        outcome = deploy(
            models,
            loopback(agent),
            workspace,
            db,
            cfg(rounds=2, validity_rule=impossible, max_spoiled_retries=2),
        )
        assert len(outcome.spoiled) == 2 * 3 and sorted(outcome.kept_spoiled) == [
            (models[0].sha256, 0),
            (models[0].sha256, 1),
        ]
        assert tuple(db.conn.execute("SELECT COUNT(*), SUM(spoiled) FROM jobs").fetchone()) == (6, 6)
        for (text,) in db.conn.execute("SELECT validity FROM jobs"):
            facts = json.loads(text)
            assert facts["reasons"][0].startswith("load average") and len(facts["load_avg_before"]) == 3
            assert facts["window"] in ("episodes", "latency phase")
            assert facts["window_s"] > 0 and "involuntary_switches" in facts

        (line,) = noise_lines(db)
        assert line.startswith("device loopback was noisy: 6 of 6 jobs") and "load average (6)" in line

    shown = CliRunner().invoke(app, ["report", "--home", str(tmp_path / "home")], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "device loopback was noisy: 6 of 6 jobs" in shown.output


def test_resume_continues_the_session_per_model_and_round(tmp_path, agent) -> None:
    workspace, db, models = setup_models(tmp_path, 2)

    class HostDied(Exception):
        pass

    judged: list[str] = []

    def die_after_three(job_id: str) -> list[str]:
        if len(judged) == 3:
            raise HostDied
        judged.append(job_id)
        return judge(db, job_id, QUIET)

    with db:
        with pytest.raises(HostDied):
            deploy(models, loopback(agent), workspace, db, cfg(rounds=3), rule=die_after_three)
        first = db.conn.execute("SELECT DISTINCT session_id FROM jobs").fetchall()
        assert len(first) == 1 and db.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 4
        again = deploy(models, loopback(agent), workspace, db, cfg(rounds=3))
        assert again.session_id == first[0][0]  # the same session, continued
        assert db.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 2 * 3  # nothing run twice
        assert db.conn.execute("SELECT COUNT(*) FROM jobs WHERE validity IS NULL").fetchone()[0] == 0
        done = deploy(models, loopback(agent), workspace, db, cfg(rounds=3))
        assert sorted(done.skipped) == sorted(m.sha256 for m in models) and not done.succeeded
        # a subset of a finished session is finished too; --force starts a new session
        assert deploy(models[:1], loopback(agent), workspace, db, cfg(rounds=3)).skipped == [models[0].sha256]
        forced = deploy(models[:1], loopback(agent), workspace, db, cfg(rounds=3, force=True))
        assert forced.session_id != again.session_id and forced.succeeded == [models[0].sha256]
        # other rounds are another measurement: a new session
        other = deploy(models, loopback(agent), workspace, db, cfg(rounds=2))
        assert other.session_id not in (again.session_id, forced.session_id) and len(other.succeeded) == 2


def test_old_databases_gain_the_protocol_columns(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE jobs (job_id TEXT PRIMARY KEY, model_sha256 TEXT NOT NULL, target TEXT NOT NULL,
           target_fingerprint TEXT NOT NULL, settings_key TEXT NOT NULL, request TEXT NOT NULL,
           state TEXT NOT NULL, summary TEXT, error TEXT, created_at TEXT NOT NULL, finished_at TEXT);
           INSERT INTO jobs VALUES ('j', 'm', 't', 'f', 'k', '{}', 'succeeded', NULL, NULL, 'now', 'now');"""
    )
    conn.commit()
    conn.close()
    with ResultsDB(path) as db:
        columns = {r[1]: r for r in db.conn.execute("PRAGMA table_info(jobs)")}
        assert {"session_id", "round", "spoiled", "validity"} <= set(columns)
        job = db.job("j")
        assert job is not None and job.session_id is None and job.round is None and job.spoiled is False
    with ResultsDB(path) as db:  # opening it again changes nothing
        assert len(list(db.conn.execute("PRAGMA table_info(jobs)"))) == len(columns)


def test_targets_on_one_device_are_measured_one_after_another(tmp_path, agent) -> None:
    from host.study.run import concurrency_groups, target_fingerprints

    workspace = Workspace.resolve(tmp_path / "home")
    a = TargetProfile(name="a", address=f"127.0.0.1:{agent.port}")
    b = TargetProfile(name="b", address=f"127.0.0.1:{agent.port}")
    fingerprints = target_fingerprints([a, b], workspace)
    assert fingerprints["a"] == fingerprints["b"]
    assert [[p.name for p in g] for g in concurrency_groups([a, b], fingerprints)] == [["a", "b"]]
    other = {"a": "f1", "b": "f2"}
    assert [[p.name for p in g] for g in concurrency_groups([a, b], other)] == [["a"], ["b"]]


def variant_family(tmp_path: Path, seeds: tuple[int, ...]) -> tuple[Workspace, ResultsDB, list]:
    """A baseline (the first seed) and variants that name it as their parent: random InvertedPendulum MLPs,
    whose seeded returns differ enough that some fall short of 90 % of the baseline's."""
    workspace = Workspace.resolve(tmp_path / "home")
    db = ResultsDB(workspace.db_path)
    models = []
    for i, seed in enumerate(seeds):
        data, _, manifest = random_policy(seed=seed, hidden=(16, 16), name=f"family-{seed}")
        if i:
            manifest = manifest.model_copy(update={"parent_sha256": models[0].sha256, "method": "l2"})
        models.append(store_artifact(workspace, db, data, manifest))
    return workspace, db, models


FAMILY_SEEDS = (4, 3, 5, 0, 10)
"""Baseline seed 4 (returns ~50 on the episodes of seeds 0-3): seeds 0 and 10 return ~25 and ~13 on them (shown
to fall short), seeds 3 and 5 ~40 (not shown to): the deploy's seeded episodes are what decides, on any CPU."""


def test_later_rounds_time_the_candidates_by_default_and_everyone_on_request(tmp_path, agent) -> None:
    from host.measure.until_decided import falls_short

    workspace, db, models = variant_family(tmp_path, FAMILY_SEEDS)
    parents = {m.sha256: m.parent_sha256 for m in models}
    with db:
        outcome = deploy(models, loopback(agent), workspace, db, cfg(rounds=3, n_episodes=4))
        returns = db.session_returns(outcome.session_id)
        short = falls_short(returns, parents)
        assert outcome.short == sorted(short)
        assert short and short < set(parents) - {models[0].sha256}  # the planted family: some, not all
        timed = {
            sha
            for (sha,) in db.conn.execute(
                "SELECT DISTINCT model_sha256 FROM jobs WHERE session_id=? AND round > 0",
                (outcome.session_id,),
            )
        }
        assert timed == set(parents) - short  # the baseline and every variant that can still be recommended
        everyone = deploy(
            models, loopback(agent), workspace, db, cfg(rounds=3, n_episodes=4, later_rounds="all")
        )
        assert not everyone.failed, everyone.failed
        assert everyone.short == [] and everyone.session_id != outcome.session_id
        counts = db.conn.execute(
            "SELECT model_sha256, COUNT(DISTINCT round) FROM jobs WHERE session_id=? GROUP BY model_sha256",
            (everyone.session_id,),
        ).fetchall()
        assert sorted(n for _, n in counts) == [3] * len(models)


def test_unsettled_variants_get_more_paired_rounds_until_settled_or_the_cap(tmp_path, agent) -> None:
    """--max-rounds on a real agent: after the rounds, only the variants the judge names get more rounds,
    MORE_ROUNDS_STEP at a time, each a fresh job timed against its baseline in its worker, until the judge no
    longer names them or the cap; the settings key says how far, and asking for more rounds without a judge is
    refused before anything runs."""
    from host.measure.deploy import deploy_key
    from host.measure.protocol import MORE_ROUNDS_STEP

    workspace, db, models = variant_family(tmp_path, (4, 3, 5))
    base, settles, stays = models
    asked: list[dict[str, int]] = []

    def judge(session_id: str) -> dict[str, str]:
        have = dict(
            db.conn.execute(
                "SELECT model_sha256, COUNT(DISTINCT round) FROM jobs WHERE session_id=? AND state='succeeded'"
                " GROUP BY model_sha256",
                (session_id,),
            ).fetchall()
        )
        asked.append(have)
        out = {stays.sha256: "CI crosses -5% after some rounds", base.sha256: "never a baseline"}
        if have[settles.sha256] < 5:
            out[settles.sha256] = "undecided"
        return out

    more = cfg(rounds=3, max_rounds=9, later_rounds="all")
    with db:
        with pytest.raises(ValueError, match="unsettled"):
            deploy(models, loopback(agent), workspace, db, more)
        assert db.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
        outcome = deploy(models, loopback(agent), workspace, db, more, unsettled=judge)
        assert not outcome.failed, outcome.failed
        rounds = {
            sha: sorted(
                r
                for (r,) in db.conn.execute(
                    "SELECT DISTINCT round FROM jobs WHERE session_id=? AND model_sha256=?",
                    (outcome.session_id, sha),
                )
            )
            for sha in (base.sha256, settles.sha256, stays.sha256)
        }
        assert rounds[base.sha256] == [0, 1, 2]  # a baseline is timed in its variants' workers
        assert rounds[settles.sha256] == list(range(3 + MORE_ROUNDS_STEP))  # settled at the first look after
        assert rounds[stays.sha256] == list(range(9))  # to the cap
        assert len(asked) == 3 and asked[0][stays.sha256] == 3
        assert outcome.more_rounds == {settles.sha256: 3 + MORE_ROUNDS_STEP, stays.sha256: 9}
        assert set(outcome.unsettled) == {stays.sha256}
        paired = [
            json.loads(s)["paired"]["reference_sha256"]
            for (s,) in db.conn.execute(
                "SELECT summary FROM jobs WHERE session_id=? AND round >= 3", (outcome.session_id,)
            )
        ]
        assert paired and set(paired) == {base.sha256}
    profile = loopback(agent)
    plain = deploy_key(profile, cfg(rounds=3, later_rounds="all"))
    assert deploy_key(profile, more) != plain
    assert deploy_key(profile, cfg(rounds=3, max_rounds=3, later_rounds="all")) == plain
