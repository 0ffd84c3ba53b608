"""`drlc-host targets`: profiles listed, agents pinged (a live one, a dead one, a broken profile)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from host.cli.targets_cmd import targets_command

app = typer.Typer()
app.command()(targets_command)


def test_targets_lists_profiles_and_pings_agents(tmp_path: Path, agent, drlc_home) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "bench.toml").write_text(
        f'description = "the test agent"\naddress = "127.0.0.1:{agent.port}"\nmeters = ["nvml"]\n'
    )
    (profiles / "gone.toml").write_text('description = "nobody home"\naddress = "127.0.0.1:1"\n')
    (profiles / "broken.toml").write_text("address = 5\n")
    result = CliRunner().invoke(
        app,
        ["--profiles-dir", str(profiles), "--timeout", "10", "--no-spawn-local", "-v"],
        terminal_width=250,
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bench" in out and "gone" in out and "broken" in out
    assert (
        "up, " in out
        and "down" in out
        and "cannot reach the agent at 127.0.0.1:1: is `drlc-agent serve` running there?" in out
        and "invalid profile" in out
    )
    # the profile expects NVML, which this test agent lacks unless the machine has a GPU
    assert "nvml" in out
    # the shipped profiles are listed too (they come after the explicit folder)
    assert "jetson-orin" in out and "rpi5" in out and "gpu0" in out
