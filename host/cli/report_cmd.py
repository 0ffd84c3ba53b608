"""`drlc-host report`: what was measured, per target and across targets, with the study's tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.errors import DrlcError
from host.report import (
    ReportFilter,
    ReportFormat,
    collect_rows,
    device_infos,
    render_csv,
    render_markdown,
    render_rich,
)
from host.report_noise import noise_lines
from host.report_stats import Optimise


class ReportError(DrlcError):
    """A report cannot be made as asked."""


def report_command(
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="table (terminal), md, csv, or html (one file, plots embedded)"),
    ] = ReportFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of the terminal")
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="only this target; repeatable")
    ] = None,
    algo: Annotated[
        list[str] | None, typer.Option(help="only this algorithm (sac, ppo, ...); repeatable")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(help="only this env (HalfCheetah-v5, or HalfCheetah for every version); repeatable"),
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(help="only this baseline (name or sha256 prefix) and its variants; repeatable"),
    ] = None,
    optimise: Annotated[
        Optimise, typer.Option(help="what the recommendation minimises among variants that keep the return")
    ] = Optimise.latency,
    title: Annotated[str, typer.Option(help="title of the md / html report")] = "drlc report",
    home: HomeOption = None,
) -> None:
    """Return, latency, memory and energy of every profiled variant against its baseline, per target and side by
    side: the study's tables, significance tests, a recommendation per policy and device, and plots (html)."""
    with user_errors(), open_workspace(home) as (_, db):
        everything = collect_rows(db)
        if not everything:
            console.print("no results yet: run `drlc-host deploy --target local` first")
            return
        chosen = ReportFilter(
            targets=tuple(target or ()),
            algos=tuple(algo or ()),
            envs=tuple(env or ()),
            baselines=tuple(baseline or ()),
        )
        rows = chosen.apply(everything)
        if not rows:
            raise ReportError(
                "no results match the filters; measured: targets "
                + ", ".join(sorted({r.target for r in everything}))
                + "; algos "
                + ", ".join(sorted({r.algo for r in everything}))
                + "; envs "
                + ", ".join(sorted({r.env_id for r in everything}))
            )
        noisy = noise_lines(db, {r.target for r in rows})
        if fmt is ReportFormat.table and output is None:
            for table in render_rich(rows):
                console.print(table)
            for line in noisy:
                console.print(f"[yellow]{line}[/]")
            return
        if fmt is ReportFormat.html:
            if output is None:
                raise ReportError("an HTML report is one file: give it a name with -o report.html")
            from host.report_html import render_html

            with console.status("drawing the plots..."):
                text = render_html(rows, title=title, optimise=optimise, devices=device_infos(db, rows))
        elif fmt is ReportFormat.csv:
            text = render_csv(rows)
        else:
            text = render_markdown(rows, optimise=optimise.value, title=title if output else None)
            text += "".join(f"\n> {line}\n" for line in noisy)
        if output:
            output.write_text(text)
            console.print(f"wrote {output}")
        else:
            typer.echo(text)
