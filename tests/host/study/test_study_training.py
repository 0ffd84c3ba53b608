"""A study's trained baselines are recorded as `drlc-host train` records its runs: the artifact with its
checkpoint, plus the run's training_runs row and its training_curve (README "Studies")."""

from __future__ import annotations

import json
from pathlib import Path

from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.study.file import load_study
from host.study.recipes import baseline_recipe
from host.study.run import run_study
from host.training.records import training_curve, training_runs

# A real PPO run with a tiny budget (two rollouts of 64 steps) and a tiny actor; no variants, no targets.
STUDY = (
    'name = "trained"\n[compress]\nmethods = []\n'
    '[[policy]]\ntrain = "ppo"\nenv = "InvertedPendulum-v5"\nsteps = 128\nseeds = [4]\n'
    'hp = {n_steps = 64, batch_size = 64, "policy_kwargs" = "dict(net_arch=[16, 16])"}\n'
)


def test_an_in_process_study_records_its_training_run_and_curve(drlc_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    study = load_study(path)
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        outcome = run_study(study, workspace, db, [], write_report=False)  # executor None: in this process
        (model,) = db.models()
        assert outcome.baselines_made == [model.sha256] and not outcome.failures
        assert db.model_by_recipe(baseline_recipe(study.policies[0])) == model
        assert model.checkpoint is not None and model.checkpoint.is_file()

        (run,) = training_runs(db)
        assert run["model_sha256"] == model.sha256
        assert (run["algo"], run["env_id"], run["seed"]) == ("ppo", "InvertedPendulum-v5", 4)
        assert run["checkpoint"] == str(model.checkpoint)
        assert json.loads(run["plan"])["total_steps"] == 128
        curve = training_curve(db, run["run_id"])
        assert curve, "the run's curve was not stored"
        final = max((p for p in curve if p.kind == "eval"), key=lambda p: p.step)
        assert final.step == run["steps_done"]  # the evaluation after training closes the curve
        assert final.return_mean == run["final_return_mean"]

        again = run_study(study, workspace, db, [], write_report=False)
        assert again.baselines_made == [] and len(training_runs(db)) == 1
