"""`drlc-host compress` and a whole sweep, deployed to the local agent and reported."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from host.store.artifacts import store_artifact
from host.cli.main import app
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

runner = CliRunner()


def register_baseline() -> str:
    workspace = Workspace.resolve()
    data, sha, manifest = random_policy("InvertedPendulum-v5", hidden=(32, 32), name="pendulum")
    with ResultsDB(workspace.db_path) as db:
        store_artifact(workspace, db, data, manifest)
    return sha


def test_one_variant_then_the_same_again(drlc_home) -> None:
    sha = register_baseline()
    made = runner.invoke(app, ["compress", sha[:10], "--method", "l2", "--ratio", "0.3"])
    assert made.exit_code == 0, made.output
    assert "pendulum-l2-30" in made.output
    again = runner.invoke(app, ["compress", "pendulum", "--method", "l2", "--ratio", "0.3"])
    assert again.exit_code == 0 and "already made: pendulum-l2-30" in again.output
    wrong = runner.invoke(app, ["compress", "pendulum", "--method", "ptdq", "--ratio", "0.3"])
    assert wrong.exit_code == 1 and "ptdq takes no --ratio (that is an option of l1, l2)" in wrong.output
    neither = runner.invoke(app, ["compress", "pendulum"])
    assert neither.exit_code == 1
    assert "either --method M (one of ptdq, ptsq, qat, l1, l2) or --sweep" in neither.output
    variant_of_variant = runner.invoke(app, ["compress", "pendulum-l2-30", "--method", "ptdq"])
    assert variant_of_variant.exit_code == 1


def test_sweep_makes_the_grid_once_and_deploys_it(drlc_home) -> None:
    sha = register_baseline()
    sweep = runner.invoke(app, ["compress", "pendulum", "--sweep", "--steps", "200"])
    assert sweep.exit_code == 0, sweep.output
    assert "34 made, 0 already there, 0 failed" in sweep.output
    again = runner.invoke(app, ["compress", "pendulum", "--sweep", "--steps", "200"])
    assert "0 made, 34 already there, 0 failed" in again.output
    db_path = Workspace.resolve().db_path
    conn = sqlite3.connect(db_path)
    methods = dict(
        conn.execute(
            "SELECT method, COUNT(*) FROM models WHERE parent_sha256=? GROUP BY method", (sha,)
        ).fetchall()
    )
    assert methods == {"ptdq": 2, "ptsq": 2, "qat": 2, "l1": 14, "l2": 14}
    deployed = runner.invoke(
        app,
        [
            "deploy",
            "--target",
            "local",
            "--episodes",
            "2",
            "--warmup-calls",
            "5",
            "--models",
            f"sweep:{sha[:8]}",
            "--rounds",
            "1",
            "--spoiled-retries",
            "0",
        ],
    )
    assert deployed.exit_code == 0, deployed.output
    assert "35 profiled" in deployed.output
    report = runner.invoke(app, ["report", "--format", "md"])
    assert report.exit_code == 0
    rows = [line for line in report.output.splitlines() if line.startswith("| pendulum")]
    assert len(rows) == 35
    assert "Best pruning by the study's rule" in report.output
