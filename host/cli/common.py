"""What every command shares: the workspace option and turning DrlcError into a clean exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from host.errors import DrlcError
from host.results_db import ResultsDB
from host.workspace import Workspace

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="drlc workspace (artifacts, results database); default $DRLC_HOME or the user data dir"
    ),
]

# Tables are wide: when printing to a pipe or file (no terminal to measure), do not squeeze them to 80 columns.
console = Console(width=None if Console().is_terminal else 200)
err_console = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a DrlcError as one readable line and exit 1; anything else is a bug and keeps its traceback."""
    try:
        yield
    except DrlcError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from None


@contextmanager
def open_workspace(home: Path | None) -> Iterator[tuple[Workspace, ResultsDB]]:
    workspace = Workspace.resolve(home)
    with ResultsDB(workspace.db_path) as db:
        yield workspace, db
