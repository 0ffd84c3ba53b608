"""`study run --executor`: training runs and variants as tasks on a local process pool or a Ray cluster,
stored by the host as they arrive under the same recipe keys, so a rerun in either mode finds them done.
Measurement still runs on the targets (here the local agent)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import app
from host.policies.random_policies import random_policy
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.study.file import load_study
from host.study.plan import load_profiles
from host.study.run import run_study
from host.training.executors import InlineExecutor

runner = CliRunner()

STUDY = (
    'name = "spread"\ntargets = ["local"]\nepisodes = 2\nwarmup_calls = 5\nreport_dir = "out"\n'
    '[compress]\nmethods = ["ptdq", "l2"]\nratios = [0.25]\nfp32_first_layer_variants = false\n'
    '[[policy]]\nonnx = "tiny.onnx"\n'
    '[[policy]]\ntrain = "ppo"\nenv = "InvertedPendulum-v5"\nsteps = 256\n'
    'hp = {n_steps = 128, batch_size = 64, "policy_kwargs" = "dict(net_arch=[16, 16])"}\n'
)


def _study(tmp_path: Path) -> Path:
    data, _, _ = random_policy(seed=7, name="tiny")
    (tmp_path / "tiny.onnx").write_bytes(data)
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


def _run_spread_then_rerun_in_process(path: Path, executor_args: list[str]) -> None:
    first = runner.invoke(app, ["study", "run", str(path), *executor_args])
    assert first.exit_code == 0, first.output
    assert "2 baselines made, 4 variants made; local: 6 profiled, 0 already done" in " ".join(
        first.output.split()
    ), first.output
    conn = sqlite3.connect(Workspace.resolve().db_path)
    methods = sorted(r[0] for r in conn.execute("SELECT method FROM models"))
    assert methods == ["baseline", "baseline", "l2", "l2", "ptdq", "ptdq"]
    assert conn.execute("SELECT COUNT(*) FROM models WHERE recipe_key IS NOT NULL").fetchone()[0] == 5
    assert conn.execute("SELECT COUNT(*) FROM training_runs").fetchone()[0] == 1
    # the in-process study recognises every task's result: nothing is trained, made or measured again
    again = runner.invoke(app, ["study", "run", str(path)])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output and "0 baselines made, 0 variants made" in again.output


def test_study_on_a_local_process_pool(drlc_home: Path, tmp_path: Path) -> None:
    _run_spread_then_rerun_in_process(_study(tmp_path), ["--executor", "local", "--workers", "2"])


@pytest.mark.slow  # starting Ray and importing torch in its workers takes 20-50 s on 2 cores
def test_study_on_a_local_ray_instance(drlc_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    _run_spread_then_rerun_in_process(_study(tmp_path), ["--executor", "ray", "--workers", "2"])


def test_every_training_run_and_variant_is_a_task_on_the_executor(drlc_home: Path, tmp_path: Path) -> None:
    class Counting(InlineExecutor):
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def run(self, fn, tasks, on_progress=None):
            self.calls.append((fn.__name__, len(tasks)))
            return super().run(fn, tasks, on_progress)

    study = load_study(_study(tmp_path))
    counting = Counting()
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        outcome = run_study(
            study, workspace, db, load_profiles(study, None), executor=counting, write_report=False
        )
    assert counting.calls == [("train_task", 1), ("variant_task", 4)]
    assert outcome.variants_made == 4 and not outcome.failures
