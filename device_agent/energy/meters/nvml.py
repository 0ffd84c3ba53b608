"""NVIDIA GPUs through NVML (nvidia-ml-py): the board's total-energy counter, and per-process memory.

``nvmlDeviceGetTotalEnergyConsumption`` returns the GPU's energy in millijoules since the
driver was last reloaded (Volta and newer). The counter is refreshed every 20-100 ms
depending on the GPU, so windows shorter than about a second are flagged. It is 64-bit
and does not wrap; one going backwards means the driver was reloaded mid-job.

Everything NVML is reached through the ``nvml`` module argument (pynvml by default), so
tests pass a fake module with the same functions: that is the narrowest boundary.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from device_agent.energy.meters.base import EnergyMeter, Found, MeterError, MeterStatus, unavailable

RESOLUTION_J = 1e-3
"""The counter is in millijoules."""
UPDATE_PERIOD_S = 0.1
"""The slowest refresh NVIDIA GPUs are documented to have (20-100 ms)."""
SCOPE = "GPU board"


def _load(nvml: ModuleType | Any | None) -> Any | None:
    if nvml is not None:
        return nvml
    try:
        import pynvml  # optional: only where NVIDIA's driver and nvidia-ml-py are installed
    except ImportError:
        return None
    return pynvml


def _why(nvml: Any, exc: Exception) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", object()):
        return "not supported: this GPU has no total-energy counter (NVML needs Volta or newer)"
    if code == getattr(nvml, "NVML_ERROR_NO_PERMISSION", object()):
        return f"no permission: NVML refused to read the energy counter ({exc})"
    return f"unreadable: NVML error {exc}"


class NvmlMeter(EnergyMeter):
    """One GPU's counter. Holds an NVML initialisation (reference-counted by NVML) until closed."""

    def __init__(self, nvml: Any, index: int) -> None:
        super().__init__(f"nvml:gpu{index}", RESOLUTION_J, UPDATE_PERIOD_S, SCOPE, wrap=None, scale_j=1e-3)
        self.nvml = nvml
        nvml.nvmlInit()
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)

    def read_raw(self) -> float:
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.nvml.NVMLError as exc:
            raise MeterError(f"{self.name}: NVML error {exc}") from exc

    def close(self) -> None:
        self.nvml.nvmlShutdown()


def discover(nvml: ModuleType | Any | None = None) -> list[Found]:
    nvml = _load(nvml)
    if nvml is None:
        return [unavailable("nvml", "absent: nvidia-ml-py is not installed")]
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return [unavailable("nvml", f"absent: NVML cannot start ({exc}): no NVIDIA GPU or driver")]
    found: list[Found] = []
    try:
        count = nvml.nvmlDeviceGetCount()
        for index in range(count):
            name = f"nvml:gpu{index}"
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(index))
            except nvml.NVMLError as exc:
                found.append(unavailable(name, _why(nvml, exc)))
                continue

            def opener(index: int = index) -> EnergyMeter:
                return NvmlMeter(nvml, index)

            found.append(Found(MeterStatus(name, True, "", RESOLUTION_J, UPDATE_PERIOD_S, SCOPE), opener))
    except nvml.NVMLError as exc:
        found.append(unavailable("nvml", f"unreadable: NVML error {exc}"))
    finally:
        nvml.nvmlShutdown()
    return found or [unavailable("nvml", "absent: NVML sees no GPU")]


def process_device_memory_bytes(pid: int, nvml: ModuleType | Any | None = None) -> int | None:
    """GPU memory NVML attributes to process ``pid``, summed over GPUs; None where NVML cannot say.

    NVML reports it for compute processes on discrete GPUs; on Jetson (shared memory), inside
    containers with their own pid namespace, or without permission, it cannot, and nothing is reported.
    """
    nvml = _load(nvml)
    if nvml is None:
        return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None
    try:
        total, seen = 0, False
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = getattr(proc, "usedGpuMemory", None)
                if proc.pid == pid and used is not None:
                    total += int(used)
                    seen = True
        return total if seen else None
    except nvml.NVMLError:
        return None
    finally:
        nvml.nvmlShutdown()
