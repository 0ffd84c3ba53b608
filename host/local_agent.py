"""Start a drlc agent on this machine for the `local` target, and stop it afterwards."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from host.errors import DeviceError


@contextmanager
def local_agent(
    data_dir: Path, address: str = "127.0.0.1:0", startup_timeout_s: float = 60.0
) -> Iterator[str]:
    """Run ``drlc-agent serve`` as a child process; yields its ``host:port``.

    The agent is a separate process exactly as on a remote device, so the local target
    measures through the same wire, worker processes and code paths as any other.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drlc-agent-") as tmp:
        port_file = Path(tmp) / "port"
        log_path = data_dir / "agent.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "device_agent",
                    "serve",
                    "--address",
                    address,
                    "--data-dir",
                    str(data_dir),
                    "--port-file",
                    str(port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + startup_timeout_s
            while not port_file.is_file():
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise DeviceError(
                        f"the local agent exited with code {process.returncode} at start-up; its log ({log_path}):\n{tail}"
                    )
                if time.monotonic() > deadline:
                    raise DeviceError(
                        f"the local agent did not start within {startup_timeout_s:.0f} s; see {log_path}"
                    )
                time.sleep(0.05)
            host = address.rsplit(":", 1)[0]
            yield f"{host}:{int(port_file.read_text())}"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
