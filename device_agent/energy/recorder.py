"""Windows of energy around a job's phases: the idle window, each episode, the inference-only loop.

The worker marks (reads every meter) only at phase boundaries, never inside a timed region.
A window's figure is the counter difference (gross), minus the idle power times the window
length (net) when an idle window was measured, divided by what the window covered (episodes
or inference calls). A window the meter cannot resolve is flagged and carries no net figure:
it is never reported as 0 J.

Meters whose counter wraps (RAPL) are also read in the background by a ``WrapGuard``, as often as
their range requires (``EnergyMeter.max_read_interval_s``), so a window of any length counts every
wrap. The guard's read (a few microseconds, one sysfs file) happens at most every few seconds on a
32-bit counter and every couple of minutes on a 64-bit-range one; it never waits on the timed loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from device_agent.energy.probe import probe_all
from device_agent.energy.meters.base import (
    MIN_RESOLUTION_STEPS,
    MIN_UPDATE_PERIODS,
    EnergyMeter,
    MeterError,
    MeterStatus,
    Sample,
)

log = logging.getLogger(__name__)

Marks = dict[str, Sample]


@dataclass(frozen=True)
class EnergyFigure:
    """Joules one meter counted over one window (see ``figure``); a job's results carry them."""

    meter: str
    gross_j: float
    window_s: float
    below_resolution: bool
    net_j: float | None = None
    idle_power_w: float | None = None
    n_items: int = 0
    net_j_per_item: float | None = None


def figure(
    meter: EnergyMeter | MeterStatus,
    start: Sample,
    end: Sample,
    n_items: int = 0,
    idle_power_w: float | None = None,
) -> EnergyFigure:
    """Gross, net and per-item joules of one meter over one window, flagged when too short for it."""
    gross = end.energy_j - start.energy_j
    window = end.t_s - start.t_s
    below = (
        window < MIN_UPDATE_PERIODS * meter.update_period_s
        or gross < MIN_RESOLUTION_STEPS * meter.resolution_j
    )
    net = None if below or idle_power_w is None else gross - idle_power_w * window
    per_item = net / n_items if net is not None and n_items > 0 else None
    return EnergyFigure(
        meter=meter.name,
        gross_j=gross,
        window_s=window,
        below_resolution=below,
        net_j=net,
        idle_power_w=idle_power_w if net is not None else None,
        n_items=n_items,
        net_j_per_item=per_item,
    )


class EnergyRecorder:
    """The meters of one job, read at phase boundaries.

    :param meters: open meters (the available ones)
    :param statuses: every meter looked for, available or not (reported with the job)
    :param sleep: how the idle window waits (tests pass a fake)
    """

    def __init__(
        self,
        meters: list[EnergyMeter],
        statuses: list[MeterStatus],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.meters = list(meters)
        self._statuses = {s.name: s for s in statuses}
        self.sleep = sleep
        self.idle_power_w: dict[str, float] = {}

    @property
    def statuses(self) -> list[MeterStatus]:
        return list(self._statuses.values())

    @property
    def min_window_s(self) -> float:
        """The shortest window every meter can resolve (10 of the slowest meter's updates)."""
        return max((MIN_UPDATE_PERIODS * m.update_period_s for m in self.meters), default=0.0)

    def mark(self) -> Marks:
        """Read every meter; one that fails is dropped for the rest of the job, with the reason."""
        marks: Marks = {}
        for meter in list(self.meters):
            try:
                marks[meter.name] = meter.read()
            except (MeterError, OSError, ValueError) as exc:
                log.warning("energy meter %s failed mid-job: %s", meter.name, exc)
                self.meters.remove(meter)
                old = self._statuses.get(meter.name)
                scope = old.scope if old else meter.scope
                self._statuses[meter.name] = MeterStatus(
                    meter.name, False, f"failed mid-job: {exc}", scope=scope
                )
                meter.close()
        return marks

    def figures(self, start: Marks, end: Marks, n_items: int, net: bool = True) -> list[EnergyFigure]:
        out = []
        for meter in self.meters:
            if meter.name in start and meter.name in end:
                idle = self.idle_power_w.get(meter.name) if net else None
                out.append(figure(meter, start[meter.name], end[meter.name], n_items, idle))
        return out

    def measure_idle(self, seconds: float) -> list[EnergyFigure]:
        """Sit still for ``seconds`` (at least what every meter can resolve); remember each meter's idle power."""
        start = self.mark()
        self.sleep(max(seconds, self.min_window_s * 1.05))
        end = self.mark()
        idle = self.figures(start, end, n_items=0, net=False)
        self.idle_power_w = {f.meter: f.gross_j / f.window_s for f in idle if not f.below_resolution}
        return idle

    def close(self) -> None:
        for meter in self.meters:
            meter.close()
        self.meters = []


class WrapGuard:
    """Reads each wrapping meter at least every ``max_read_interval_s`` so no wrap falls between two reads.

    ``poll()`` reads the meters that are due (tests call it directly with a fake clock); ``start()`` runs it on
    a daemon thread until ``stop()``.
    """

    def __init__(self, recorder: EnergyRecorder, clock: Callable[[], float] = time.monotonic) -> None:
        self.recorder = recorder
        self.clock = clock
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def intervals(self) -> dict[str, float]:
        return {
            m.name: interval for m in self.recorder.meters if (interval := m.max_read_interval_s) is not None
        }

    def poll(self) -> float | None:
        """Read every wrapping meter that is due; return the seconds until the next one is (None: none wraps)."""
        now = self.clock()
        intervals = self.intervals()
        for meter in list(self.recorder.meters):
            interval = intervals.get(meter.name)
            if interval is None:
                continue
            if now >= self._due.get(meter.name, now):
                try:
                    meter.read()
                except (MeterError, OSError, ValueError):
                    pass  # the next mark() reports it and drops the meter
                self._due[meter.name] = now + interval
        return min((self._due[n] - now for n in intervals if n in self._due), default=None)

    def start(self) -> None:
        if not self.intervals():
            return
        self._thread = threading.Thread(target=self._run, name="drlc-energy-wrap-guard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll()
            if wait is None:
                return
            self._stop.wait(max(wait, 0.01))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextmanager
def open_recorder(avoid_cpus: set[int] | None = None, enabled: bool = True) -> Iterator[EnergyRecorder]:
    """Every meter this device has, opened for one job, and closed after it (samplers stopped).

    :param enabled: False: open nothing (a latency-only job measures no energy)
    """
    if not enabled:
        yield EnergyRecorder([], [])
        return
    found = probe_all(avoid_cpus)
    statuses, meters = [], []
    for f in found:
        if f.open is None:
            statuses.append(f.status)
            continue
        try:
            meters.append(f.open())
            statuses.append(f.status)
        except Exception as exc:  # a meter that cannot open is reported, never fatal to the job
            statuses.append(MeterStatus(f.status.name, False, f"cannot open: {exc}", scope=f.status.scope))
    recorder = EnergyRecorder(meters, statuses)
    guard = WrapGuard(recorder)
    try:
        if recorder.meters:
            recorder.mark()  # a first read, so the guard's reads accumulate from here
        guard.start()
        yield recorder
    finally:
        guard.stop()
        recorder.close()
