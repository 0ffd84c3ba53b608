"""`drlc-host study`: run a whole study file (policies x methods x targets) resumably, and report it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from host.cli.common import HomeOption, console, err_console, open_workspace, user_errors
from host.study.file import load_study
from host.study.plan import StudyPlan, format_duration, load_profiles, make_plan
from host.study.report import write_study_report
from host.study.run import run_study
from host.training.executors import make_executor

study_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Run a study: every policy x compression method x target of a TOML study file, resumably.",
)

StudyFileArg = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, resolve_path=True, help="the study file (TOML)")
]
ProfilesDirOption = Annotated[Path | None, typer.Option(help="where to look for target profiles first")]
ReportDirOption = Annotated[
    Path | None,
    typer.Option("--report-dir", help="write the report here instead of the study file's report_dir"),
]


def plan_table(plan: StudyPlan) -> Table:
    table = Table(title=f"study {plan.study.name}: what is missing", title_justify="left")
    table.add_column("policy")
    table.add_column("baseline")
    table.add_column("variants to make", justify="right")
    for target in plan.targets:
        table.add_column(f"jobs on {target.name}", justify="right")
    for pp in plan.policies:
        if pp.baseline is not None:
            base = f"{pp.baseline.name} [{pp.baseline.short[:8]}]"
        else:
            base = {"import": "to import", "train": "to train"}.get(pp.policy.kind, "missing")
        n_models = 1 + len(pp.variants)
        jobs = [f"{pp.jobs_missing[t.name]} / {n_models}" for t in plan.targets]
        table.add_row(
            escape(pp.policy.label), escape(base), f"{pp.variants_missing} / {len(pp.variants)}", *jobs
        )
    return table


def episodes_per_job(plan: StudyPlan) -> str:
    """``10 episodes per job``, or per target where their profiles differ (``episodes per job: 10 on local, 3 on
    pi5``)."""
    counts = {t.episodes for t in plan.targets}
    if len(counts) == 1:
        return f"{counts.pop()} episodes per job"
    return "episodes per job: " + ", ".join(f"{t.episodes} on {t.name}" for t in plan.targets)


def print_plan(plan: StudyPlan) -> None:
    console.print(plan_table(plan))
    study = plan.study
    n_base = sum(pp.baseline is None for pp in plan.policies)
    n_var = sum(pp.variants_missing for pp in plan.policies)
    n_var_total = sum(len(pp.variants) for pp in plan.policies)
    jobs = ", ".join(f"{t.jobs_missing} of {t.jobs_total} on {t.name}" for t in plan.targets)
    console.print(
        f"{len(plan.policies)} policies, {len(study.targets)} targets, {episodes_per_job(plan)}; "
        f"to do: {n_base} baselines, {n_var} of {n_var_total} variants, jobs {jobs}"
    )
    console.print(
        f"estimated time: baselines {format_duration(plan.est_baselines_s)}, compression "
        f"{format_duration(plan.est_compress_s)}, measurement {format_duration(plan.est_deploy_s)} "
        f"(targets in parallel): about {format_duration(plan.est_total_s)}"
    )


class StudyProgress:
    """Turns the study's events into progress bars: one for compression, one per target, one per training run."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, kind: str, d: dict[str, Any]) -> None:
        bar = self.bar
        if kind == "phase":
            self._phase(d)
        elif kind == "baseline":
            bar.console.print(f"baseline {escape(d['policy'])}: {escape(d['status'])}")
        elif kind == "variant" and d["status"] != "skipped" and "compress" in self.tasks:
            status = d["status"]
            text = f"compress {d['baseline']}: {d['label']} {status.split(':')[0]}"
            bar.update(self.tasks["compress"], advance=1, description=escape(text))
            if status.startswith("failed"):
                bar.console.print(f"[red]{escape(d['baseline'])} {escape(d['label'])}: {escape(status)}[/]")
        elif kind == "job" and d["target"] in self.tasks:
            task = self.tasks[d["target"]]
            text = f"measure on {d['target']}: {d['model'].name} {d['done']}/{d['total']} episodes + rounds"
            bar.update(task, description=escape(text))
            if d["done"] == d["total"] and d["total"]:
                bar.update(task, advance=1)
        elif kind == "note":
            bar.console.print(f"[yellow]{escape(d['text'])}[/]")
        elif kind == "target" and d.get("outcome") is not None and d["outcome"].noisy_line():
            bar.console.print(f"[yellow]{escape(d['target'])}: {escape(d['outcome'].noisy_line())}[/]")
        elif kind == "train":
            p = d["progress"]
            key = f"train {d['policy']}"
            if key not in self.tasks:
                self.tasks[key] = bar.add_task(escape(key), total=p.total)
            bar.update(self.tasks[key], completed=p.steps)

    def _phase(self, d: dict[str, Any]) -> None:
        if d["name"] == "compress":
            missing = sum(pp.variants_missing for pp in d["plan"].policies)
            if missing:
                self.tasks["compress"] = self.bar.add_task("compress", total=missing)
        elif d["name"] == "deploy":
            for t in d["plan"].targets:
                if t.jobs_missing:
                    self.tasks[t.name] = self.bar.add_task(f"measure on {t.name}", total=t.jobs_missing)


def run_command(
    study_file: StudyFileArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the plan and an estimated time; do nothing")
    ] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="write the report at the end")] = True,
    report_dir: ReportDirOption = None,
    profiles_dir: ProfilesDirOption = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="where training runs and variants are made, one task each: local (a process pool on this "
            "machine) or ray (a Ray cluster); default: in this process, one after another",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="tasks at once (local: default one per core; ray: default as many as it schedules)", min=0
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join ('auto': the one on this machine); default: start one"),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Do everything the study still misses: import or train, compress, measure on every target at once, report.

    Run again, it does nothing that is already in the results database.
    """
    with user_errors(), open_workspace(home) as (workspace, db):
        study = load_study(study_file)
        if report_dir is not None:
            study = replace(study, report_dir=report_dir.resolve())
        profiles = load_profiles(study, profiles_dir)
        plan = make_plan(study, db, profiles)
        print_plan(plan)
        if dry_run:
            return
        if plan.nothing_to_do:
            console.print("nothing to do: every baseline, variant and job of this study is in the database")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            runner = make_executor(executor, workers or None, ray_address) if executor else None
            outcome = run_study(
                study, workspace, db, profiles, StudyProgress(bar), write_report=report, executor=runner
            )
        made = f"{len(outcome.baselines_made)} baselines made, {outcome.variants_made} variants made"
        jobs = ", ".join(
            f"{name}: {outcome.jobs_run.get(name, 0)} profiled, {outcome.jobs_skipped.get(name, 0)} already done"
            for name in study.targets
        )
        console.print(f"{made}; {jobs}; {format_duration(outcome.wall_s)}")
        for path in outcome.report_files:
            console.print(f"wrote {path}")
        for failure in outcome.failures:
            err_console.print(f"[red]failed:[/] {escape(failure)}")
        if outcome.failures:
            raise typer.Exit(code=1)


def report_command(
    study_file: StudyFileArg,
    report_dir: ReportDirOption = None,
    home: HomeOption = None,
) -> None:
    """Write the study's report (HTML with plots, Markdown, CSV) from what the database holds now."""
    with user_errors(), open_workspace(home) as (_, db):
        study = load_study(study_file)
        if report_dir is not None:
            study = replace(study, report_dir=report_dir.resolve())
        for path in write_study_report(study, db):
            console.print(f"wrote {path}")


study_app.command("run")(run_command)
study_app.command("report")(report_command)
