"""A battery through ``/sys/class/power_supply``: the whole device's draw, while it runs on battery.

Each supply has ``type`` ("Battery", "Mains", "USB"), ``status`` ("Discharging", "Charging",
"Full", "Not charging") and either ``power_now`` (µW) or ``current_now`` (µA) and
``voltage_now`` (µV) (include/linux/power_supply.h: "all voltages, currents, charges, energies
... in uV, µA, µAh, µWh"). Power is integrated by the sampler process.

Only a discharging battery sees the device's draw: on external power it reports its charging
current instead, so the meter is unavailable then, with that reason. Fuel gauges refresh
slowly (ACPI batteries cache their state for 1 s by default, many gauges are slower), so
windows need ten seconds or more; shorter ones are flagged.
"""

from __future__ import annotations

from pathlib import Path

from device_agent.energy.meters.base import EnergyMeter, Found, MeterStatus, unavailable
from device_agent.energy.sampler import PowerFormula, SampledMeter

POWER_SUPPLY = Path("/sys/class/power_supply")
UPDATE_PERIOD_S = 1.0
"""ACPI's default battery cache_time; a gauge that refreshes more slowly still makes the job's
windows too short for it, which the 10-period rule cannot see: profile such a device with a longer
inference phase (profiles' measurement.inference_phase_s)."""
SAMPLE_PERIOD_S = 0.2
SCOPE = "whole device (battery)"


def _read(path: Path) -> str:
    return path.read_text().strip()


def _formula(supply: Path) -> PowerFormula | None:
    if (supply / "power_now").is_file():
        return PowerFormula((supply / "power_now",), 1e-6)
    if (supply / "current_now").is_file() and (supply / "voltage_now").is_file():
        return PowerFormula((supply / "current_now", supply / "voltage_now"), 1e-12)
    return None


def discover(root: Path = POWER_SUPPLY, avoid_cpus: set[int] | None = None) -> list[Found]:
    supplies = sorted(root.iterdir()) if root.is_dir() else []
    found: list[Found] = []
    for supply in supplies:
        try:
            if _read(supply / "type") != "Battery":
                continue
        except OSError:
            continue
        name = f"battery:{supply.name}"
        formula = _formula(supply)
        if formula is None:
            found.append(
                unavailable(
                    name, "unreadable: the battery reports neither power_now nor current_now and voltage_now"
                )
            )
            continue
        try:
            status = _read(supply / "status")
            values = [float(_read(f)) for f in formula.files]
        except PermissionError as exc:
            found.append(
                unavailable(name, f"no permission: {exc.filename} is not readable by the agent's user")
            )
            continue
        except (OSError, ValueError) as exc:
            found.append(unavailable(name, f"unreadable: {exc}"))
            continue
        if status != "Discharging":
            found.append(
                unavailable(
                    name,
                    f"on external power (status {status!r}): the battery does not see the device's draw; "
                    "unplug the charger to measure",
                )
            )
            continue
        watts = formula.watts(values)
        # one step of the integer readings (1 µW, or 1 µA at this voltage), held for one update
        step_w = 1e-6 if len(values) == 1 else 1e-6 * abs(values[1]) * 1e-6
        resolution_j = max(step_w, 1e-6 * watts) * UPDATE_PERIOD_S

        def opener(
            name: str = name, formula: PowerFormula = formula, resolution_j: float = resolution_j
        ) -> EnergyMeter:
            return SampledMeter(
                name, formula, SAMPLE_PERIOD_S, UPDATE_PERIOD_S, resolution_j, SCOPE, avoid_cpus
            )

        found.append(Found(MeterStatus(name, True, "", resolution_j, UPDATE_PERIOD_S, SCOPE), opener))
    return found or [unavailable("battery", f"absent: no battery under {root}")]
