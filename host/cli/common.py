"""What every command shares: the workspace option, turning user errors into one clean line, and keeping
library warnings out of the terminal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from host.errors import DrlcError
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="drlc workspace (artifacts, results database); default $DRLC_HOME or the user data dir"
    ),
]
TargetOption = Annotated[
    str, typer.Option("--target", "-t", help="profile name (profiles/NAME.toml) or a .toml path")
]
"""The one target a command talks to (deploy, clean)."""
DEFAULT_TARGET = "local"
"""The target a command talks to when --target is not given: an agent spawned on this machine."""
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--models",
        "-m",
        help="sha256 prefix, name, sweep:BASELINE or .onnx path; repeatable or a comma list",
    ),
]
"""Models a command acts on (deploy: default every registered model; clean: the ones to remove)."""
ProfilesDirOption = Annotated[Path | None, typer.Option(help="where to look for target profiles first")]

# Tables are wide: when printing to a pipe or file (no terminal to measure), do not squeeze them to 80 columns,
# unless COLUMNS says how wide (as in a CI log, or to check what an 80-column terminal shows).
console = Console(width=None if Console().is_terminal or os.environ.get("COLUMNS", "").isdigit() else 200)
err_console = Console(stderr=True)

LOG_NAME = "drlc-host.log"
"""Where library warnings (matplotlib, SB3, Gymnasium) and log records go instead of the terminal: the
workspace's own log file."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI job's timeout, a container stop) unwind like Ctrl-C.

    Python's default SIGTERM ends the process on the spot: no ``finally`` runs, so a local agent spawned
    for ``--target local`` (and its workers) outlived the command. As KeyboardInterrupt, every command's
    clean-up runs (the agent is stopped, checkpoints are kept) and it ends as Ctrl-C ends it. Only the main
    thread may install a handler; elsewhere (a command run from a thread) nothing changes.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def print_error(message: str) -> None:
    """One line on stderr; the terminal wraps it, rich does not break it (so it can be copied whole)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a DrlcError as one readable line and exit 1; anything else is a bug and keeps its traceback.

    An OSError that names a file (an output folder that does not exist, a file that cannot be read or
    written) comes from what the user typed, so it is reported the same way, with the file's name.
    """
    try:
        yield
    except DrlcError as exc:
        print_error(str(exc))
        raise typer.Exit(code=1) from None
    except OSError as exc:
        if exc.filename is None:
            raise
        reason = exc.strerror or type(exc).__name__
        hint = ""
        if isinstance(exc, FileNotFoundError) and not Path(exc.filename).parent.exists():
            hint = (
                f" (the folder {Path(exc.filename).parent} does not exist: create it or choose another path)"
            )
        print_error(f"cannot use {exc.filename}: {reason}{hint}")
        raise typer.Exit(code=1) from None


@contextmanager
def warnings_to_log(path: Path, mujoco: bool = True) -> Iterator[None]:
    """Send Python warnings and log records to ``path`` for the duration, not to the user's terminal.

    Libraries warn about things the user cannot act on (deprecations inside SB3, Gymnasium's
    env-version notes, matplotlib's font cache, ONNX Runtime's quantizer advice); they stay in the
    workspace's log for whoever debugs.

    :param mujoco: also catch MuJoCo's own C-level warnings (Gymnasium's HalfCheetah XML uses a
        deprecated attribute); this imports mujoco (about 0.2 s), which commands that build no env skip
    """
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    module = _mujoco() if mujoco else None
    previous = module.get_mju_user_warning() if module else None
    if module:
        module.set_mju_user_warning(lambda text: logging.getLogger("mujoco").warning(text))
    try:
        yield
    finally:
        if module:
            module.set_mju_user_warning(previous)
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()


def _mujoco() -> Any:
    # mujoco is a dependency; if its install is broken, the command that needs it says so later
    try:
        import mujoco  # heavy: loaded only by commands that step MuJoCo, to route its warnings
    except ImportError:  # pragma: no cover
        return None
    return mujoco


def home_flag(home: Path | None) -> str:
    """What a printed next command needs to reach the same workspace: `` --home PATH`` when one was given."""
    return f" --home {home}" if home is not None else ""


DEMO_HOME = Path(".drlc-demo")
"""Where `make demo` keeps its workspace (the Makefile's DEMO_HOME), apart from the user's own."""


def check_output_path(path: Path | None) -> None:
    """Refuse an output file whose folder does not exist before any work is done, naming the folder."""
    if path is None:
        return
    folder = path.expanduser().parent
    if not folder.is_dir():
        raise DrlcError(
            f"cannot write {path}: the folder {folder} does not exist (create it or choose another path)"
        )
    if path.is_dir():
        raise DrlcError(f"cannot write {path}: it is a folder; give a file name, e.g. {path / 'report.html'}")


def no_results_hint(workspace: Workspace) -> str:
    """What to say when a workspace holds no results: how to make some, and where `make demo` put its own."""
    text = f"no results yet in {workspace.home}: measure a model first (drlc-host deploy --target local)"
    demo = DEMO_HOME.resolve()
    if (demo / "results.sqlite").is_file() and demo != workspace.home:
        text += f"; `make demo` keeps its results apart, see them with: drlc-host report --home {DEMO_HOME}"
    return text


@contextmanager
def open_workspace(home: Path | None, mujoco: bool = True) -> Iterator[tuple[Workspace, ResultsDB]]:
    """The workspace and its results database, with library warnings going to its log.

    :param mujoco: the command may build MuJoCo envs here (see :func:`warnings_to_log`)
    """
    workspace = Workspace.resolve(home)
    with warnings_to_log(workspace.home / LOG_NAME, mujoco=mujoco), ResultsDB(workspace.db_path) as db:
        yield workspace, db
