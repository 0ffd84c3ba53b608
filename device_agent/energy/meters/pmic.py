"""The Raspberry Pi 5's PMIC: per-rail voltage and current from ``vcgencmd pmic_read_adc``.

The Pi 5's power-management IC measures each of its supply rails; the firmware prints them as
``<RAIL>_A current(<n>)=<amps>A`` and ``<RAIL>_V volt(<n>)=<volts>V`` lines. Power is the sum of
volts x amps over every rail that reports both (the 5 V input and the battery report a voltage
only, and are left out: they are not rails the PMIC supplies). The total covers what the PMIC
supplies - the SoC, DRAM and the board's regulated rails - not USB devices or a HAT fed from the
5 V input, so the scope says "PMIC rails".

Each read runs the command (about 23 ms on a Pi 5), so the sampler process reads it every
``SAMPLE_PERIOD_S`` (10 Hz) and integrates; the update period stated is that sampling period.
Off a Pi 5 (or without ``vcgencmd``) the meter is absent, with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from device_agent.energy.meters.base import EnergyMeter, Found, MeterStatus, unavailable
from device_agent.energy.meters.pmic_text import PmicParseError, rails, total_power_w
from device_agent.energy.sampler import SampledMeter

NAME = "pmic:rpi5"
SCOPE = "PMIC rails (SoC, DRAM, board regulators; not the 5 V input's USB or HAT loads)"
MODEL_FILE = Path("/proc/device-tree/model")
SAMPLE_PERIOD_S = 0.1
"""One read costs ~23 ms of one core; 10 Hz keeps the sampler's own load small and fixed."""
PRINTED_STEP_A = 1e-8
"""The firmware prints currents with 8 decimals. The ADC's own resolution is not documented, so the
resolution stated is what the printout can express, held for one update; the 10-update rule on every
window is what keeps short windows from being reported."""


def _model(model_file: Path) -> str:
    try:
        return model_file.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
    except OSError:
        return ""


def discover(
    model_file: Path = MODEL_FILE, vcgencmd: str | None = None, avoid_cpus: set[int] | None = None
) -> list[Found]:
    model = _model(model_file)
    if "Raspberry Pi 5" not in model:
        return [unavailable("pmic", f"absent: not a Raspberry Pi 5 ({model or 'no device-tree model'})")]
    command = vcgencmd or shutil.which("vcgencmd")
    if command is None:
        return [
            unavailable("pmic", "absent: vcgencmd is not installed (Raspberry Pi OS: libraspberrypi-bin)")
        ]
    argv = [command, "pmic_read_adc"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip()
            return [
                unavailable(
                    NAME,
                    f"no permission: vcgencmd pmic_read_adc failed ({reason}); add the agent's user to the video group",
                )
            ]
        watts = total_power_w(done.stdout)
    except (OSError, subprocess.TimeoutExpired, PmicParseError) as exc:
        return [unavailable(NAME, f"unreadable: {exc}")]
    n_rails = len(rails(done.stdout))
    step_w = PRINTED_STEP_A * max(v for v, _ in rails(done.stdout).values()) * n_rails
    resolution_j = max(step_w, 1e-9 * watts) * SAMPLE_PERIOD_S

    def opener() -> EnergyMeter:
        return SampledMeter(NAME, argv, SAMPLE_PERIOD_S, SAMPLE_PERIOD_S, resolution_j, SCOPE, avoid_cpus)

    return [Found(MeterStatus(NAME, True, "", resolution_j, SAMPLE_PERIOD_S, SCOPE), opener)]
