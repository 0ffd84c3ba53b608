"""RAPL through the powercap sysfs tree: CPU package and DRAM energy on x86 (Intel, and AMD Zen).

Layout (Documentation/power/powercap/powercap.rst): ``/sys/class/powercap/intel-rapl:N`` is
package N, ``intel-rapl:N:M`` its sub-zones; each has ``name`` ("package-0", "dram", "core",
"uncore"), ``energy_uj`` (a counter in µJ) and ``max_energy_range_uj`` (where it wraps back to
0). drlc reads the package and DRAM zones; core and uncore are parts of the package and are
not added to it.

Since Linux 5.10 (CVE-2020-8694, "PLATYPUS") ``energy_uj`` is readable by root only; the
agent reports that as "no permission" and docs/targets/ shows the udev rule that grants
read access to the agent's group.
"""

from __future__ import annotations

import re
from pathlib import Path

from device_agent.energy.meters.base import EnergyMeter, Found, MeterStatus, unavailable

POWERCAP = Path("/sys/class/powercap")
ZONE_RE = re.compile(r"^intel-rapl:\d+(:\d+)?$")
RESOLUTION_J = 2.0**-14
"""The energy status unit is read from an MSR the agent cannot read; 2^-14 J (61 µJ) is the coarsest
common one (Intel client and server packages; Haswell-EP DRAM and AMD use 15.3 µJ), so it is safe."""
UPDATE_PERIOD_S = 1e-3
"""The RAPL energy status registers are updated about every millisecond."""


class RaplMeter(EnergyMeter):
    def __init__(self, name: str, scope: str, energy_path: Path, wrap_uj: float) -> None:
        super().__init__(name, RESOLUTION_J, UPDATE_PERIOD_S, scope, wrap=wrap_uj, scale_j=1e-6)
        self.energy_path = energy_path

    def read_raw(self) -> float:
        return float(self.energy_path.read_text())


def _zone_name(zone: Path) -> str:
    return (zone / "name").read_text().strip()


def _meter_name(zone: Path, name: str) -> str:
    """ "rapl:package-0" for a package, "rapl:package-0:dram" for its DRAM sub-zone."""
    if name.startswith("package"):
        return f"rapl:{name}"
    parent = zone.parent / zone.name.rsplit(":", 1)[0]
    try:
        return f"rapl:{_zone_name(parent)}:{name}"
    except OSError:
        return f"rapl:{parent.name}:{name}"


def discover(root: Path = POWERCAP) -> list[Found]:
    zones = sorted(p for p in root.glob("intel-rapl:*") if ZONE_RE.match(p.name)) if root.is_dir() else []
    found: list[Found] = []
    for zone in zones:
        try:
            name = _zone_name(zone)
        except OSError:
            continue
        if not (name.startswith("package") or name == "dram"):
            continue  # core / uncore / psys: parts of a package, or the platform; never summed with it
        meter_name = _meter_name(zone, name)
        scope = "CPU package" if name.startswith("package") else "DRAM"
        try:
            wrap_uj = float((zone / "max_energy_range_uj").read_text())
            float((zone / "energy_uj").read_text())
        except PermissionError:
            found.append(
                unavailable(
                    meter_name,
                    f"no permission: {zone / 'energy_uj'} is readable by root only (Linux >= 5.10, CVE-2020-8694); "
                    "grant the agent's group read access with a udev rule (docs/targets/README.md)",
                )
            )
            continue
        except (OSError, ValueError) as exc:
            found.append(unavailable(meter_name, f"unreadable: {exc}"))
            continue

        def opener(
            meter_name: str = meter_name, scope: str = scope, zone: Path = zone, wrap_uj: float = wrap_uj
        ) -> EnergyMeter:
            return RaplMeter(meter_name, scope, zone / "energy_uj", wrap_uj)

        found.append(Found(MeterStatus(meter_name, True, "", RESOLUTION_J, UPDATE_PERIOD_S, scope), opener))
    if not found:
        found.append(
            unavailable(
                "rapl",
                f"absent: no RAPL package zones under {root} (not an x86 CPU with RAPL, the intel_rapl "
                "driver is not loaded, or a virtual machine that hides it)",
            )
        )
    return found
