"""`drlc-host train`: make baseline policies for users who have none, one run or a whole grid."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from device_agent.contract.envs import describe_env
from device_agent.contract.vocabulary import ALGORITHMS
from host.cli.common import HomeOption, console, err_console, open_workspace, user_errors
from host.errors import DrlcError
from host.policies.env_setup import parse_env_options
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.training.batch import RunDone, split_recorded, train_batch
from host.training.executors import Executor, make_executor
from host.training.hyperparams import parse_overrides
from host.training.run import STUDY_ALGOS, STUDY_ENVS, TrainConfig, TrainPlan, TrainProgress, make_plan


def split_list(value: str, study: tuple[str, ...]) -> list[str]:
    """``"ppo,td3"`` -> ``["ppo", "td3"]``; ``"study"`` -> the study's list."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    out: list[str] = []
    for item in items:
        out.extend(study if item.lower() == "study" else [item])
    if not out:
        raise DrlcError(f"empty list {value!r}")
    return list(dict.fromkeys(out))


def parse_seeds(value: str) -> list[int]:
    """``"0,1,2"`` or ``"0-9"`` (inclusive) or a mix: ``"0-4,10"``."""
    seeds: list[int] = []
    try:
        for part in value.split(","):
            first, sep, last = part.strip().partition("-")
            seeds.extend(range(int(first), int(last) + 1) if sep else [int(first)])
    except ValueError:
        raise DrlcError(f"--seeds takes integers and ranges like 0,1,2 or 0-9, got {value!r}") from None
    return list(dict.fromkeys(seeds))


def _describe_plan(plan: TrainPlan) -> str:
    hp = plan.hyperparams
    values = ", ".join(f"{k}={v}" for k, v in sorted(hp.entry.items())) or "(SB3 defaults)"
    extra = f"; overrides: {', '.join(sorted(hp.overrides))}" if hp.overrides else ""
    kwargs = ", ".join(f"{k}={v}" for k, v in hp.normalize_kwargs.items())
    norm = f"VecNormalize({kwargs})" if hp.normalize else "raw observations"
    return (
        f"[bold]{plan.config.algo} {escape(describe_env(plan.config.env_id, plan.config.env_kwargs, ()))}[/]: "
        f"{plan.total_steps:,} steps, {norm}\n"
        f"  hyperparameters: {escape(hp.source.describe(plan.config.env_id))}{escape(extra)}\n"
        f"  {escape(values)}"
    )


def _progress_text(p: TrainProgress) -> dict[str, str]:
    # short enough that a row (label, bar, %, rate, returns, time left) fits in 80 columns
    sps = f"{p.steps_per_s:,.0f}/s" if p.steps_per_s else ""
    parts = []
    if p.recent_return is not None:
        parts.append(f"ret {p.recent_return:.0f}")
    if p.eval_return is not None:
        parts.append(f"eval {p.eval_return:.0f}")
    if p.phase not in ("train", "done"):
        parts.append(f"[{p.phase}]")
    return {"sps": sps, "ret": escape(" ".join(parts))}


def train_command(
    algo: Annotated[
        str,
        typer.Option(help=f"{', '.join(ALGORITHMS)}; a comma list, or 'study' for {','.join(STUDY_ALGOS)}"),
    ],
    env: Annotated[
        str,
        typer.Option(help="Gymnasium env id (Hopper-v5); a comma list, or 'study' for the five study envs"),
    ],
    steps: Annotated[
        int | None,
        typer.Option(
            help="environment steps; default: the RL Zoo's n_timesteps for the pair (1e6 without)", min=1
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    seeds: Annotated[
        str | None, typer.Option(help="several seeds, e.g. 0,1,2 or 0-9 (overrides --seed)")
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            "--env-option",
            help="env option KEY=VALUE for gymnasium.make, repeatable; recorded in the artifact",
        ),
    ] = None,
    hp: Annotated[
        list[str] | None,
        typer.Option(
            help="hyperparameter override key=value in the RL Zoo's syntax (lin_3e-4, dict(...)); repeatable"
        ),
    ] = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help="VecNormalize (baked into the graph); default: as the hyperparameters say",
            show_default=False,
        ),
    ] = None,
    zoo: Annotated[
        bool,
        typer.Option(
            "--zoo/--no-zoo", help="start from the RL Zoo's tuned hyperparameters, or SB3's defaults"
        ),
    ] = True,
    eval_every: Annotated[
        int | None,
        typer.Option(help="evaluate every N steps; default: a tenth of the run, >= 25 000; 0: never", min=0),
    ] = None,
    eval_episodes: Annotated[int, typer.Option(help="episodes per periodic evaluation", min=1)] = 5,
    final_eval_episodes: Annotated[
        int, typer.Option(help="episodes of the evaluation after training", min=1)
    ] = 10,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help="checkpoint every N steps; default: at each evaluation; 0: never", min=0),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="continue interrupted runs from their last checkpoint; skip runs already recorded"),
    ] = False,
    tensorboard: Annotated[
        bool, typer.Option(help="SB3's TensorBoard logs in each run's tb/ folder")
    ] = False,
    executor: Annotated[str, typer.Option(help="local (this machine) or ray")] = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            help="runs at once. local: default 1 (one after another, in this process), 0 = one per core; "
            "ray: default and 0 = as many as the cluster schedules",
            min=0,
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join ('auto': the one on this machine); default: start one"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="print the runs and their hyperparameters, train nothing")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Train with Stable-Baselines3 (RL Zoo hyperparameters) and export baseline ONNX artifacts."""
    with user_errors(), open_workspace(home) as (workspace, db):
        algos = [a.lower() for a in split_list(algo, STUDY_ALGOS)]
        envs = split_list(env, STUDY_ENVS)
        seed_list = parse_seeds(seeds) if seeds is not None else [seed]
        overrides = parse_overrides(hp)
        env_options = parse_env_options(env_option or [])
        configs = [
            TrainConfig(
                algo=a,
                env_id=e,
                seed=s,
                env_kwargs=env_options,
                total_steps=steps,
                hyperparams=overrides,
                use_zoo=zoo,
                normalize=normalize,
                eval_every_steps=eval_every,
                eval_episodes=eval_episodes,
                final_eval_episodes=final_eval_episodes,
                checkpoint_every_steps=checkpoint_every,
                tensorboard=tensorboard,
            )
            for a, e, s in itertools.product(algos, envs, seed_list)
        ]
        # Every run's hyperparameters are checked before any run starts.
        plans = [make_plan(cfg) for cfg in configs]
        shown: set[tuple[str, str]] = set()
        for plan in plans:
            if (plan.config.algo, plan.config.env_id) not in shown:
                shown.add((plan.config.algo, plan.config.env_id))
                console.print(_describe_plan(plan))
        if dry_run:
            console.print(f"{len(plans)} run(s); --dry-run: nothing trained")
            return
        todo = plans
        if resume:
            todo, recorded = split_recorded(db, plans)
            for r in recorded:
                console.print(
                    f"already trained: {escape(r.plan.config.label)} (run {escape(r.run_id)}, "
                    f"model {r.model_sha256[:12]}); skipped"
                )
        if not todo:
            return
        runner = make_executor(
            executor, workers if workers is not None else (1 if executor == "local" else 0), ray_address
        )
        failures = _run(todo, runner, workspace, db, resume)
        if failures:
            raise typer.Exit(code=1)


def _run(todo: list[TrainPlan], runner: Executor, workspace: Workspace, db: ResultsDB, resume: bool) -> int:
    """Train every plan on ``runner`` (:func:`train_batch`) under one progress display, printing each run
    as it is recorded. Returns how many failed."""
    if len(todo) > 1:
        console.print(f"{len(todo)} runs on executor {runner.name}")
    failures = 0
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=8),
            TaskProgressColumn(),
            TextColumn("{task.fields[sps]}"),
            TextColumn("{task.fields[ret]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            rows: dict[int, TaskID] = {}

            def row(index: int) -> TaskID:
                if index not in rows:
                    plan = todo[index]
                    rows[index] = bar.add_task(
                        escape(plan.config.label), total=plan.total_steps, sps="", ret=""
                    )
                return rows[index]

            if runner.name != "inline":  # the whole grid, waiting rows included
                for index in range(len(todo)):
                    row(index)

            def on_progress(index: int, p: TrainProgress) -> None:
                bar.update(row(index), completed=p.steps, total=p.total, **_progress_text(p))

            configs = [plan.config for plan in todo]
            for done in train_batch(configs, runner, workspace, db, resume=resume, on_progress=on_progress):
                failures += not _show(done, bar, row(done.index))
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted[/]: checkpoints stay in the run folders under "
            f"{escape(str(workspace.runs_dir))}; run the same command with --resume to continue"
        )
        raise typer.Exit(code=130) from None
    return failures


def _show(done: RunDone, bar: Progress, row: TaskID) -> bool:
    """Print a finished run's line (return, speed, artifact); False when it failed."""
    label = done.config.label
    result, model = done.result, done.model
    if result is None or model is None:
        bar.update(row, ret="[red]failed[/]", sps="")
        bar.console.print(f"[bold red]error:[/] {escape(label)}: {escape(done.error or 'no result')}")
        return False
    bar.update(row, completed=result.steps_done, total=max(result.steps_done, bar.tasks[row].total or 0))
    resumed = (
        f", resumed at step {result.resumed_from_step:,}" if result.resumed_from_step is not None else ""
    )
    bar.console.print(
        f"[green]trained[/] {escape(label)}: return {result.final_return_mean:.1f} ± {result.final_return_std:.1f} "
        f"({len(result.final_returns)} episodes) after {result.steps_done:,} steps in {result.wall_s:.0f} s "
        f"({result.train_steps_per_s:,.0f} steps/s{resumed})\n"
        f"  artifact {escape(model.name)} sha256 {model.short}, checkpoint {escape(str(model.checkpoint))}"
    )
    for note in result.exported.notes:
        bar.console.print(f"  [yellow]note:[/] {escape(note)}")
    return True
