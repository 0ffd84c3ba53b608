"""Bad input through the real CLI: one actionable line on stderr, exit 1, never a traceback.

Each case is one a new user hit (issue 13): the message must say what was wrong and what to type instead.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from device_agent.contract.proto import agent_pb2 as pb
from host.store.artifacts import store_artifact
from host.cli import common
from host.cli.common import warnings_to_log
from host.cli.deploy_progress import DeployProgress
from host.cli.main import app
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def register_baseline(name: str = "pendulum", seed: int = 0) -> str:
    workspace = Workspace.resolve()
    data, sha, manifest = random_policy("InvertedPendulum-v5", hidden=(16, 16), seed=seed, name=name)
    with ResultsDB(workspace.db_path) as db:
        store_artifact(workspace, db, data, manifest)
    return sha


def fails(args: list[str]) -> str:
    """Run the CLI, check it failed cleanly, and return its one error line."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def ok(args: list[str]) -> Result:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_pruning_without_a_ratio_names_the_flag(drlc_home) -> None:
    register_baseline()
    line = fails(["compress", "pendulum", "--method", "l2"])
    assert "l2 needs --ratio, e.g. --ratio 0.3" in line
    assert "PruneConfig" not in line


def test_an_option_of_another_method_lists_the_valid_ones(drlc_home) -> None:
    register_baseline()
    line = fails(["compress", "pendulum", "--method", "ptdq", "--ratio", "0.3"])
    assert "ptdq takes no --ratio (that is an option of l1, l2)" in line
    assert "ptdq takes: --fp32-first-layer, --opt per_channel=…, --opt reduce_range=…" in line


def test_a_misspelt_option_suggests_the_right_one(drlc_home) -> None:
    register_baseline()
    line = fails(["compress", "pendulum", "--method", "ptdq", "--opt", "per_chanel=true"])
    assert "did you mean --opt per_channel=…?" in line and "ptdq takes:" in line
    line = fails(["compress", "pendulum", "--method", "ptdq", "--opt", "per_channel=yes"])
    assert "--opt per_channel=… takes a bool (default false), got 'yes'" in line


def test_method_names_are_case_insensitive(drlc_home) -> None:
    register_baseline()
    made = ok(["compress", "pendulum", "--method", "PTDQ"])
    assert "made pendulum-ptdq [" in made.output and "measure it with:" in made.output
    assert "drlc-host deploy --target local --models pendulum-ptdq" in made.output


def test_neither_method_nor_sweep_lists_the_methods(drlc_home) -> None:
    register_baseline()
    line = fails(["compress", "pendulum"])
    assert "--method M (one of ptdq, ptsq, qat, l1, l2) or --sweep" in line


def test_compressing_a_variant_names_its_baseline(drlc_home) -> None:
    sha = register_baseline()
    ok(["compress", "pendulum", "--method", "l2", "--ratio", "0.3"])
    line = fails(["compress", "pendulum-l2-30", "--method", "ptdq"])
    assert f"is a l2 variant of the baseline pendulum [{sha[:12]}], not a baseline" in line
    assert "drlc-host compress pendulum --method" in line


def test_a_missing_file_is_named(drlc_home, tmp_path: Path) -> None:
    missing = tmp_path / "nothere.onnx"
    line = fails(["compress", str(missing), "--method", "ptdq"])
    assert f"file not found: {missing}" in line
    line = fails(["deploy", "--models", str(missing)])
    assert f"file not found: {missing}" in line


def test_an_unknown_model_suggests_close_names(drlc_home) -> None:
    register_baseline()
    line = fails(["compress", "pendulm", "--method", "ptdq"])
    assert "no registered model matches 'pendulm'; did you mean pendulum?" in line


def test_models_take_a_comma_list(drlc_home) -> None:
    register_baseline()
    # the list is split: the error names the one part that matches nothing, not the whole 'pendulum,nothere'
    line = fails(["deploy", "--models", "pendulum,nothere"])
    assert "no registered model matches 'nothere'" in line


def test_report_into_a_missing_folder(drlc_home, tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "r.md"
    line = fails(["report", "-f", "md", "-o", str(out)])
    assert f"the folder {out.parent} does not exist" in line


def test_a_typo_in_a_study_file_names_key_section_and_valid_keys(drlc_home, tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\n[compress]\nmethodz = ["ptdq"]\n[[policy]]\nmodel = "pendulum"\n')
    line = fails(["study", "run", str(study), "--dry-run"])
    assert f"unknown key 'methodz' in [compress] of {study}; did you mean 'methods'?" in line
    assert "valid keys: methods, ratios," in line
    assert "Extra inputs are not permitted" not in line


def test_a_typo_in_a_profile_is_named_with_the_valid_keys(drlc_home, tmp_path: Path) -> None:
    profile = tmp_path / "robot.toml"
    profile.write_text('adress = "robot:50051"\n')
    line = fails(["deploy", "--target", str(profile)])
    assert f"unknown key 'adress' in {profile}; did you mean 'address'? valid keys: name," in line


def test_an_unknown_target_lists_the_profiles(drlc_home) -> None:
    register_baseline()
    line = fails(["deploy", "--target", "locl"])
    assert "no target 'locl'; did you mean 'local'? known targets: " in line
    assert "rpi5" in line and "gpu0" in line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_agent_says_what_to_check(drlc_home, tmp_path: Path) -> None:
    register_baseline()
    port = free_port()  # nothing listens there: every connection is refused at once
    profile = tmp_path / "robot.toml"
    profile.write_text(
        f'address = "127.0.0.1:{port}"\ntunnel = "ssh -N -L {port}:127.0.0.1:50051 robot"\n'
        'docs = "docs/targets/rpi5.md"\n'
    )
    line = fails(["deploy", "--target", str(profile), "--connect-timeout", "0.5"])
    assert f"cannot reach the agent at 127.0.0.1:{port}: is `drlc-agent serve` running there?" in line
    assert f"Open the tunnel first: ssh -N -L {port}:127.0.0.1:50051 robot" in line
    assert "(see docs/targets/rpi5.md" in line
    assert "UNAVAILABLE" not in line


def test_version_and_short_help() -> None:
    assert ok(["--version"]).output.strip() == "drlc-host 0.1.0"
    assert ok(["-V"]).output.strip() == "drlc-host 0.1.0"
    assert "Usage: drlc-host" in runner.invoke(app, ["-h"], prog_name="drlc-host").output
    assert "compress [OPTIONS]" in ok(["compress", "-h"]).output
    agent = [sys.executable, "-m", "device_agent"]
    version = subprocess.run([*agent, "--version"], capture_output=True, text=True, cwd=ROOT, check=True)
    assert version.stdout.strip() == "drlc-agent 0.1.0"
    short = subprocess.run([*agent, "-h"], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "usage: drlc-agent" in short.stdout


def test_no_traceback_in_a_real_process(drlc_home) -> None:
    """The installed entry point, not only CliRunner: stderr carries the line and nothing else."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    code = "from host.cli.main import app; app()"
    done = subprocess.run(
        [sys.executable, "-c", code, "compress", "nothere.onnx", "--method", "ptdq"],
        capture_output=True,
        text=True,
        env=env,
        cwd=drlc_home.parent,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: file not found: nothere.onnx; give a baseline .onnx file, or a registered baseline's name or "
        "sha256 prefix (`drlc-host models` lists them)"
    ]


def test_models_list_fits_80_columns_without_cutting_names(drlc_home, monkeypatch) -> None:
    base = "trpo-HalfCheetah-v5-seed12"  # with -ptsq-fp32first as long as the study's longest (QAT) names
    register_baseline(name=base)
    ok(["compress", base, "--method", "ptsq", "--fp32-first-layer", "--calibration-episodes", "1"])
    ok(["compress", base, "--method", "l1", "--ratio", "0.1"])
    monkeypatch.setattr(common.console, "width", 80)
    out = ok(["models"]).output
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert "…" not in out
    # one line per model: the baseline, then its variants indented beneath it, every name whole
    assert [line.split()[0] for line in lines[1:4]] == [base, f"{base}-l1-10", f"{base}-ptsq-fp32first"]
    assert not lines[1].startswith(" ") and lines[2].startswith("  ") and lines[3].startswith("  ")
    assert "1 baseline, 2 variants" in out


def test_deploy_progress_names_each_model_and_its_returns(drlc_home) -> None:
    a = register_baseline("pendulum", seed=0)
    b = register_baseline("pendulum-b", seed=1)
    result = ok(
        [
            "deploy",
            "--models",
            "pendulum,pendulum-b",
            "--episodes",
            "2",
            "--max-steps",
            "20",
            "--warmup-calls",
            "2",
        ]
    )
    for name, sha in (("pendulum", a), ("pendulum-b", b)):
        assert f"✓ {name} [{sha[:8]}] return " in result.output and " (2 episodes)" in result.output
    assert "2 profiled" in result.output and "next: drlc-host report" in result.output


def test_progress_keeps_hash_labels_that_look_like_markup(tmp_path: Path) -> None:
    """rich read `[b6a41edb]` as a style tag and dropped it; every label is escaped now."""
    sha = "b6a41edb" + "0" * 56
    data, _, manifest = random_policy(name="pendulum")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with ResultsDB(tmp_path / "r.sqlite") as db:
        model = db.add_model(sha, path, manifest)
        db.add_job("job1", sha, "local", "fp", "key", pb.ProfileRequest(job_id="job1"))
        out = io.StringIO()
        console = Console(file=out, width=80, record=True)
        with DeployProgress(console, [model], 2, db, "local[b]") as view:
            view.update(model, 0, 2)
            db.add_episode("job1", pb.EpisodeResult(index=0, seed=0, episode_return=12.5, length=3))
            view.update(model, 1, 2)
            # the live view, drawn at 80 columns: the label whole, the return that just arrived
            screen = Console(file=io.StringIO(), width=80, record=True)
            screen.print(view.live.renderable)
            lines = screen.export_text().splitlines()
            assert all(len(line) <= 80 for line in lines)
            assert "model 1/1" in lines[0] and "1/2 episodes" in lines[0] and "ETA" in lines[0]
            assert "pendulum [b6a41edb]" in lines[1] and "1/2" in lines[1]
            assert lines[2].strip() == "returns: #0 12.5"
            db.add_episode("job1", pb.EpisodeResult(index=1, seed=1, episode_return=14.5, length=3))
            view.update(model, 2, 2)
    assert "✓ pendulum [b6a41edb] return 13.5 ± 1.4 (2 episodes)" in out.getvalue()


def test_library_warnings_go_to_the_log_not_the_terminal(tmp_path: Path, capfd) -> None:
    log = tmp_path / "drlc-host.log"

    with warnings_to_log(log):
        warnings.warn("a library's deprecation notice", UserWarning, stacklevel=1)
        logging.getLogger("stable_baselines3").warning("a library's log record")
        gym.make("HalfCheetah-v5").close()  # its XML makes MuJoCo's C code warn about 'settotalmass'
    captured = capfd.readouterr()
    terminal = captured.err + captured.out
    assert (
        "deprecation notice" not in terminal
        and "log record" not in terminal
        and "settotalmass" not in terminal
    )
    text = log.read_text()
    assert "a library's deprecation notice" in text and "a library's log record" in text
    assert "WARNING mujoco: compiler attribute 'settotalmass' is deprecated" in text


def test_importing_an_old_zoo_checkpoint_notes_the_env_once(drlc_home, zoo_dir: Path) -> None:
    result = ok(["import", str(zoo_dir / "ppo" / "Hopper-v3")])
    assert result.output.count("trained on Hopper-v3") == 1, result.output
    assert "trained on Hopper-v3" in (drlc_home / "drlc-host.log").read_text()


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_agent_help_flags(flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "device_agent", flag], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0 and "serve" in done.stdout


def test_an_empty_workspace_points_to_the_demo_results(drlc_home, tmp_path: Path, monkeypatch) -> None:
    """After `make demo`, a plain `drlc-host report` (the user's own, empty workspace) says where they are."""
    monkeypatch.chdir(tmp_path)
    plain = ok(["report"]).output
    assert f"no results yet in {drlc_home.resolve()}" in plain and "make demo" not in plain
    with ResultsDB(tmp_path / ".drlc-demo" / "results.sqlite"):
        pass
    hinted = ok(["report"]).output
    assert "`make demo` keeps its results apart, see them with: drlc-host report --home .drlc-demo" in hinted


def test_an_unregistered_onnx_file_says_how_to_register_it(drlc_home, tmp_path: Path) -> None:
    data, _, _ = random_policy(name="stray")
    stray = tmp_path / "stray.onnx"
    stray.write_bytes(data)
    line = fails(["deploy", "--models", str(stray)])
    assert f"{stray} is not registered in this workspace: `drlc-host compress {stray} --method M`" in line


def test_progress_counts_skipped_models_out_and_replays_once(tmp_path: Path) -> None:
    """The overall total drops a model deploy() skipped (already measured); a replayed stream end adds no
    episode and no second line; a second job of the same model (the agent lost the first, or its timing was
    spoiled) counts each seed once: the same seed is the same episode."""
    data, _, manifest = random_policy(name="p")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with ResultsDB(tmp_path / "r.sqlite") as db:
        models = [db.add_model(f"{c}" * 64, path, manifest) for c in "abc"]
        for m in models:
            db.add_job(f"job-{m.sha256[0]}", m.sha256, "local", "fp", "key", pb.ProfileRequest())
        out = io.StringIO()
        view = DeployProgress(Console(file=out, width=80), models, 2, db, "local")
        overall = view.overall.tasks[0]
        with view:
            assert overall.total == 6
            b, c = models[1], models[2]  # models[0] was skipped: deploy never reports it
            view.update(b, 0, 2)
            assert overall.total == 4 and overall.completed == 0
            for i, ret in enumerate((10.0, 20.0)):
                db.add_episode("job-b", pb.EpisodeResult(index=i, seed=i, episode_return=ret, length=1))
                view.update(b, i + 1, 2)
            view.update(b, 2, 2)  # the end of the stream, replayed after a re-attach
            assert overall.completed == 2
            view.update(c, 0, 2)
            db.add_episode("job-c", pb.EpisodeResult(index=0, seed=0, episode_return=5.0, length=1))
            view.update(c, 1, 2)
            # the agent lost job-c: a new job of the same model starts at index 0 again
            db.add_job("job-c2", c.sha256, "local", "fp", "key", pb.ProfileRequest())
            for i, ret in enumerate((7.0, 9.0)):
                db.add_episode("job-c2", pb.EpisodeResult(index=i, seed=i, episode_return=ret, length=1))
                view.update(c, i + 1, 2)
            assert overall.completed == 4 and overall.total == 4
    text = out.getvalue()
    assert text.count(f"[{'b' * 8}] return 15.0 ± 7.1 (2 episodes)") == 1
    assert f"[{'c' * 8}] return 8.0 ± 1.4 (2 episodes)" in text
    assert "a" * 8 not in text
