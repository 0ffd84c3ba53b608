"""The sampler process itself: ``python -m device_agent.energy.sampler_main`` (see energy.sampler).

Kept apart from ``energy.sampler`` so that running it as ``__main__`` never imports it twice.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from device_agent.energy.meters.pmic_text import total_power_w
from device_agent.energy.sampler import PowerFormula, PowerIntegrator


def _read_int(fd: int) -> float:
    return float(os.pread(fd, 64, 0))


def file_power(formula: PowerFormula) -> Callable[[], float]:
    fds = [os.open(f, os.O_RDONLY) for f in formula.files]
    return lambda: formula.watts([_read_int(fd) for fd in fds])


def command_power(command: list[str]) -> Callable[[], float]:
    """Power from a command's output (the Pi 5's ``vcgencmd pmic_read_adc``): the total of its rails."""

    def read() -> float:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10)
        return total_power_w(done.stdout)

    return read


def sample_loop(
    formula: PowerFormula | Callable[[], float], period_s: float, stdin_fd: int = 0, out=None
) -> None:
    """Sample until stdin closes; each line on stdin is answered with "<energy_j> <samples>"."""
    out = out or sys.stdout
    power = file_power(formula) if isinstance(formula, PowerFormula) else formula
    clock = time.perf_counter
    integ = PowerIntegrator()

    def sample() -> None:
        integ.add(clock(), power())

    sample()
    next_t = clock() + period_s
    pending = b""
    while True:
        ready, _, _ = select.select([stdin_fd], [], [], max(0.0, next_t - clock()))
        if ready:
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                return  # the worker is gone
            pending += chunk
            while b"\n" in pending:
                _, pending = pending.split(b"\n", 1)
                sample()
                out.write(f"{integ.energy_j!r} {integ.samples}\n")
                out.flush()
        else:
            sample()
            next_t += period_s
            if next_t < clock():
                next_t = clock() + period_s


def main(argv: list[str] | None = None, loop: Callable[..., None] = sample_loop) -> int:
    parser = argparse.ArgumentParser(description="integrate a sysfs power reading (used by drlc-agent)")
    parser.add_argument("--period-s", type=float, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--file", type=Path, action="append", default=[])
    parser.add_argument("--command", nargs="+", default=None, help="a command that prints PMIC rails")
    args = parser.parse_args(argv)
    if args.command:
        loop(command_power(args.command), args.period_s)
    else:
        loop(PowerFormula(tuple(args.file), args.scale), args.period_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
