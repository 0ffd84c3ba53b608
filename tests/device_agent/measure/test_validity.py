"""Run validity: facts read from a recorded /proc and /sys tree (the narrowest boundary), and the spoil rule
at its thresholds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_agent.contract.validity import ValidityRule
from device_agent.measure.validity import (
    Probe,
    apparatus,
    facts,
    read_processes,
    validity_window,
)


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


# user nice system idle iowait irq softirq steal guest guest_nice
STAT_BEFORE = "cpu  1000 0 500 8000 100 0 0 400 0 0\ncpu0 500 0 250 4000 50 0 0 200 0 0\nintr 1"
# +300 user, +100 system, +500 idle, +0 iowait, +100 steal: 1000 jiffies of which 100 stolen
STAT_AFTER = "cpu  1300 0 600 8500 100 0 0 500 0 0\ncpu0 650 0 300 4250 50 0 0 250 0 0\nintr 2"


def recorded_tree(tmp_path: Path) -> tuple[Path, Path]:
    proc, sys_cpu = tmp_path / "proc", tmp_path / "sys"
    write(proc, {"loadavg": "0.50 0.40 0.30 1/100 4242", "stat": STAT_BEFORE})
    write(
        sys_cpu,
        {
            "cpu0/cpufreq/scaling_cur_freq": "3000000",
            "cpu0/cpufreq/cpuinfo_max_freq": "3500000",
            "cpu0/thermal_throttle/core_throttle_count": "7",
            "cpu0/thermal_throttle/package_throttle_count": "1",
        },
    )
    return proc, sys_cpu


def test_facts_from_a_recorded_proc_and_sys(tmp_path: Path) -> None:
    proc, sys_cpu = recorded_tree(tmp_path)
    clock = Clock()
    me = os.getpid()
    # the worker itself and a sibling (a helper worker: same parent) are the apparatus, never "other" load
    table = {me: ("worker", 77, 5.0), 78: ("helper", 77, 1.0), 11: ("burner", 1, 10.0), 12: ("idle", 1, 3.0)}
    later = {me: ("worker", 77, 7.0), 78: ("helper", 77, 3.0), 11: ("burner", 1, 11.6), 12: ("idle", 1, 3.0)}
    others = iter([table, later])
    probe = Probe(proc, sys_cpu, processes=lambda: next(others), clock=clock)
    before = probe.snapshot([0])
    write(proc, {"loadavg": "2.50 1.00 0.50 3/100 4243", "stat": STAT_AFTER})
    write(
        sys_cpu,
        {"cpu0/cpufreq/scaling_cur_freq": "2100000", "cpu0/thermal_throttle/core_throttle_count": "9"},
    )
    clock.t += 2.0
    after = probe.snapshot([0])
    got = facts(before, after, "episodes", n_cpus=4)
    assert got["window"] == "episodes" and got["window_s"] == 2.0 and got["n_cpus"] == 4
    assert got["load_avg_before"] == [0.5, 0.4, 0.3] and got["load_avg_after"] == [2.5, 1.0, 0.5]
    assert got["cpu_steal_fraction"] == pytest.approx(100 / 1000)
    assert got["throttle_events"] == 2
    assert got["cpu_clocks"] == [{"cpu": 0, "khz_before": 3e6, "khz_after": 2.1e6, "max_khz": 3.5e6}]
    # 1.6 CPU seconds in 2 s: 80 % of one CPU; a process that used nothing is not listed
    assert got["busy_processes"] == [{"pid": 11, "name": "burner", "cpu_percent": pytest.approx(80.0)}]
    assert got["not_exposed"] == []
    assert got["involuntary_switches"] >= 0 and got["voluntary_switches"] >= 0

    reasons = ValidityRule().reasons(got)
    assert any(r.startswith("cpu steal 10.0 %") for r in reasons)
    assert any(r.startswith("thermal throttling: 2") for r in reasons)
    assert any(r.startswith("other busy processes: burner (11) 80 %") for r in reasons)
    assert any(r.startswith("cpu0 clock fell from 3000 to 2100 MHz") for r in reasons)
    assert not any(r.startswith("load average") for r in reasons)  # 0.5 on 4 CPUs before the window
    assert ValidityRule.never().reasons(got) == []


def test_what_the_os_does_not_expose_is_named_never_invented(tmp_path: Path) -> None:
    probe = Probe(tmp_path / "no-proc", tmp_path / "no-sys", processes=lambda: {}, clock=Clock())
    snap = probe.snapshot([0, 1])
    got = facts(snap, snap, "latency phase", n_cpus=2)
    assert set(got["not_exposed"]) == {
        "load average",
        "cpu steal",
        "cpu frequency",
        "thermal throttling",
        "other processes",
    }
    for key in ("load_avg_before", "cpu_steal_fraction", "throttle_events"):
        assert key not in got
    assert got["cpu_clocks"] == [{"cpu": 0}, {"cpu": 1}]
    assert ValidityRule().reasons(got) == []  # nothing exposed is held against the job


def base_facts(**kw) -> dict:
    out = {"window_s": 2.0, "n_cpus": 2, "busy_processes": [], "cpu_clocks": []}
    out.update(kw)
    return out


@pytest.mark.parametrize(
    ("fact", "at", "above", "reason"),
    [
        ("cpu_steal_fraction", 0.02, 0.0201, "cpu steal"),
        ("involuntary_switches", "100", "101", "worker preempted"),  # 50/s over 2 s; int64 comes as JSON text
        ("load_avg_before", [2.0, 0, 0], [2.01, 0, 0], "load average"),  # 1.0 per CPU on 2 CPUs
        ("throttle_events", "0", "1", "thermal throttling"),
    ],
)
def test_each_threshold_at_its_boundary(fact: str, at, above, reason: str) -> None:
    rule = ValidityRule()
    assert rule.reasons(base_facts(**{fact: at})) == []
    (why,) = rule.reasons(base_facts(**{fact: above}))
    assert why.startswith(reason)


def test_busy_process_and_clock_boundaries() -> None:
    rule = ValidityRule()
    at = base_facts(busy_processes=[{"pid": 3, "name": "x", "cpu_percent": 50.0}])
    assert rule.reasons(at) == []
    above = base_facts(busy_processes=[{"pid": 3, "name": "x", "cpu_percent": 50.1}])
    assert rule.reasons(above)[0].startswith("other busy processes: x (3)")
    assert rule.reasons(base_facts(cpu_clocks=[{"cpu": 1, "khz_before": 4e6, "khz_after": 3e6}])) == []
    (why,) = rule.reasons(base_facts(cpu_clocks=[{"cpu": 1, "khz_before": 4e6, "khz_after": 2.99e6}]))
    assert why.startswith("cpu1 clock fell")


def test_the_window_on_this_machine_reads_real_facts() -> None:
    """Whatever this OS exposes is read; the worker itself is never listed among the other busy processes."""
    with validity_window("episodes", [0]) as got:
        sum(i * i for i in range(200_000))
    assert got["window"] == "episodes" and got["window_s"] > 0
    assert all(b["pid"] != os.getpid() for b in got["busy_processes"])
    assert "involuntary_switches" in got


def test_apparatus_is_the_worker_its_ancestors_and_siblings() -> None:
    table = {
        1: ("init", 0, 0.0),
        10: ("host", 1, 0.0),
        20: ("agent", 10, 0.0),
        30: ("forkserver", 20, 0.0),
        40: ("worker", 30, 0.0),
        41: ("helper", 30, 0.0),
        50: ("stranger", 1, 0.0),
        60: ("agent-child", 20, 0.0),
    }
    assert apparatus(table, 40) == {1, 10, 20, 30, 40, 41}


def test_this_machines_process_table_holds_this_process() -> None:
    table = read_processes()
    assert os.getpid() in table and table[os.getpid()][1] == os.getppid() and table[os.getpid()][2] >= 0
