"""SIGTERM unwinds drlc-host like Ctrl-C: the local agent it spawned does not outlive it (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
from typer.testing import CliRunner

from host.cli.common import _raise_interrupt
from host.cli.main import app

ROOT = Path(__file__).resolve().parents[3]

# What `drlc-host deploy --target local` does around its work: the CLI's SIGTERM handler, then a real local
# agent in a context manager, then work that takes as long as it takes (here: until the signal).
SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from host.cli.common import interrupt_on_sigterm
    from host.measure.local_agent import local_agent

    interrupt_on_sigterm()
    data = Path(sys.argv[1])
    try:
        with local_agent(data / "agent") as agent:
            (data / "agent.pid").write_text(str(agent.process.pid))
            threading.Event().wait()
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


def wait_for(condition, what: str, limit_s: float = 120.0) -> None:
    """Poll a condition (never a fixed sleep as the test's logic); the limit only stops a broken run."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_sigterm_stops_the_local_agent_it_spawned(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    host = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env)
    try:
        pid_file = tmp_path / "agent.pid"
        wait_for(pid_file.is_file, "the local agent to start")
        agent = psutil.Process(int(pid_file.read_text()))
        assert agent.is_running()
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=60) == 130  # unwound as interrupted, not killed by the signal (-15)
        agent.wait(timeout=60)  # returns once the agent is gone (reaped: its parent has exited)
    finally:
        if host.poll() is None:
            host.kill()


def test_every_drlc_host_command_installs_the_handler(tmp_path: Path) -> None:
    """The handler comes from the CLI's own callback, for every command (here: one that needs no device)."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(app, ["models", "--home", str(tmp_path / "ws")])
        assert result.exit_code == 0, result.output
        assert signal.getsignal(signal.SIGTERM) is _raise_interrupt
    finally:
        signal.signal(signal.SIGTERM, before)
