"""Each energy meter against a fake sysfs tree or a fake NVML module, with numbers checked by hand."""

from __future__ import annotations

import math
import pathlib
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from device_agent.energy.meters import battery, ina3221, nvml, rapl
from device_agent.energy.meters.base import EnergyMeter, MeterError, counter_delta
from device_agent.energy.recorder import EnergyRecorder, figure
from device_agent.energy.sampler import PowerFormula, PowerIntegrator


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def deny_reading(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make these files unreadable the way a root-only sysfs file is (tests may run as root)."""
    original = pathlib.Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if self.name in names:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)


# ---------------------------------------------------------------- RAPL (powercap sysfs)
MAX_UJ = 262_143_328_850  # a real package's max_energy_range_uj


def rapl_tree(tmp_path: Path, package_uj: int, dram_uj: int = 0) -> Path:
    root = tmp_path / "powercap"
    write_tree(
        root,
        {
            "intel-rapl:0/name": "package-0",
            "intel-rapl:0/energy_uj": str(package_uj),
            "intel-rapl:0/max_energy_range_uj": str(MAX_UJ),
            "intel-rapl:0:0/name": "dram",
            "intel-rapl:0:0/energy_uj": str(dram_uj),
            "intel-rapl:0:0/max_energy_range_uj": str(65_712_999_613),
            "intel-rapl:0:1/name": "core",  # part of the package: never read, never added
            "intel-rapl:0:1/energy_uj": "5",
            "intel-rapl:0:1/max_energy_range_uj": str(MAX_UJ),
            "intel-rapl-mmio:0/name": "package-0",  # another control type: ignored
        },
    )
    return root


def test_counter_delta_across_one_wrap() -> None:
    assert counter_delta(10.0, 25.0, 100.0) == 15.0
    # 90 -> (wrap at 100) -> 0 -> 5: 10 to the top, then 5
    assert counter_delta(90.0, 5.0, 100.0) == 15.0
    with pytest.raises(MeterError, match="went backwards"):
        counter_delta(90.0, 5.0, None)


def test_rapl_finds_package_and_dram_and_unwraps(tmp_path: Path) -> None:
    root = rapl_tree(tmp_path, package_uj=MAX_UJ - 1_000_000)
    found = rapl.discover(root)
    assert [f.status.name for f in found] == ["rapl:package-0", "rapl:package-0:dram"]
    assert [f.status.scope for f in found] == ["CPU package", "DRAM"]
    assert all(f.status.available and f.open for f in found)
    meter = found[0].open()
    clock = FakeClock()
    meter.clock = clock
    first = meter.read()
    # the counter wraps: 1 000 000 µJ up to max_energy_range_uj, then 0 -> 2 000 000 µJ: 3 J in all
    (root / "intel-rapl:0/energy_uj").write_text("2000000\n")
    clock.sleep(1.5)
    second = meter.read()
    assert second.energy_j - first.energy_j == pytest.approx(3.0)
    assert second.t_s - first.t_s == pytest.approx(1.5)
    # and keeps counting after the wrap: +0.5 J
    (root / "intel-rapl:0/energy_uj").write_text("2500000\n")
    assert meter.read().energy_j - first.energy_j == pytest.approx(3.5)


def test_rapl_without_permission_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = rapl_tree(tmp_path, package_uj=1)
    deny_reading(monkeypatch, "energy_uj")
    found = rapl.discover(root)
    assert [f.status.available for f in found] == [False, False]
    assert all(f.open is None for f in found)
    assert found[0].status.reason.startswith("no permission:") and "root only" in found[0].status.reason


def test_rapl_absent(tmp_path: Path) -> None:
    (found,) = rapl.discover(tmp_path / "no-powercap")
    assert found.status.name == "rapl" and not found.status.available
    assert found.status.reason.startswith("absent:")


# ---------------------------------------------------------------- NVML (fake pynvml functions)
class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {
            1: "Uninitialized",
            3: "Not Supported",
            4: "Insufficient Permissions",
            12: "Library Not Found",
        }[self.value]


def fake_nvml(energy_mj: list[int], supported: list[bool], init_error: int | None = None, processes=None):
    """The pynvml functions the meter calls, over GPUs whose counters are ``energy_mj`` (mutable)."""
    state = {"inits": 0}

    def init() -> None:
        if init_error is not None:
            raise FakeNVMLError(init_error)
        state["inits"] += 1

    def shutdown() -> None:
        state["inits"] -= 1

    def energy(handle: int) -> int:
        if state["inits"] <= 0:
            raise FakeNVMLError(1)
        if not supported[handle]:
            raise FakeNVMLError(3)
        return energy_mj[handle]

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        NVML_ERROR_NOT_SUPPORTED=3,
        NVML_ERROR_NO_PERMISSION=4,
        nvmlInit=init,
        nvmlShutdown=shutdown,
        nvmlDeviceGetCount=lambda: len(energy_mj),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetComputeRunningProcesses=lambda h: (processes or {}).get(h, []),
        state=state,
    )


def test_nvml_reads_the_total_energy_counter_in_millijoules() -> None:
    counters = [1_000_000, 7]
    fake = fake_nvml(counters, supported=[True, False])
    found = nvml.discover(fake)
    assert [(f.status.name, f.status.available) for f in found] == [("nvml:gpu0", True), ("nvml:gpu1", False)]
    assert found[1].status.reason.startswith("not supported:") and "Volta" in found[1].status.reason
    assert fake.state["inits"] == 0  # probing leaves NVML as it found it
    meter = found[0].open()
    clock = FakeClock()
    meter.clock = clock
    start = meter.read()
    counters[0] += 12_500  # 12 500 mJ
    clock.sleep(2.0)
    end = meter.read()
    assert end.energy_j - start.energy_j == pytest.approx(12.5)
    meter.close()
    assert fake.state["inits"] == 0


def test_nvml_absent_without_a_driver_and_without_the_package() -> None:
    (found,) = nvml.discover(fake_nvml([], [], init_error=12))
    assert found.status.name == "nvml" and found.status.reason.startswith("absent:")
    assert "Library Not Found" in found.status.reason


def test_nvml_counter_going_backwards_is_an_error_not_a_negative_reading() -> None:
    counters = [5_000]
    meter = nvml.discover(fake_nvml(counters, [True]))[0].open()
    meter.read()
    counters[0] = 10  # the driver was reloaded mid-job
    with pytest.raises(MeterError):
        meter.read()
    meter.nvml.nvmlShutdown()  # NVML gone mid-job: a MeterError too, which the recorder turns into a reason
    with pytest.raises(MeterError, match="Uninitialized"):
        meter.read()


def test_process_device_memory_from_nvml() -> None:
    procs = {0: [SimpleNamespace(pid=42, usedGpuMemory=300 << 20), SimpleNamespace(pid=7, usedGpuMemory=1)]}
    procs[1] = [SimpleNamespace(pid=42, usedGpuMemory=None)]  # not reported on this GPU
    fake = fake_nvml([0, 0], [True, True], processes=procs)
    assert nvml.process_device_memory_bytes(42, fake) == 300 << 20
    assert nvml.process_device_memory_bytes(43, fake) is None
    assert nvml.process_device_memory_bytes(42, fake_nvml([], [], init_error=12)) is None


# ---------------------------------------------------------------- resolution flagging and idle subtraction
class ScriptedMeter(EnergyMeter):
    """A counter whose raw values the test sets; 1 µJ units, 1 ms updates, like RAPL."""

    def __init__(self, clock: FakeClock, wrap: float | None = None) -> None:
        super().__init__("fake:pkg", 61e-6, 1e-3, "CPU package", wrap=wrap, scale_j=1e-6)
        self.raw = 0.0
        self.clock = clock

    def read_raw(self) -> float:
        return self.raw


def test_resolution_flagging_never_reports_zero_joules() -> None:
    meter = nvml.NvmlMeter.__new__(nvml.NvmlMeter)
    EnergyMeter.__init__(meter, "nvml:gpu0", 1e-3, 0.1, "GPU board", scale_j=1e-3)
    from device_agent.energy.meters.base import Sample

    # 0.5 s is 5 NVML updates (< 10): flagged, no net, no per-item figure, whatever the counter says
    short = figure(meter, Sample(0.0, 10.0), Sample(0.5, 60.0), n_items=1, idle_power_w=20.0)
    assert short.below_resolution and short.net_j is None and short.net_j_per_item is None
    assert short.gross_j == pytest.approx(50.0)  # the raw difference, kept for the record only
    # long enough, but the counter did not move: 0 J is below resolution, not a measurement of 0 J
    still = figure(meter, Sample(0.0, 10.0), Sample(2.0, 10.0), n_items=1, idle_power_w=0.0)
    assert still.below_resolution and still.net_j is None
    # 2 s (20 updates), 100 J, idle 20 W: net = 100 - 20 x 2 = 60 J, over 4 episodes 15 J each
    ok = figure(meter, Sample(0.0, 10.0), Sample(2.0, 110.0), n_items=4, idle_power_w=20.0)
    assert not ok.below_resolution
    assert (ok.gross_j, ok.net_j, ok.net_j_per_item, ok.idle_power_w) == pytest.approx(
        (100.0, 60.0, 15.0, 20.0)
    )


def test_idle_subtraction_across_a_wrap_checked_by_hand() -> None:
    clock = FakeClock()
    meter = ScriptedMeter(clock, wrap=1_000_000.0)  # a counter in µJ that wraps at 1 J
    recorder = EnergyRecorder([meter], [meter.status()], sleep=clock.sleep)

    # idle: the counter moves from 0.4 J to the wrap and on to 0 while the recorder sleeps 0.3 s:
    # 0.6 J in 0.3 s = 2 W
    def sleep_and_count(seconds: float) -> None:
        clock.sleep(seconds)
        meter.raw = (meter.raw + 2.0 * seconds * 1e6) % 1_000_000.0

    meter.raw = 400_000.0
    recorder.sleep = sleep_and_count
    (idle,) = recorder.measure_idle(0.3)
    assert idle.window_s == pytest.approx(0.3) and idle.gross_j == pytest.approx(0.6)
    assert idle.n_items == 0 and idle.net_j is None
    assert recorder.idle_power_w["fake:pkg"] == pytest.approx(2.0)

    # 3 episodes in 0.4 s, the counter going 0.7 J -> wrap -> 0.65 J: 0.3 + 0.65 = 0.95 J gross;
    # net = 0.95 J - 2 W x 0.4 s = 0.15 J, so 0.05 J per episode
    meter.raw = 700_000.0
    before = recorder.mark()
    clock.sleep(0.4)
    meter.raw = 650_000.0
    after = recorder.mark()
    (episodes,) = recorder.figures(before, after, n_items=3)
    assert not episodes.below_resolution
    assert episodes.gross_j == pytest.approx(0.95)
    assert episodes.idle_power_w == pytest.approx(2.0)
    assert episodes.net_j == pytest.approx(0.15)
    assert episodes.net_j_per_item == pytest.approx(0.05)


def test_idle_window_is_stretched_to_ten_meter_updates() -> None:
    clock = FakeClock()
    meter = ScriptedMeter(clock)
    meter.update_period_s = 0.5  # a slow meter: 10 updates = 5 s
    recorder = EnergyRecorder([meter], [meter.status()], sleep=clock.sleep)
    (idle,) = recorder.measure_idle(1.0)
    assert idle.window_s >= 5.0
    assert idle.below_resolution  # the scripted counter never moved: not 0 W, no idle figure
    assert recorder.idle_power_w == {}


def test_a_meter_failing_mid_job_is_dropped_with_its_reason() -> None:
    clock = FakeClock()
    meter = ScriptedMeter(clock)
    recorder = EnergyRecorder([meter], [meter.status()], sleep=clock.sleep)
    meter.raw = 100.0
    recorder.mark()
    meter.raw = 50.0  # a non-wrapping counter going backwards
    assert recorder.mark() == {}
    assert recorder.meters == []
    (status,) = recorder.statuses
    assert not status.available and status.reason.startswith("failed mid-job:")


# ---------------------------------------------------------------- power meters: INA3221 rails and batteries
ORIN_NANO = {
    "1-0040/hwmon/hwmon1/in1_label": "VDD_IN",
    "1-0040/hwmon/hwmon1/in1_input": "5000",  # mV
    "1-0040/hwmon/hwmon1/curr1_input": "1200",  # mA: 6 W
    "1-0040/hwmon/hwmon1/in2_label": "VDD_CPU_GPU_CV",
    "1-0040/hwmon/hwmon1/in2_input": "5000",
    "1-0040/hwmon/hwmon1/curr2_input": "400",
    "1-0040/hwmon/hwmon1/in3_label": "VDD_SOC",
    "1-0040/hwmon/hwmon1/in3_input": "5000",
    "1-0040/hwmon/hwmon1/curr3_input": "300",
    "1-0040/hwmon/hwmon1/update_interval": "20",  # ms
}
AGX_ORIN = {
    "1-0040/hwmon/hwmon1/in1_label": "VDD_GPU_SOC",
    "1-0040/hwmon/hwmon1/in2_label": "VDD_CPU_CV",
    "1-0040/hwmon/hwmon1/in3_label": "VIN_SYS_5V0",
    "1-0041/hwmon/hwmon2/in2_label": "VDDQ_VDD2_1V8AO",
}


def test_ina3221_uses_the_total_input_rail_only(tmp_path: Path) -> None:
    write_tree(tmp_path / "ina3221", ORIN_NANO)
    (found,) = ina3221.discover(tmp_path / "ina3221")
    status = found.status
    assert status.name == "ina3221:VDD_IN" and status.available and status.scope == "module input rail"
    assert status.update_period_s == pytest.approx(0.02)
    # one mA at 5 V plus one mV at 1.2 A, held 20 ms: (5e-3 + 1.2e-3) W x 0.02 s
    assert status.resolution_j == pytest.approx(6.2e-3 * 0.02)


def test_ina3221_without_a_total_rail_does_not_add_sub_rails(tmp_path: Path) -> None:
    write_tree(tmp_path / "ina3221", AGX_ORIN)
    (found,) = ina3221.discover(tmp_path / "ina3221")
    assert not found.status.available and found.open is None
    assert found.status.reason.startswith("no total input rail:")
    assert "VDD_CPU_CV" in found.status.reason and "does not add" in found.status.reason


def test_ina3221_absent_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (absent,) = ina3221.discover(tmp_path / "nothing")
    assert absent.status.reason.startswith("absent:")
    write_tree(tmp_path / "ina3221", ORIN_NANO)
    deny_reading(monkeypatch, "curr1_input")
    (denied,) = ina3221.discover(tmp_path / "ina3221")
    assert denied.status.name == "ina3221:VDD_IN" and denied.status.reason.startswith("no permission:")


def test_ina3221_sampler_integrates_rail_power(tmp_path: Path) -> None:
    """The real sampler process over the fake rail: 5 V x 1.2 A = 6 W for about 0.3 s."""
    write_tree(tmp_path / "ina3221", ORIN_NANO)
    (found,) = ina3221.discover(tmp_path / "ina3221")
    meter = found.open()
    clock = time.perf_counter  # CLOCK_MONOTONIC: the sampler process's clock too
    try:
        t0 = clock()
        start = meter.read()
        t1 = clock()
        time.sleep(0.3)  # any length will do: the bounds below hold for every window
        t2 = clock()
        end = meter.read()
        t3 = clock()
    finally:
        meter.close()
    assert meter.proc.returncode == 0  # closing stdin ends the sampler
    # the sampler takes a fresh sample inside each read, so the integrated window lies between the time
    # from the first read's return to the second read's call and the time spanning both calls, however
    # slow the pipe or the machine is
    energy = end.energy_j - start.energy_j
    assert 6.0 * (t2 - t1) * (1 - 1e-9) <= energy <= 6.0 * (t3 - t0) * (1 + 1e-9)


def test_power_integrator_trapezoid_by_hand() -> None:
    integ = PowerIntegrator()
    for t, p in [(0.0, 2.0), (1.0, 4.0), (3.0, 4.0)]:
        integ.add(t, p)
    # (2 + 4) / 2 x 1 s + (4 + 4) / 2 x 2 s = 3 + 8 = 11 J
    assert integ.energy_j == pytest.approx(11.0) and integ.samples == 3


def battery_tree(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "power_supply"
    write_tree(root, {"AC/type": "Mains", "AC/online": "0"})
    write_tree(root, {f"BAT0/{k}": v for k, v in {"type": "Battery", **files}.items()})
    return root


def test_battery_power_now_while_discharging(tmp_path: Path) -> None:
    root = battery_tree(tmp_path, status="Discharging", power_now="7500000")  # µW
    (found,) = battery.discover(root)
    assert found.status.name == "battery:BAT0" and found.status.available
    assert found.status.update_period_s == pytest.approx(1.0)
    formula = battery._formula(root / "BAT0")
    assert formula.watts([7_500_000]) == pytest.approx(7.5)


def test_battery_current_times_voltage_even_when_signed(tmp_path: Path) -> None:
    root = battery_tree(tmp_path, status="Discharging", current_now="-1500000", voltage_now="12000000")
    (found,) = battery.discover(root)
    assert found.status.available
    formula = battery._formula(root / "BAT0")
    assert formula == PowerFormula((root / "BAT0/current_now", root / "BAT0/voltage_now"), 1e-12)
    assert formula.watts([-1_500_000, 12_000_000]) == pytest.approx(18.0)  # 1.5 A x 12 V


def test_battery_on_external_power_is_not_a_meter(tmp_path: Path) -> None:
    root = battery_tree(tmp_path, status="Charging", power_now="7500000")
    (found,) = battery.discover(root)
    assert not found.status.available and found.status.reason.startswith("on external power")
    (absent,) = battery.discover(tmp_path / "none")
    assert absent.status.name == "battery" and absent.status.reason.startswith("absent:")
    assert math.isfinite(found.status.resolution_j)


# ---------------------------------------------------------------- RAPL wrap-around over long windows
WRAP_32_UJ = 2**32  # a 32-bit counter of µJ: 4295 J, 21 s at 200 W


def test_wrap_guard_counts_every_wrap_of_a_long_window(tmp_path: Path) -> None:
    """A window spanning several wraps: read only at its ends the counter loses whole wraps; with the guard
    reading it as often as its range requires, every joule is counted."""
    from device_agent.energy.meters.base import MAX_POWER_W, READS_PER_WRAP
    from device_agent.energy.recorder import WrapGuard

    root = rapl_tree(tmp_path, package_uj=0)
    (root / "intel-rapl:0/max_energy_range_uj").write_text(f"{WRAP_32_UJ}\n")
    counter = root / "intel-rapl:0/energy_uj"
    (package, _dram) = (f.open() for f in rapl.discover(root))
    clock = FakeClock(0.0)
    package.clock = clock
    interval = WRAP_32_UJ * 1e-6 / MAX_POWER_W / READS_PER_WRAP
    assert package.max_read_interval_s == pytest.approx(interval)  # 2.15 s
    recorder = EnergyRecorder([package], [package.status()])
    guard = WrapGuard(recorder, clock=clock)
    assert guard.intervals() == {"rapl:package-0": pytest.approx(interval)}

    watts = MAX_POWER_W  # the fastest the counter may run: it wraps every 2 intervals
    raw = 0.0

    def advance(seconds: float) -> None:
        nonlocal raw
        clock.sleep(seconds)
        raw = (raw + watts * seconds * 1e6) % WRAP_32_UJ
        counter.write_text(f"{int(raw)}\n")

    start = recorder.mark()["rapl:package-0"]
    assert guard.poll() == pytest.approx(interval)  # the first poll reads it and says when next
    window_s = 0.0
    while window_s < 30.0:  # 30 s at 1000 W: 30 kJ, about 7 wraps of the 32-bit counter
        step = guard.poll()
        assert step is not None and step <= interval + 1e-9
        advance(step)
        window_s += step
    end = recorder.mark()["rapl:package-0"]
    assert end.energy_j - start.energy_j == pytest.approx(watts * window_s, rel=1e-6)

    # the same window read only at its ends: whole wraps vanish (why the guard exists)
    lone = next(f.open() for f in rapl.discover(root) if f.status.name == "rapl:package-0")
    lone.clock = clock
    first = lone.read()
    advance(30.0)
    assert lone.read().energy_j - first.energy_j < watts * 30.0 - 4000.0


def test_meters_that_never_wrap_need_no_guard() -> None:
    from device_agent.energy.recorder import WrapGuard

    meter = nvml.NvmlMeter(fake_nvml([5], supported=[True]), 0)  # NVML's counter is 64-bit mJ
    recorder = EnergyRecorder([meter], [meter.status()])
    assert meter.max_read_interval_s is None
    assert WrapGuard(recorder).poll() is None
