"""When a job's timing is spoiled: a rule over the run-validity facts the agent sends with every job.

The agent reads the facts around its timed window (``device_agent.measure.validity``); the rule is plain data
over what was stored, so the host applies it, with thresholds it may change, long after the job ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValidityRule:
    """When a job's timing is spoiled: any one of these, over its timed window. The defaults are a starting
    point for a dedicated device (a shared or virtual machine trips them, and should: its timings drift).

    A threshold of None switches that check off; ``ValidityRule.never()`` switches them all off.
    """

    max_cpu_steal_fraction: float | None = 0.02
    """A hypervisor took more than 2 % of the CPU time from this VM while the job was timed."""
    max_involuntary_switches_per_s: float | None = 50.0
    """The worker was preempted more than 50 times a second (an idle device preempts it a few times a second)."""
    max_load_per_cpu: float | None = 1.0
    """The 1-minute load average before the window exceeded one runnable task per CPU: the device was busy."""
    max_other_process_cpu_percent: float | None = 50.0
    """Another process used more than half a CPU, on average, during the window."""
    max_throttle_events: int | None = 0
    """The CPUs the worker runs on were thermally throttled at all during the window."""
    min_clock_ratio: float | None = 0.75
    """A CPU's clock after the window fell below 75 % of what it was before (frequency scaling or throttling
    moved under the measurement). Checked only where both reads are exposed."""

    @classmethod
    def never(cls) -> ValidityRule:
        return cls(None, None, None, None, None, None)

    def reasons(self, facts: dict[str, Any]) -> list[str]:
        """Why a job with these facts is spoiled (empty: it is not). Facts not exposed are not held against it."""
        out: list[str] = []
        steal = facts.get("cpu_steal_fraction")
        if (
            self.max_cpu_steal_fraction is not None
            and steal is not None
            and steal > self.max_cpu_steal_fraction
        ):
            out.append(f"cpu steal {100 * steal:.1f} % > {100 * self.max_cpu_steal_fraction:.1f} %")
        switches, window_s = facts.get("involuntary_switches"), float(facts.get("window_s") or 0.0)
        if self.max_involuntary_switches_per_s is not None and switches is not None and window_s > 0:
            rate = int(switches) / window_s
            if rate > self.max_involuntary_switches_per_s:
                out.append(
                    f"worker preempted {rate:.0f}/s > {self.max_involuntary_switches_per_s:.0f}/s "
                    "(involuntary context switches)"
                )
        load, n_cpus = facts.get("load_avg_before"), int(facts.get("n_cpus") or 1)
        if self.max_load_per_cpu is not None and load:
            per_cpu = float(load[0]) / max(n_cpus, 1)
            if per_cpu > self.max_load_per_cpu:
                out.append(
                    f"load average {float(load[0]):.2f} on {n_cpus} CPUs > {self.max_load_per_cpu:.2f} per CPU"
                )
        if self.max_other_process_cpu_percent is not None:
            hogs = [
                b
                for b in facts.get("busy_processes", [])
                if float(b["cpu_percent"]) > self.max_other_process_cpu_percent
            ]
            if hogs:
                names = ", ".join(
                    f"{b['name']} ({int(b['pid'])}) {float(b['cpu_percent']):.0f} %" for b in hogs
                )
                out.append(f"other busy processes: {names}")
        throttled = facts.get("throttle_events")
        if (
            self.max_throttle_events is not None
            and throttled is not None
            and int(throttled) > self.max_throttle_events
        ):
            out.append(f"thermal throttling: {int(throttled)} throttle events")
        if self.min_clock_ratio is not None:
            for c in facts.get("cpu_clocks", []):
                before, after = c.get("khz_before"), c.get("khz_after")
                if before and after is not None and float(after) / float(before) < self.min_clock_ratio:
                    out.append(
                        f"cpu{int(c['cpu'])} clock fell from {float(before) / 1e3:.0f} to {float(after) / 1e3:.0f} MHz"
                    )
        return out
