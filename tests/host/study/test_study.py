"""`drlc-host study`: the study file, the plan, a whole (tiny) study on two targets at once, and the rerun
that finds everything done."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import app
from host.policies.random_policies import random_policy
from host.store.workspace import Workspace
from host.measure.deploy import profile_settings
from host.measure.protocol import N_EPISODES_DEFAULT, WARMUP_CALLS_DEFAULT
from host.study.file import StudyError, load_study
from host.study.plan import deploy_config, load_profiles

runner = CliRunner()


def write_study(folder: Path, body: str) -> Path:
    path = folder / "study.toml"
    path.write_text(body)
    return path


def test_study_file_errors_are_actionable(tmp_path: Path) -> None:
    cases = {
        'name = "x"\n[[policy]]\nonnx = "a.onnx"\nmodel = "b"\n': "exactly one of import, onnx, model, train",
        'name = "x"\nepisodes = 0\n[[policy]]\nmodel = "b"\n': "episodes",
        'name = "x"\ncolour = 1\n[[policy]]\nmodel = "b"\n': "colour",
        'name = "x"\n[compress]\nmethods = ["int4"]\n[[policy]]\nmodel = "b"\n': "unknown method 'int4'",
        'name = "x"\n[[policy]]\ntrain = "ppo"\n': "needs env",
        'name = "x"\n[[policy]]\ntrain = "dqn"\nenv = "Hopper-v5"\n': "unknown algorithm 'dqn'; choose one of ppo, a2c",
        'name = "x"\n[[policy]]\nonnx = "missing.onnx"\n': "is not a file",
        'name = "x"\n[[policy]]\nimport = "zoo:sac/Nowhere-v3"\nenv = "Hopper-v5"\n': "DRLC_ZOO_DIR",
        'name = "x"\n': "policy",
    }
    for body, message in cases.items():
        with pytest.raises(StudyError, match=message):
            load_study(write_study(tmp_path, body))


def test_study_file_expands_train_seeds_and_the_study_grid(tmp_path: Path) -> None:
    study = load_study(
        write_study(
            tmp_path,
            'name = "grid"\ntargets = ["local", "rpi5"]\n[[policy]]\ntrain = "ppo"\nenv = "Hopper-v5"\n'
            "steps = 1000\nseeds = [0, 1, 2]\n",
        )
    )
    assert [p.label for p in study.policies] == [f"ppo Hopper-v5 seed {s}" for s in (0, 1, 2)]
    assert len(study.sweep.ratios) == 14 and study.sweep.int8_methods == ("ptdq", "ptsq", "qat")
    assert study.report_dir == tmp_path / "grid-report"


def test_a_targets_n_episodes_is_honoured_unless_the_study_file_says(drlc_home: Path, tmp_path: Path) -> None:
    """A study file without ``episodes`` (or ``warmup_calls``) leaves each target's ``[measurement]`` value in
    force (else the protocol's default), as a deploy without --episodes does; one that gives it wins everywhere."""
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    (profiles_dir / "few.toml").write_text(
        'address = "127.0.0.1:1"\n[measurement]\nn_episodes = 3\nwarmup_calls = 7\n'
    )
    (profiles_dir / "plain.toml").write_text('address = "127.0.0.1:2"\n')
    data, _, _ = random_policy(seed=3, name="tiny")
    (tmp_path / "tiny.onnx").write_bytes(data)
    body = 'name = "eps"\ntargets = ["few", "plain"]\n[[policy]]\nonnx = "tiny.onnx"\n'
    cases = (
        ("", [(3, 7), (N_EPISODES_DEFAULT, WARMUP_CALLS_DEFAULT)]),
        ("episodes = 5\nwarmup_calls = 4\n", [(5, 4), (5, 4)]),
    )
    for given, expected in cases:
        study = load_study(write_study(tmp_path, given + body))
        cfg = deploy_config(study)
        sent = [profile_settings(p, cfg) for p in load_profiles(study, profiles_dir)]
        assert [(s.n_episodes, s.warmup_calls) for s in sent] == expected
    result = runner.invoke(
        app,
        ["study", "run", str(write_study(tmp_path, body)), "--dry-run", "--profiles-dir", str(profiles_dir)],
    )
    assert result.exit_code == 0, result.output
    assert f"episodes per job: 3 on few, {N_EPISODES_DEFAULT} on plain" in result.output


def test_dry_run_counts_and_estimates_without_doing_anything(drlc_home: Path, tmp_path: Path) -> None:
    data, _, _ = random_policy(seed=3, name="tiny")
    (tmp_path / "tiny.onnx").write_bytes(data)
    path = write_study(
        tmp_path,
        'name = "dry"\ntargets = ["local", "rpi5"]\nepisodes = 3\n[compress]\nmethods = ["ptdq", "l1"]\n'
        'ratios = [0.25, 0.5]\n[[policy]]\nonnx = "tiny.onnx"\n[[policy]]\ntrain = "ppo"\n'
        'env = "InvertedPendulum-v5"\nsteps = 3000\n',
    )
    result = runner.invoke(app, ["study", "run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    # tiny.onnx: 2 ptdq (all-int8, fp32 first layer) + 2 l1 = 4 variants; the PPO run is still to train
    assert "to do: 2 baselines, 8 of 8 variants, jobs 10 of 10 on local, 10 of 10 on rpi5" in result.output
    assert "to train" in result.output and "estimated time:" in result.output
    conn = sqlite3.connect(Workspace.resolve().db_path)
    assert conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 0  # a dry run registers nothing


def test_study_runs_everything_on_two_targets_at_once_then_finds_it_done(
    drlc_home: Path, tmp_path: Path, agent
) -> None:
    data, sha, _ = random_policy(seed=5, name="tiny")
    (tmp_path / "tiny.onnx").write_bytes(data)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    # a second device: the in-process agent of the `agent` fixture, reached over loopback gRPC
    (profiles / "lab.toml").write_text(
        f'address = "127.0.0.1:{agent.port}"\n[measurement]\nintra_op_threads = 1\n'
    )
    path = write_study(
        tmp_path,
        'name = "tiny"\ntargets = ["local", "lab"]\nepisodes = 2\nwarmup_calls = 5\nreport_dir = "out"\n'
        # two rounds; rounds spoiled by this (maybe busy) machine are kept flagged, so the counts are exact
        "rounds = 2\nspoiled_retries = 0\n"
        '[compress]\nmethods = ["ptdq", "l2"]\nratios = [0.25]\nfp32_first_layer_variants = false\n'
        '[[policy]]\nonnx = "tiny.onnx"\n',
    )
    args = ["study", "run", str(path), "--profiles-dir", str(profiles)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (
        "1 baselines made, 2 variants made; local: 3 profiled, 0 already done, lab: 3 profiled"
        in first.output
    )
    conn = sqlite3.connect(Workspace.resolve().db_path)
    jobs = conn.execute(
        "SELECT target, COUNT(*) FROM jobs WHERE state='succeeded' GROUP BY target"
    ).fetchall()
    assert dict(jobs) == {"lab": 3 * 2, "local": 3 * 2}
    assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 12
    report = tmp_path / "out"
    html = (report / "tiny.html").read_text()
    assert "Target lab" in html and "Target local" in html and "Recommendations side by side" in html
    assert "ptdq" in (report / "tiny.md").read_text()
    assert len((report / "tiny.csv").read_text().strip().splitlines()) == 1 + 6

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert (
        "0 baselines made, 0 variants made; local: 0 profiled, 3 already done, lab: 0 profiled, 3 already"
        in again.output
    )
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 12  # nothing measured twice
    assert conn.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 3
    assert sha in {r[0] for r in conn.execute("SELECT sha256 FROM models")}
