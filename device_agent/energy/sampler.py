"""Meters that report power, not energy (INA3221 rails, batteries), integrated in a separate process.

A power reading must be sampled all through a window to become joules. Doing that in the
worker would put a sampling thread next to the measuring loop (and under its GIL); instead a
small process (``python -m device_agent.energy.sampler_main``, stdlib only) reads the sysfs files
every ``period_s``, integrates power over time with the trapezoid rule, and answers each
request line on stdin with the energy so far, after taking a fresh sample. The worker asks
only at window boundaries, outside anything it times. The sampler runs during the idle window
too, so its own small draw is part of the idle power that net energy subtracts. It exits when
its stdin closes, so a killed worker leaves no sampler behind.

Power is the product of one or more sysfs files, each times a scale: an INA3221 rail is
``in1_input`` (mV) x ``curr1_input`` (mA) x 1e-6, a battery ``power_now`` (µW) x 1e-6, or
``current_now`` (µA) x ``voltage_now`` (µV) x 1e-12.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import device_agent
from device_agent.energy.meters.base import EnergyMeter, MeterError


@dataclass(frozen=True)
class PowerFormula:
    """Power in watts = scale x the product of the files' integer values (absolute: some gauges are signed)."""

    files: tuple[Path, ...]
    scale: float

    def watts(self, values: Sequence[float]) -> float:
        product = self.scale
        for v in values:
            product *= abs(v)
        return product


class PowerIntegrator:
    """Trapezoid-rule integral of power samples over time."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self.samples = 0
        self._last: tuple[float, float] | None = None

    def add(self, t_s: float, power_w: float) -> None:
        if self._last is not None:
            t0, p0 = self._last
            self.energy_j += 0.5 * (p0 + power_w) * (t_s - t0)
        self._last = (t_s, power_w)
        self.samples += 1


class SampledMeter(EnergyMeter):
    """An EnergyMeter over a sampler process: ``read_raw`` asks it for the energy so far."""

    def __init__(
        self,
        name: str,
        formula: PowerFormula | list[str],
        sample_period_s: float,
        update_period_s: float,
        resolution_j: float,
        scope: str,
        avoid_cpus: set[int] | None = None,
    ) -> None:
        super().__init__(name, resolution_j, update_period_s, scope, wrap=None, scale_j=1.0)
        self.proc = start_sampler(formula, sample_period_s)
        if avoid_cpus and hasattr(os, "sched_setaffinity"):
            others = set(range(os.cpu_count() or 1)) - avoid_cpus
            if others:  # keep the sampler off the cores the measuring loop is pinned to
                os.sched_setaffinity(self.proc.pid, others)

    def read_raw(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # for mypy
        try:
            self.proc.stdin.write("r\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            raise MeterError(f"the {self.name} sampler stopped: {exc}") from exc
        if not line:
            raise MeterError(f"the {self.name} sampler exited (code {self.proc.poll()})")
        return float(line.split()[0])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_sampler(formula: PowerFormula | list[str], period_s: float) -> subprocess.Popen:
    """The sampler process over sysfs files (a PowerFormula) or over a command that prints rails."""
    package_root = str(Path(device_agent.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, "-m", "device_agent.energy.sampler_main", "--period-s", repr(period_s)]
    if isinstance(formula, PowerFormula):
        args += ["--scale", repr(formula.scale)]
        for path in formula.files:
            args += ["--file", str(path)]
    else:
        args += ["--command", *formula]
    return subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
