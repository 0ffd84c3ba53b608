"""Shared fixtures: where the shared RL Zoo agents live, and a private DRLC_HOME per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_zoo_dir() -> Path | None:
    """The shared zoo: $DRLC_ZOO_DIR, else ../shared/zoo beside the project root."""
    env = os.environ.get("DRLC_ZOO_DIR")
    candidate = Path(env) if env else ROOT.parent / "shared" / "zoo"
    return candidate if (candidate / "reference_returns.csv").is_file() else None


ZOO_DIR = find_zoo_dir()
# (algo, folder) of every agent in the shared zoo, found by its layout <algo>/<Env>-v3/<Env>-v3.zip.
ZOO_AGENTS: list[tuple[str, str]] = (
    sorted((p.parent.parent.name, p.parent.name) for p in ZOO_DIR.glob("*/*/*.zip")) if ZOO_DIR else []
)

# The agents that do not simply run in the newest env version: $DRLC_ZOO_EXTRA_DIR, else zoo-extra beside the zoo.
_extra = os.environ.get("DRLC_ZOO_EXTRA_DIR")
ZOO_EXTRA_DIR: Path | None = Path(_extra) if _extra else (ZOO_DIR.parent / "zoo-extra" if ZOO_DIR else None)
ZOO_EXTRA_AGENTS: list[tuple[str, str]] = (
    sorted((p.parent.parent.name, p.parent.name) for p in ZOO_EXTRA_DIR.glob("*/*/*.zip"))
    if ZOO_EXTRA_DIR and ZOO_EXTRA_DIR.is_dir()
    else []
)


@pytest.fixture
def zoo_dir() -> Path:
    if ZOO_DIR is None:
        pytest.skip("needs the shared RL Zoo agents: ../shared/zoo or DRLC_ZOO_DIR")
    return ZOO_DIR


@pytest.fixture
def drlc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "drlc-home"
    monkeypatch.setenv("DRLC_HOME", str(home))
    return home


@pytest.fixture
def agent(tmp_path: Path):
    """A real agent gRPC server on a free loopback port, with its own data dir."""
    from device_agent.service.server import create_server

    running = create_server("127.0.0.1:0", tmp_path / "agent-data")
    yield running
    running.stop(grace_s=0)


@pytest.fixture
def client(agent):
    from host.measure.agent_client import AgentClient

    with AgentClient(f"127.0.0.1:{agent.port}") as c:
        c.wait_ready()
        yield c
