"""`drlc-agent` on bad input: one line naming the problem, exit 2, no traceback, nothing bound."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device_agent", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "localhost", "127.0.0.1:http"])
def test_a_bad_listen_address_is_refused(address: str, tmp_path: Path) -> None:
    done = agent("serve", "--address", address, "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"drlc-agent: bad address {address!r}: give HOST:PORT with a port in 0..65535 (0: any free port)"
    )
    assert "Traceback" not in done.stderr and "serving" not in done.stdout


def test_a_data_dir_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = agent("serve", "--address", "127.0.0.1:0", "--data-dir", str(blocker / "data"))
    assert done.returncode == 2
    assert f"drlc-agent: cannot use the data dir {blocker / 'data'}: " in done.stderr
    assert "Traceback" not in done.stderr
