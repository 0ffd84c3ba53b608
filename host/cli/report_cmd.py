"""`drlc-host report`: what was measured, per target."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.report import ReportFormat, collect_rows, render_csv, render_markdown, render_rich


def report_command(
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="table (terminal), md or csv")
    ] = ReportFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of the terminal")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Return, latency, memory and size of every profiled variant, one table per target."""
    with user_errors(), open_workspace(home) as (_, db):
        rows = collect_rows(db)
        if not rows:
            console.print("no results yet: run `drlc-host deploy --target local` first")
            return
        if fmt is ReportFormat.table and output is None:
            for table in render_rich(rows):
                console.print(table)
            return
        text = render_csv(rows) if fmt is ReportFormat.csv else render_markdown(rows)
        if output:
            output.write_text(text)
            console.print(f"wrote {output}")
        else:
            typer.echo(text)
