"""The one interface every energy meter implements, and what a window of it is worth.

A meter is a cumulative energy counter: ``read()`` returns joules since the meter was
opened, with the time of the read. Energy over a window is the difference of two reads;
nothing else about a meter matters to the rest of the agent. Each implementation says
how fine its counter is (``resolution_j``) and how often the hardware refreshes it
(``update_period_s``), so a window too short for it can be flagged instead of reported.

Counters that wrap (RAPL) are unwrapped here, on every read: as long as a meter is read
more often than its counter wraps, any window is exact. A window can be longer than a wrap (a
32-bit RAPL counter wraps after 4295 J: 21 s at 200 W), so a wrapping meter says how often it must
be read at the most (``max_read_interval_s``, from its range and a generous MAX_POWER_W) and the
recorder's ``WrapGuard`` reads it that often in the background, accumulating every wrap.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from device_agent.contract.errors import AgentError

MIN_UPDATE_PERIODS = 10
"""A window must span at least this many meter updates to count as a measurement. The counter can be
stale by up to one update period at each end, so 10 periods bound that error to about 20 % in the worst
case and far less on average; shorter windows are flagged ``below_resolution``."""
MIN_RESOLUTION_STEPS = 10
"""...and its energy must be at least this many counter steps (a counter that did not move is no 0 J)."""


MAX_POWER_W = 1000.0
"""A generous bound on what one wrapping counter's domain can draw (RAPL packages draw at most a few hundred W):
a counter of range R joules cannot wrap faster than R / MAX_POWER_W seconds."""
READS_PER_WRAP = 2
"""A wrapping counter is read at least this often per fastest possible wrap."""


class MeterError(AgentError):
    """A meter stopped making sense mid-job (a counter went backwards, a file vanished)."""


@dataclass(frozen=True)
class MeterStatus:
    """Whether one meter works on this device, and if not, why (what ``GetDeviceInfo`` lists)."""

    name: str
    """e.g. "rapl:package-0", "nvml:gpu0", "ina3221:VDD_IN", "battery:BAT0"; the bare kind when absent."""
    available: bool
    reason: str = ""
    """Empty when available; else starts with the kind of problem: "absent:", "no permission:", ..."""
    resolution_j: float = 0.0
    update_period_s: float = 0.0
    scope: str = ""
    """What the meter covers: "GPU board", "CPU package", "DRAM", "module input rail", "whole device"."""


@dataclass(frozen=True)
class Sample:
    t_s: float
    """perf_counter() right after the read."""
    energy_j: float
    """Unwrapped joules since the meter was opened."""


def counter_delta(before: float, after: float, wrap: float | None) -> float:
    """How far a counter moved between two reads, across at most one wrap-around.

    A counter that wraps restarts at 0 after ``wrap`` (RAPL's ``max_energy_range_uj``):
    from ``before`` it ran up to ``wrap``, then from 0 to ``after``.
    """
    if after >= before:
        return after - before
    if wrap is None:
        raise MeterError(f"the counter went backwards ({before} -> {after}) and this meter never wraps")
    return wrap - before + after


class EnergyMeter(ABC):
    """A cumulative energy counter. Subclasses read the hardware; this class unwraps and timestamps.

    :param name: e.g. "rapl:package-0"
    :param resolution_j: the counter's step
    :param update_period_s: how often the hardware refreshes the counter
    :param scope: what the meter covers
    :param wrap: the raw counter's range in the units ``read_raw`` returns (None: it never wraps)
    :param scale_j: joules per raw unit (RAPL: 1e-6, NVML: 1e-3)
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        name: str,
        resolution_j: float,
        update_period_s: float,
        scope: str,
        wrap: float | None = None,
        scale_j: float = 1.0,
    ) -> None:
        self.name = name
        self.resolution_j = resolution_j
        self.update_period_s = update_period_s
        self.scope = scope
        self.wrap = wrap
        self.scale_j = scale_j
        self._last_raw: float | None = None
        self._total_raw = 0.0
        self._lock = threading.Lock()  # the WrapGuard thread reads too

    @property
    def max_read_interval_s(self) -> float | None:
        """The longest this meter may go unread before a wrap could be missed; None: its counter never wraps."""
        if self.wrap is None:
            return None
        return self.wrap * self.scale_j / MAX_POWER_W / READS_PER_WRAP

    @abstractmethod
    def read_raw(self) -> float:
        """The hardware counter as it is, in its own units (may wrap)."""

    def read(self) -> Sample:
        with self._lock:
            raw = self.read_raw()
            t = self.clock()
            if self._last_raw is not None:
                self._total_raw += counter_delta(self._last_raw, raw, self.wrap)
            self._last_raw = raw
            return Sample(t, self._total_raw * self.scale_j)

    def status(self) -> MeterStatus:
        return MeterStatus(self.name, True, "", self.resolution_j, self.update_period_s, self.scope)

    def close(self) -> None:  # noqa: B027 - most meters hold nothing to release
        """Release whatever the meter holds (NVML, a sampler process)."""


@dataclass(frozen=True)
class Found:
    """One meter a probe looked for: its status, and how to open it when it is available."""

    status: MeterStatus
    open: Callable[[], EnergyMeter] | None = None


def unavailable(name: str, reason: str) -> Found:
    return Found(MeterStatus(name, False, reason))
