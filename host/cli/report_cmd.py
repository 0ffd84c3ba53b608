"""`drlc-host report`: what was measured, per target and across targets, with the study's tables."""

from __future__ import annotations

import textwrap
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from host.cli.common import (
    HomeOption,
    check_output_path,
    console,
    err_console,
    no_results_hint,
    open_workspace,
    user_errors,
)
from host.decision import NOISE_THRESHOLD
from host.errors import DrlcError
from host.report.analysis import Analysis, analyse
from host.report.csv_report import render_csv
from host.report.html import render_html
from host.report.json_report import job_records, render_json
from host.report.markdown import render_markdown
from host.report.noise import noise_lines
from host.report.rows import ReportFilter, ReportRow, collect_rows, device_infos, latest_measurements
from host.report.stats import Optimise
from host.report.terminal import WIDTH, parse_columns, render_compare, render_terminal, terminal_width


class ReportFormat(str, Enum):
    """--format: the renderer a report goes through."""

    table = "table"
    md = "md"
    csv = "csv"
    html = "html"
    json = "json"


class ReportError(DrlcError):
    """A report cannot be made as asked."""


def report_command(
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (terminal), md, csv, html (one file, plots embedded), or json (every job, comparison and "
            "recommendation; schema in README)",
        ),
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
        Optimise,
        typer.Option(
            help="what the recommendation minimises among variants shown to keep the return: latency (p50), "
            "p99, size (file bytes), memory (model RSS), energy (per inference, one meter)"
        ),
    ] = Optimise.latency,
    noise_threshold: Annotated[
        float,
        typer.Option(
            help="a change smaller than this fraction (0.05: ±5 %) is 'within noise' whatever its p-value",
        ),
    ] = NOISE_THRESHOLD,
    require_keeps: Annotated[
        list[str] | None,
        typer.Option(
            help="exit with status 3 unless this model (name or sha256 prefix) is shown to keep 90 % of its "
            "baseline's return on every target it was measured on; repeatable (for CI gates)",
        ),
    ] = None,
    title: Annotated[
        str, typer.Option(help="title of the report (first line in the terminal; heading in md, html, json)")
    ] = "drlc report",
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="every column in the compact tables (terminal, md, html), not only the few that decide",
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            help="the compact tables' columns (terminal, md, html), comma-separated, e.g. "
            "variant,model,return,p50,energy (a typo lists them all)"
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="devices side by side, comma-separated (local,gpu0): each policy's variants on each, with the "
            "recommendation per device"
        ),
    ] = None,
    all_measurements: Annotated[
        bool,
        typer.Option(
            "--all-measurements",
            help="every way a baseline was measured on a target (older settings, runtimes, protocols), each "
            "compared with its own baseline; default: only the newest",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Return, latency, memory and energy of every profiled variant against its baseline, per target and side by
    side: the study's tables, significance tests, a recommendation per policy and device, and plots (html)."""
    with user_errors(), open_workspace(home) as (workspace, db):
        check_output_path(output)
        everything = collect_rows(db)
        if not everything:
            console.print(no_results_hint(workspace), soft_wrap=True, highlight=False)
            return
        chosen = ReportFilter(
            targets=tuple(target or ()),
            algos=tuple(algo or ()),
            envs=tuple(env or ()),
            baselines=tuple(baseline or ()),
        )
        rows, hidden_line = _chosen_rows(chosen, everything, all_measurements)
        if not rows:
            raise ReportError(
                "no results match the filters; measured: targets "
                + ", ".join(sorted({r.target for r in everything}))
                + "; algos "
                + ", ".join(sorted({r.algo for r in everything}))
                + "; envs "
                + ", ".join(sorted({r.env_id for r in everything}))
            )
        if not 0.0 <= noise_threshold < 1.0:
            raise ReportError(
                f"--noise-threshold {noise_threshold} is not a fraction in [0, 1): give e.g. 0.05 for ±5 %"
            )
        noisy = [*noise_lines(db, {r.target for r in rows}), *_hidden_note(hidden_line, fmt)]
        analysis = analyse(rows, optimise, noise_threshold)
        chosen_columns = parse_columns(columns, wide)
        if compare is not None:
            if fmt is not ReportFormat.table:
                raise ReportError(
                    "--compare is a terminal view: leave out --format (html and md show every device)"
                )
            devices = [d.strip() for d in compare.split(",") if d.strip()]
            text = render_compare(analysis, devices, terminal_width())
        elif fmt is ReportFormat.table:
            text = render_terminal(
                analysis,
                terminal_width() if output is None else WIDTH,
                chosen_columns,
                title,
            )
        elif fmt is ReportFormat.html:
            if output is None:
                raise ReportError("an HTML report is one file: give it a name with -o report.html")

            with console.status("drawing the plots..."):
                text = render_html(
                    analysis, title=title, devices=device_infos(db, rows), columns=chosen_columns
                )
        elif fmt is ReportFormat.csv:
            text = render_csv(analysis)
        elif fmt is ReportFormat.json:
            text = render_json(analysis, job_records(db, rows), title)
        else:
            text = render_markdown(analysis, title=title, columns=chosen_columns)
            text += "".join(f"\n> {line}\n" for line in noisy)
        if fmt is ReportFormat.table and noisy:  # a device whose timings were spoiled says so, in 80 columns
            width = terminal_width() if output is None else WIDTH
            text = text.rstrip("\n") + "\n\n" + "\n".join(textwrap.fill(line, width) for line in noisy) + "\n"
        if output:
            output.write_text(text)
            console.print(f"wrote {output}")
        else:
            typer.echo(text, nl=not text.endswith("\n"))
        _gate(analysis, require_keeps or [])


def _chosen_rows(
    chosen: ReportFilter, everything: list[ReportRow], all_measurements: bool
) -> tuple[list[ReportRow], str | None]:
    """The filtered rows, newest measurement of each baseline only unless asked for all, and the line that
    says how many were left out (None when none was)."""
    rows = chosen.apply(everything)
    if all_measurements:
        return rows, None
    newest = latest_measurements(rows)
    hidden = len(rows) - len(newest)
    if not hidden:
        return newest, None
    return newest, (
        f"{hidden} row{'s' if hidden != 1 else ''} from older measurements of these baselines (other settings, "
        "runtime or protocol) not shown: --all-measurements shows them"
    )


def _hidden_note(line: str | None, fmt: ReportFormat) -> list[str]:
    """The left-out rows' line: the terminal and Markdown reports end with it; the other formats have no free
    text, so it goes to stderr."""
    if line is None:
        return []
    if fmt not in (ReportFormat.table, ReportFormat.md):
        err_console.print(f"note: {line}", soft_wrap=True, highlight=False)
        return []
    return [line]


GATE_FAILED = 3
"""Exit status of a report whose --require-keeps gate failed (1: an error such as no results or a bad option
value, 2: a command line typer cannot parse)."""


def _gate(analysis: Analysis, names: list[str]) -> None:
    """--require-keeps: every comparison of each named model must say "keeps"; else exit GATE_FAILED."""
    if not names:
        return
    comparisons = analysis.comparisons
    failed = []
    for name in names:
        mine = [
            c
            for c in comparisons
            if not c.is_baseline
            and (c.row.model.lower() == name.lower() or c.row.sha256.startswith(name.lower()))
        ]
        if not mine:
            raise ReportError(
                f"--require-keeps {name}: no variant of that name or sha256 prefix in this report"
            )
        failed += [
            f"{name} on {c.row.target}: {c.keep.verdict.value} ({c.keep.reason})"
            for c in mine
            if not c.keeps_return
        ]
    if failed:
        for line in failed:
            console.print(f"[red]gate failed:[/red] {line}")
        raise typer.Exit(GATE_FAILED)
