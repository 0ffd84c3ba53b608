"""Start a drlc agent on this machine for the `local` target, keep it up, and stop it afterwards."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from host.errors import DeviceError


class LocalAgent:
    """A ``drlc-agent serve`` child process, restarted on the same port if it dies (as systemd would).

    The agent is a separate process exactly as on a remote device, so the local target
    measures through the same wire, worker processes and code paths as any other.
    """

    def __init__(self, data_dir: Path, address: str = "127.0.0.1:0", startup_timeout_s: float = 60.0) -> None:
        self.data_dir = data_dir
        self.host, _, port = address.rpartition(":")
        self.port = int(port)
        self.startup_timeout_s = startup_timeout_s
        self.log_path = data_dir / "agent.log"
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="drlc-agent-")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn()
        self._watchdog = threading.Thread(target=self._watch, name="drlc-local-agent-watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self) -> None:
        port_file = Path(self._tmp.name) / "port"
        port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "device_agent",
                    "serve",
                    "--address",
                    self.address,
                    "--data-dir",
                    str(self.data_dir),
                    "--port-file",
                    str(port_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.process = process
        deadline = time.monotonic() + self.startup_timeout_s
        while not port_file.is_file():
            if process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise DeviceError(
                    f"the local agent exited with code {process.returncode} at start-up; its log ({self.log_path}):\n{tail}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise DeviceError(
                    f"the local agent did not start within {self.startup_timeout_s:.0f} s; see {self.log_path}"
                )
            time.sleep(0.05)
        self.port = int(port_file.read_text())  # keep the first port for every restart

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            if self.process is not None and self.process.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                try:
                    self._spawn()
                except DeviceError:
                    time.sleep(1.0)  # e.g. the port is still held; try again on the next tick

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._tmp.cleanup()


@contextmanager
def local_agent(
    data_dir: Path, address: str = "127.0.0.1:0", startup_timeout_s: float = 60.0
) -> Iterator[LocalAgent]:
    agent = LocalAgent(data_dir, address, startup_timeout_s)
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()
