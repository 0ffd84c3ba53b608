"""Which energy meters work on this device. Each meter (``device_agent.energy.meters``: joules over a window,
resolution, update period behind one ``EnergyMeter`` interface) has a ``discover()`` that says which of its
meters work here and, for the others, why not:

- ``nvml``: NVIDIA GPUs, NVML's total-energy counter;
- ``rapl``: x86 CPU package and DRAM through powercap sysfs (wrap-around handled);
- ``ina3221``: Jetson boards, the total input rail of the INA3221 monitor;
- ``battery``: a discharging battery through power_supply sysfs.

``probe_all()`` runs them all (GetDeviceInfo lists the statuses); the worker opens the
available ones through ``device_agent.energy.recorder.open_recorder``.
"""

from __future__ import annotations

from device_agent.energy.meters import battery, ina3221, nvml, pmic, rapl
from device_agent.energy.meters.base import Found, MeterStatus


def probe_all(avoid_cpus: set[int] | None = None) -> list[Found]:
    """Every meter kind, in the order a report lists them: GPU, CPU, board rail, battery."""
    return [
        *nvml.discover(),
        *rapl.discover(),
        *ina3221.discover(avoid_cpus=avoid_cpus),
        *pmic.discover(avoid_cpus=avoid_cpus),
        *battery.discover(avoid_cpus=avoid_cpus),
    ]


def statuses() -> list[MeterStatus]:
    return [f.status for f in probe_all()]
