"""Jetson boards: the INA3221 power monitor's total input rail, through its hwmon sysfs files.

On JetPack >= 5 (Orin) the kernel's ina3221 hwmon driver exposes, per monitor,
``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/`` with channels 1-3:
``in<c>_label`` (the rail's name), ``in<c>_input`` (bus voltage, mV), ``curr<c>_input``
(current, mA) and the monitor's ``update_interval`` (ms). Power is V x I, integrated by the
sampler process (device_agent.energy.sampler).

Only the board's total input rail is used (``VDD_IN`` on Orin Nano and Orin NX; ``POM_5V_IN``
on the original Nano). The other rails are parts of it (CPU/GPU/CV, SOC); adding them would
count the same joules twice, so they are never summed. AGX Orin has no total input rail on its
monitors (its rails are VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO); there the meter
says so rather than guessing a sum. Older JetPacks (ina3221x, iio) are not supported.
"""

from __future__ import annotations

import re
from pathlib import Path

from device_agent.energy.meters.base import EnergyMeter, Found, MeterStatus, unavailable
from device_agent.energy.sampler import PowerFormula, SampledMeter

DRIVER_DIR = Path("/sys/bus/i2c/drivers/ina3221")
TOTAL_INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
"""Labels of the board's total input rail, in preference order."""
DEVICE_RE = re.compile(r"^\d+-[0-9a-fA-F]{4}$")
MIN_SAMPLE_PERIOD_S = 0.01
"""The sampler reads the rail at most every 10 ms: faster adds load without information."""
SCOPE = "module input rail"


def _channels(driver_dir: Path) -> list[tuple[str, Path, int]]:
    """(label, hwmon dir, channel) of every labelled channel of every monitor."""
    out = []
    devices = (
        sorted(p for p in driver_dir.iterdir() if DEVICE_RE.match(p.name)) if driver_dir.is_dir() else []
    )
    for device in devices:
        for hwmon in sorted((device / "hwmon").glob("hwmon*")):
            for channel in (1, 2, 3):
                try:
                    label = (hwmon / f"in{channel}_label").read_text().strip()
                except OSError:
                    continue
                out.append((label, hwmon, channel))
    return out


def _update_interval_s(hwmon: Path) -> float:
    try:
        return max(float((hwmon / "update_interval").read_text()) / 1e3, 0.0)
    except (OSError, ValueError):
        return 0.0


def discover(driver_dir: Path = DRIVER_DIR, avoid_cpus: set[int] | None = None) -> list[Found]:
    channels = _channels(driver_dir)
    if not channels:
        return [
            unavailable(
                "ina3221",
                f"absent: no INA3221 hwmon channels under {driver_dir} (not a Jetson on JetPack >= 5)",
            )
        ]
    by_label = {label: (hwmon, channel) for label, hwmon, channel in channels}
    rail = next((r for r in TOTAL_INPUT_RAILS if r in by_label), None)
    if rail is None:
        rails = ", ".join(sorted(by_label))
        return [
            unavailable(
                "ina3221",
                f"no total input rail: this board's monitors have {rails} but none of {', '.join(TOTAL_INPUT_RAILS)}; "
                "drlc does not add rails together (they may overlap)",
            )
        ]
    hwmon, channel = by_label[rail]
    name = f"ina3221:{rail}"
    volts_file, amps_file = hwmon / f"in{channel}_input", hwmon / f"curr{channel}_input"
    try:
        volts = float(volts_file.read_text()) / 1e3
        amps = float(amps_file.read_text()) / 1e3
    except PermissionError as exc:
        return [unavailable(name, f"no permission: {exc.filename} is not readable by the agent's user")]
    except (OSError, ValueError) as exc:
        return [unavailable(name, f"unreadable: {exc}")]
    period = max(_update_interval_s(hwmon), MIN_SAMPLE_PERIOD_S)
    # one step of the integer mV and mA readings, held for one update
    resolution_j = (1e-3 * abs(volts) + 1e-3 * abs(amps)) * period
    formula = PowerFormula((volts_file, amps_file), 1e-6)

    def opener() -> EnergyMeter:
        return SampledMeter(name, formula, period, period, resolution_j, SCOPE, avoid_cpus)

    return [Found(MeterStatus(name, True, "", resolution_j, period, SCOPE), opener)]
