"""`drlc-host train`: real SB3 training on real MuJoCo with the RL Zoo's hyperparameters, tiny budgets.

What is checked: the artifact is a valid drlc policy that ONNX Runtime runs, and the checkpoint, the
hyperparameters' source and the training curve are in the results database; an interrupted run
resumes from its checkpoint; seeds fan out over the local pool and over a local Ray instance; a
worker that does not share the host's disk ships the run back.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from device_agent.store.validation import check_model_bytes
from host.cli.main import app
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.training.executors import InlineExecutor, RayExecutor
from host.training.records import record_run, training_curve, training_runs
from host.training.run import (
    STUDY_ALGOS,
    STUDY_ENVS,
    TrainConfig,
    TrainProgress,
    TrainTask,
    find_resumable,
    make_plan,
    train,
    train_task,
)

runner = CliRunner()
# Small actors and critics keep the off-policy runs quick; the grid test uses the zoo's own sizes.
SMALL = ["--hp", "policy_kwargs=dict(net_arch=[32, 32])"]


def run_cli(*args: str) -> str:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return result.output


def check_artifact(path: Path, env_obs_dim: int) -> None:
    data = path.read_bytes()
    manifest = check_model_bytes(data)  # what the agent checks on upload
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    actions = session.run(None, {"obs": np.zeros((3, env_obs_dim), np.float32)})[0]
    assert actions.shape == (3, manifest.action_shape[0]) and np.isfinite(actions).all()


def test_train_records_artifact_checkpoint_hyperparams_and_curve(drlc_home: Path) -> None:
    out = run_cli(
        *("--algo", "ppo", "--env", "InvertedPendulum-v5", "--steps", "1024", "--eval-every", "512"),
        *("--eval-episodes", "2", "--final-eval-episodes", "2", "--seed", "3"),
    )
    # The choice is printed: the zoo's InvertedPendulum-v2 entry, which asks for VecNormalize.
    assert "ppo.yml [InvertedPendulum-v2], the nearest version of InvertedPendulum-v5" in out
    assert "VecNormalize" in out and "trained ppo InvertedPendulum-v5 seed 3" in out

    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        (model,) = db.models()
        (run,) = training_runs(db)
        curve = training_curve(db, run["run_id"])
    check_artifact(model.path, 4)
    manifest = check_model_bytes(model.path.read_bytes())
    assert manifest.method == "baseline" and manifest.training_seed == 3
    assert manifest.obs_normalization is not None  # the VecNormalize statistics are in the graph
    assert manifest.source["hyperparams"]["source"]["zoo_key"] == "InvertedPendulum-v2"
    assert model.checkpoint is not None and model.checkpoint.is_file()
    assert (model.checkpoint.parent / "vecnormalize.pkl").is_file()  # where QAT's rl mode looks for it
    assert run["model_sha256"] == model.sha256 and run["hp_source"] == "zoo-nearest"
    assert (
        run["steps_done"] == 1024
        and run["final_return_mean"] > 0
        and len(json.loads(run["final_returns"])) == 2
    )
    assert [p.step for p in curve if p.kind == "eval"] == [512, 1024]  # periodic, then the final evaluation
    assert [p for p in curve if p.kind == "train"]
    assert not (model.checkpoint.parent / "checkpoint").exists()  # superseded by the final model


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    cfg = TrainConfig(
        algo="td3",
        env_id="InvertedPendulum-v5",
        total_steps=600,
        hyperparams={"learning_starts": 100, "policy_kwargs": "dict(net_arch=[32, 32])"},
        eval_every_steps=0,
        checkpoint_every_steps=200,
        final_eval_episodes=1,
    )

    def interrupt(p: TrainProgress) -> None:  # Ctrl-C right after the second checkpoint
        if p.phase == "checkpoint" and p.steps >= 400:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, interrupt)
    run_dir = find_resumable(tmp_path, make_plan(cfg))
    assert run_dir is not None
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["steps"] == 400 and (run_dir / "checkpoint" / "replay_buffer.pkl").is_file()

    result = train(cfg, tmp_path, resume=True)
    assert result.run_dir == run_dir and result.resumed_from_step == 400 and result.steps_done == 600
    steps = [p.step for p in result.curve if p.kind == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # the redone stretch is not counted twice
    assert find_resumable(tmp_path, make_plan(cfg)) is None  # finished runs are not resumed

    # A changed plan does not resume someone else's checkpoint.
    other = TrainConfig(**{**cfg.__dict__, "seed": 1})
    assert find_resumable(tmp_path, make_plan(other)) is None


def test_seeds_on_the_local_pool_then_resume_skips_them(drlc_home: Path) -> None:
    tensorboard = importlib.util.find_spec("tensorboard") is not None  # in the dev extra
    args = ["--algo", "ppo", "--steps", "256", "--seeds", "0,1", "--final-eval-episodes", "1"]
    args += ["--tensorboard"] if tensorboard else []
    # Four runs over two worker processes; the two with a bad env fail without stopping the others.
    result = runner.invoke(
        app, ["train", *args, "--env", "InvertedPendulum-v5,NoSuchEnv-v0", "--workers", "2"]
    )
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "4 runs on executor local" in out and out.count("cannot make env 'NoSuchEnv-v0'") == 2
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        runs = training_runs(db)
        assert sorted(r["seed"] for r in runs) == [0, 1] and len(db.models()) == 2
    for run in runs if tensorboard else []:
        assert list((Path(run["checkpoint"]).parent / "tb").rglob("events.out.tfevents.*"))

    out = run_cli(*args, "--env", "InvertedPendulum-v5", "--resume")
    assert out.count("already trained") == 2
    with ResultsDB(workspace.db_path) as db:
        assert len(training_runs(db)) == 2


def test_a_worker_without_the_hosts_disk_ships_the_run_back(drlc_home: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        algo="sac", env_id="Pendulum-v1", total_steps=200, eval_every_steps=0, final_eval_episodes=1
    )
    cfg = TrainConfig(
        **{**cfg.__dict__, "hyperparams": {"learning_starts": 50, "policy_kwargs": "dict(net_arch=[16])"}}
    )
    workspace = Workspace.resolve()
    task = TrainTask(cfg, str(workspace.runs_dir), fs_token=(".fs-token-missing", "nope"))
    (outcome,) = InlineExecutor().run(train_task, [task])
    assert outcome.ok, outcome.error
    assert outcome.result is not None and outcome.result.files and "model.zip" in outcome.result.files
    assert not outcome.result.run_dir.exists()  # trained in a temporary folder, gone now
    with ResultsDB(workspace.db_path) as db:
        model = record_run(workspace, db, outcome.result)
    assert model.checkpoint == workspace.runs_dir / outcome.result.run_id / "model.zip"
    assert model.checkpoint.is_file() and (model.checkpoint.parent / "result.json").is_file()


def test_mistakes_are_refused_before_training(drlc_home: Path) -> None:
    for args, message in [
        (["--algo", "dqn", "--env", "Hopper-v5"], "unknown algorithm 'dqn'"),
        (["--algo", "td3", "--env", "Hopper-v5", "--hp", "frame_stack=4"], "frame stacking"),
        (["--algo", "td3", "--env", "Hopper-v5", "--seeds", "a-b"], "--seeds takes integers"),
        (["--algo", "td3", "--env", "NoSuchEnv-v0", "--steps", "10"], "cannot make env 'NoSuchEnv-v0'"),
        (["--algo", "td3", "--env", "Hopper-v5", "--executor", "slurm"], "unknown executor 'slurm'"),
        (
            ["--algo", "td3", "--env", "Hopper-v5", "--env-option", "no_such=1", "--steps", "10"],
            "Hopper-v5 takes no option 'no_such'",
        ),
    ]:
        result = runner.invoke(app, ["train", *args])
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.output.split()), result.output
    assert not list(Workspace.resolve().runs_dir.glob("Hopper-v5__*"))


def test_env_options_are_trained_with_and_recorded(drlc_home: Path) -> None:
    out = run_cli(
        *("--algo", "ppo", "--env", "InvertedPendulum-v5", "--steps", "256", "--eval-every", "0"),
        *("--final-eval-episodes", "1", "--env-option", "reset_noise_scale=0.05"),
    )
    assert "InvertedPendulum-v5(reset_noise_scale=0.05)" in out
    with ResultsDB(Workspace.resolve().db_path) as db:
        (model,) = db.models()
    manifest = check_model_bytes(model.path.read_bytes())
    assert manifest.env_kwargs == {"reset_noise_scale": 0.05}  # the agent builds the env with it
    plain = make_plan(TrainConfig(algo="ppo", env_id="InvertedPendulum-v5"))
    varied = make_plan(
        TrainConfig(algo="ppo", env_id="InvertedPendulum-v5", env_kwargs={"reset_noise_scale": 0.05})
    )
    assert plain.config_key != varied.config_key


def test_dry_run_prints_every_runs_hyperparameters(drlc_home: Path) -> None:
    out = run_cli("--algo", "study", "--env", "Hopper-v5,HumanoidStandup-v5", "--seeds", "0-2", "--dry-run")
    assert "30 run(s); --dry-run: nothing trained" in out
    assert "sac.yml [default]: the zoo has no entry for HumanoidStandup-v5" in " ".join(out.split())
    assert "ppo.yml [HumanoidStandup-v2]" in out


@pytest.mark.slow  # starting Ray and importing torch in its workers takes 20-50 s on 2 cores
def test_ray_executor_on_a_local_instance(drlc_home: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = run_cli(
            *("--algo", "td3,sac", "--env", "InvertedPendulum-v5", "--steps", "300", "--executor", "ray"),
            *("--final-eval-episodes", "1", "--hp", "learning_starts=100", *SMALL),
        )
        assert "2 runs on executor ray" in out
        # The executor alone, with progress reports coming back through Ray.
        seen: list[TrainProgress] = []
        cfg = TrainConfig(
            algo="ppo",
            env_id="Pendulum-v1",
            total_steps=128,
            final_eval_episodes=1,
            hyperparams={"n_steps": 64},
        )
        task = TrainTask(cfg, str(Workspace.resolve().runs_dir))
        (outcome,) = RayExecutor().run(train_task, [task], lambda i, p: seen.append(p))
        assert outcome.ok, outcome.error
        assert seen and seen[-1].phase == "done"
    finally:
        ray.shutdown()
    with ResultsDB(Workspace.resolve().db_path) as db:
        record_run(Workspace.resolve(), db, outcome.result)
    with ResultsDB(Workspace.resolve().db_path) as db:
        assert sorted(r["algo"] for r in training_runs(db)) == ["ppo", "sac", "td3"]
        for model in db.models():
            check_artifact(model.path, 4 if "Pendulum-v1" not in model.name else 3)


@pytest.mark.slow
def test_every_study_pair_trains_and_exports(drlc_home: Path) -> None:
    """The study grid, 5 algorithms x 5 envs, with the zoo's hyperparameters and a few hundred steps each
    (on-policy algorithms finish their first rollout: up to 2 048 steps for TRPO)."""
    out = run_cli(
        *("--algo", "study", "--env", "study", "--steps", "300", "--workers", "0"),
        *("--eval-every", "0", "--final-eval-episodes", "1"),
    )
    assert out.count("trained ") == 25
    with ResultsDB(Workspace.resolve().db_path) as db:
        runs = training_runs(db)
        assert {(r["algo"], r["env_id"]) for r in runs} == {(a, e) for a in STUDY_ALGOS for e in STUDY_ENVS}
        for model in db.models():
            manifest = check_model_bytes(model.path.read_bytes())
            check_artifact(model.path, manifest.observation_shape[0])
            assert model.checkpoint is not None and model.checkpoint.is_file()
    conn = sqlite3.connect(Workspace.resolve().db_path)
    assert (
        conn.execute("SELECT COUNT(DISTINCT run_id) FROM training_curve WHERE kind = 'eval'").fetchone()[0]
        == 25
    )
