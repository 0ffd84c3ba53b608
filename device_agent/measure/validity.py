"""Run validity: what can spoil a timing, read around a job's timed window, and the rule that calls it spoiled.

A latency figure is only worth comparing when nothing else was competing for the CPU while it was
taken. The measuring worker reads, just before and just after its timed window (the episodes, or the
latency phase), what the OS exposes about that:

- load averages (``/proc/loadavg``) and CPU steal time (the ``cpu`` line of ``/proc/stat``: a hypervisor
  running someone else on our CPU);
- the worker's own involuntary context switches (``getrusage``: it was preempted);
- the clock of each CPU the worker may run on (``/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq``)
  and the thermal throttle counters (``.../thermal_throttle/{core,package}_throttle_count``);
- the other processes that used the CPU over the window (``/proc/<pid>/stat``, or psutil), busiest first.

Whatever the OS does not expose is named in ``not_exposed`` and left unset, never invented. The reads
happen outside anything timed. The rule that calls a job spoiled (``ValidityRule``) is part of the contract
(``device_agent.contract.validity``): the host applies it, with thresholds it may change, to what was sent.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BUSY_PROCESSES_KEPT = 5
"""How many other busy processes a job reports (the busiest)."""


@dataclass(frozen=True)
class Snapshot:
    """What the OS says at one instant; None where it does not expose it."""

    t_s: float
    load_avg: tuple[float, float, float] | None
    cpu_jiffies: tuple[int, int] | None
    """(steal, total) of the ``cpu`` line of /proc/stat."""
    involuntary_switches: int | None
    voluntary_switches: int | None
    khz: dict[int, float | None]
    max_khz: dict[int, float | None]
    throttle: dict[int, int | None]
    """Per CPU: core_throttle_count + package_throttle_count."""
    cpu_s: dict[int, tuple[str, float]] = field(default_factory=dict)
    """Other processes: pid -> (name, user + system CPU seconds so far)."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, ValueError):
        return None


def read_load_avg(proc: Path) -> tuple[float, float, float] | None:
    text = _read(proc / "loadavg")
    if text is None:
        return None
    parts = text.split()
    try:
        return float(parts[0]), float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        return None


def read_cpu_jiffies(proc: Path) -> tuple[int, int] | None:
    """(steal, total) from the aggregate ``cpu`` line of /proc/stat; steal is its 8th value (Linux >= 2.6.11).
    Guest time (9th, 10th) is already counted in user and nice, so it is not added to the total."""
    text = _read(proc / "stat")
    if text is None:
        return None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            try:
                values = [int(v) for v in parts[1:9]]
            except ValueError:
                return None
            if len(values) < 8:
                return None
            return values[7], sum(values)
    return None


def _cpu_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_clocks(sys_cpu: Path, cpus: list[int]) -> tuple[dict[int, float | None], dict[int, float | None]]:
    cur, top = {}, {}
    for cpu in cpus:
        base = sys_cpu / f"cpu{cpu}" / "cpufreq"
        now = _cpu_int(base / "scaling_cur_freq")
        most = _cpu_int(base / "cpuinfo_max_freq")
        cur[cpu] = float(now) if now is not None else None
        top[cpu] = float(most) if most is not None else None
    return cur, top


def read_throttle(sys_cpu: Path, cpus: list[int]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for cpu in cpus:
        base = sys_cpu / f"cpu{cpu}" / "thermal_throttle"
        counts = [_cpu_int(base / f"{kind}_throttle_count") for kind in ("core", "package")]
        seen = [c for c in counts if c is not None]
        out[cpu] = sum(seen) if seen else None
    return out


ProcessTable = dict[int, tuple[str, int, float]]
"""pid -> (name, parent pid, user + system CPU seconds so far)."""


def read_processes(proc: Path = Path("/proc")) -> ProcessTable:
    """Every process's name, parent and CPU time, straight from ``/proc/<pid>/stat``: one file per process
    (5 ms for 100 processes here, where psutil took 12 ms; a later round's job lasts about 0.1 s). Elsewhere,
    through psutil."""
    table: ProcessTable = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        entries = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        entries = []
    for pid in entries:
        try:
            data = (proc / pid / "stat").read_bytes()
        except OSError:
            continue  # it exited meanwhile
        close = data.rfind(b")")
        fields = data[close + 2 :].split()
        try:
            name = data[data.find(b"(") + 1 : close].decode(errors="replace")
            table[int(pid)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        except (IndexError, ValueError):
            continue
    return table or _psutil_processes()


def _psutil_processes() -> ProcessTable:
    table: ProcessTable = {}
    for p in psutil.process_iter(["pid", "name", "ppid", "cpu_times"]):
        info = p.info
        if info.get("cpu_times") is not None:
            times = info["cpu_times"]
            table[info["pid"]] = (
                info.get("name") or "?",
                info.get("ppid") or 0,
                float(times.user + times.system),
            )
    return table


def apparatus(table: ProcessTable, me: int) -> set[int]:
    """The measuring apparatus, which is not "other" load: this worker, its ancestors (the worker server, the
    agent relaying the job's events, the host that spawned a local agent) and its siblings (a job's helper
    workers are forked from the same parent)."""
    mine = {me}
    pid = me
    while pid in table and table[pid][1] not in mine and table[pid][1] > 0:
        pid = table[pid][1]
        mine.add(pid)
    parent = table[me][1] if me in table else os.getppid()
    mine |= {p for p, (_, ppid, _) in table.items() if ppid == parent}
    return mine


@dataclass
class Probe:
    """Where the facts are read from; tests point ``proc`` and ``sys_cpu`` at a recorded tree."""

    proc: Path = Path("/proc")
    sys_cpu: Path = Path("/sys/devices/system/cpu")
    processes: Callable[[], ProcessTable] | None = None
    """Default: ``read_processes(proc)``."""
    clock: Callable[[], float] = time.monotonic

    def snapshot(self, cpus: list[int]) -> Snapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        table = self.processes() if self.processes is not None else read_processes(self.proc)
        mine = apparatus(table, os.getpid())
        khz, max_khz = read_clocks(self.sys_cpu, cpus)
        return Snapshot(
            t_s=self.clock(),
            load_avg=read_load_avg(self.proc),
            cpu_jiffies=read_cpu_jiffies(self.proc),
            involuntary_switches=int(usage.ru_nivcsw),
            voluntary_switches=int(usage.ru_nvcsw),
            khz=khz,
            max_khz=max_khz,
            throttle=read_throttle(self.sys_cpu, cpus),
            cpu_s={pid: (name, used) for pid, (name, _, used) in table.items() if pid not in mine},
        )


def facts(before: Snapshot, after: Snapshot, window: str, n_cpus: int) -> dict[str, Any]:
    """The window's facts, shaped like the wire's ``RunValidity`` (proto field names; absent: not exposed)."""
    window_s = max(after.t_s - before.t_s, 0.0)
    out: dict[str, Any] = {"window": window, "window_s": window_s, "n_cpus": n_cpus}
    missing: list[str] = []
    if before.load_avg and after.load_avg:
        out["load_avg_before"] = list(before.load_avg)
        out["load_avg_after"] = list(after.load_avg)
    else:
        missing.append("load average")
    if before.cpu_jiffies and after.cpu_jiffies:
        total = after.cpu_jiffies[1] - before.cpu_jiffies[1]
        out["cpu_steal_fraction"] = (
            (after.cpu_jiffies[0] - before.cpu_jiffies[0]) / total if total > 0 else 0.0
        )
    else:
        missing.append("cpu steal")
    if before.involuntary_switches is not None and after.involuntary_switches is not None:
        out["involuntary_switches"] = after.involuntary_switches - before.involuntary_switches
    if before.voluntary_switches is not None and after.voluntary_switches is not None:
        out["voluntary_switches"] = after.voluntary_switches - before.voluntary_switches
    out["cpu_clocks"] = _clocks(before, after)
    if not any("khz_before" in c for c in out["cpu_clocks"]):
        missing.append("cpu frequency")
    deltas = [
        after.throttle[c] - b  # type: ignore[operator]
        for c, b in before.throttle.items()
        if b is not None and after.throttle.get(c) is not None
    ]
    if deltas:
        out["throttle_events"] = sum(deltas)
    else:
        missing.append("thermal throttling")
    out["busy_processes"] = _busy(before, after, window_s)
    if not after.cpu_s:
        missing.append("other processes")
    out["not_exposed"] = missing
    return out


def _clocks(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    clocks = []
    for cpu in sorted(before.khz):
        clock: dict[str, Any] = {"cpu": cpu}
        for key, value in (
            ("khz_before", before.khz.get(cpu)),
            ("khz_after", after.khz.get(cpu)),
            ("max_khz", after.max_khz.get(cpu)),
        ):
            if value is not None:
                clock[key] = value
        clocks.append(clock)
    return clocks


def _busy(before: Snapshot, after: Snapshot, window_s: float) -> list[dict[str, Any]]:
    """Other processes' average CPU use over the window (percent of one CPU), busiest first."""
    busy = []
    if window_s > 0:
        for pid, (name, used_after) in after.cpu_s.items():
            if pid in before.cpu_s:
                percent = 100.0 * (used_after - before.cpu_s[pid][1]) / window_s
                if percent > 0:
                    busy.append({"pid": pid, "name": name, "cpu_percent": percent})
    busy.sort(key=lambda b: -b["cpu_percent"])
    return busy[:BUSY_PROCESSES_KEPT]


@contextmanager
def validity_window(window: str, cpus: list[int], probe: Probe | None = None) -> Iterator[dict[str, Any]]:
    """Read the facts before and after the block; the yielded dict is filled in when the block ends."""
    probe = probe or Probe()
    n_cpus = os.cpu_count() or 1
    watched = cpus or list(range(n_cpus))
    before = probe.snapshot(watched)
    result: dict[str, Any] = {}
    yield result
    result.update(facts(before, probe.snapshot(watched), window, n_cpus))
