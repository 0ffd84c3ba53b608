"""`drlc-host train`: make a baseline policy for users who have none."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from host.artifacts import store_artifact
from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.errors import DrlcError
from host.train import ALGOS, TrainConfig, train


def parse_hp(items: list[str] | None) -> dict[str, object]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, lists), else as strings."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DrlcError(f"--hp takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def train_command(
    algo: Annotated[str, typer.Option(help=f"one of {', '.join(ALGOS)}")],
    env: Annotated[str, typer.Option(help="Gymnasium env id, e.g. Hopper-v5")],
    steps: Annotated[int, typer.Option(help="environment steps", min=1)] = 100_000,
    seed: Annotated[int, typer.Option()] = 0,
    normalize: Annotated[
        bool, typer.Option(help="observation normalisation (VecNormalize), baked into the graph")
    ] = False,
    hp: Annotated[
        list[str] | None, typer.Option(help="algorithm hyperparameter override key=value; repeatable")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Train with Stable-Baselines3 and export the baseline ONNX artifact."""
    with user_errors(), open_workspace(home) as (workspace, db):
        cfg = TrainConfig(
            algo=algo.lower(),
            env_id=env,
            total_steps=steps,
            seed=seed,
            normalize=normalize,
            hyperparams=parse_hp(hp),
        )
        with Progress(
            TextColumn(f"train {cfg.algo} {cfg.env_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[ret]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("train", total=cfg.total_steps, ret="")

            def on_progress(done: int, total: int, recent: float | None) -> None:
                bar.update(task, completed=done, ret=f"return {recent:.1f}" if recent is not None else "")

            result = train(cfg, workspace.runs_dir, on_progress)
        row = store_artifact(
            workspace, db, result.exported.onnx_bytes, result.exported.manifest, checkpoint=result.checkpoint
        )
        console.print(
            f"trained {cfg.algo} on {cfg.env_id} for {cfg.total_steps} steps in {result.wall_s:.0f} s ({cfg.total_steps / result.wall_s:.0f} steps/s)"
        )
        console.print(f"checkpoint {result.checkpoint}\nartifact {row.name} sha256 {row.sha256}")
