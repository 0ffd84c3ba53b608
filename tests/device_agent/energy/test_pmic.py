"""The Raspberry Pi 5 PMIC meter, at its narrowest boundary: the ``vcgencmd pmic_read_adc`` command.

There is no Pi 5 here, so a stand-in ``vcgencmd`` prints rails in the firmware's format (the line
shapes below are transcribed from that format: ``<RAIL>_A current(n)=<amps>A`` and
``<RAIL>_V volt(n)=<volts>V``; the values are made up and only need to be constant). Everything past
the command - discovery, the sampler process, integration, the recorder's interface - is the real code.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from device_agent.energy.meters import pmic
from device_agent.energy.meters.pmic_text import PmicParseError, rails, total_power_w

OUTPUT = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05660980A
       1V8_SYS_A current(2)=0.18347480A
      DDR_VDD2_A current(3)=0.02049454A
      DDR_VDDQ_A current(4)=0.00000000A
       1V1_SYS_A current(5)=0.18542660A
       0V8_SYS_A current(6)=0.33961930A
      VDD_CORE_A current(7)=0.72165000A
     3V7_WL_SW_V volt(8)=3.71721700V
       3V3_SYS_V volt(9)=3.30769300V
       1V8_SYS_V volt(10)=1.79780200V
      DDR_VDD2_V volt(11)=1.11180600V
      DDR_VDDQ_V volt(12)=0.60549440V
       1V1_SYS_V volt(13)=1.10399200V
       0V8_SYS_V volt(14)=0.79950080V
      VDD_CORE_V volt(15)=0.72036770V
       0V8_AON_A current(16)=0.00449316A
       3V3_DAC_A current(17)=0.00048804A
       3V3_ADC_A current(18)=0.00042924A
       0V8_AON_V volt(19)=0.79279590V
       3V3_DAC_V volt(20)=3.30952400V
       3V3_ADC_V volt(21)=3.31318700V
          HDMI_A current(22)=0.02488986A
          HDMI_V volt(23)=5.14285600V
         EXT5V_V volt(24)=5.14285600V
          BATT_V volt(25)=0.00000000V
"""


def expected_watts(text: str) -> float:
    """Volts x amps per rail, paired by hand from the printout, independently of the parser."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, value = line.split()
        values[name] = float(value.split("=")[1].rstrip("AV"))
    return sum(values[n] * values[n[:-1] + "V"] for n in values if n.endswith("_A"))


def test_rails_pair_volts_and_amps_and_leave_out_voltage_only_lines() -> None:
    parsed = rails(OUTPUT)
    assert len(parsed) == 12 and "EXT5V" not in parsed and "BATT" not in parsed
    assert parsed["VDD_CORE"] == (pytest.approx(0.72036770), pytest.approx(0.72165000))
    assert total_power_w(OUTPUT) == pytest.approx(expected_watts(OUTPUT), rel=1e-12)
    assert 0.5 < total_power_w(OUTPUT) < 2.0  # a Pi 5 at idle draws around a watt on these rails
    with pytest.raises(PmicParseError):
        total_power_w("VCHI initialization failed\n")


def fake_board(
    tmp_path: Path, output: str = OUTPUT, code: int = 0, model: str = "Raspberry Pi 5 Model B Rev 1.0"
):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model_file = tmp_path / "model"
    model_file.write_bytes(model.encode() + b"\0")  # the device tree's string is NUL-terminated
    printout = tmp_path / "printout.txt"
    printout.write_text(output)
    vcgencmd = tmp_path / "vcgencmd"
    vcgencmd.write_text(f'#!/bin/sh\n[ "$1" = pmic_read_adc ] || exit 2\ncat "{printout}"\nexit {code}\n')
    vcgencmd.chmod(0o755)
    return model_file, str(vcgencmd)


def test_discovery_on_a_pi5_and_its_reasons_elsewhere(tmp_path: Path) -> None:
    model_file, vcgencmd = fake_board(tmp_path)
    (found,) = pmic.discover(model_file, vcgencmd)
    assert found.status.available and found.status.name == "pmic:rpi5"
    assert found.status.update_period_s == pytest.approx(pmic.SAMPLE_PERIOD_S)
    assert 0 < found.status.resolution_j < 1e-3 and "PMIC rails" in found.status.scope

    pi4, _ = fake_board(tmp_path / "pi4", model="Raspberry Pi 4 Model B Rev 1.4")
    (absent,) = pmic.discover(pi4, vcgencmd)
    assert not absent.status.available and absent.status.reason.startswith("absent: not a Raspberry Pi 5")
    (laptop,) = pmic.discover(tmp_path / "no-such-model-file", vcgencmd)
    assert laptop.status.reason == "absent: not a Raspberry Pi 5 (no device-tree model)"
    if shutil.which("vcgencmd") is None:  # (this machine is no Pi)
        (missing,) = pmic.discover(model_file, None)
        assert missing.status.reason.startswith("absent: vcgencmd is not installed")

    denied_model, denied_cmd = fake_board(tmp_path / "denied", output="VCHI initialization failed\n", code=1)
    (denied,) = pmic.discover(denied_model, denied_cmd)
    assert denied.status.reason.startswith("no permission:") and "video group" in denied.status.reason
    garbled_model, garbled_cmd = fake_board(tmp_path / "garbled", output="nothing useful\n")
    (garbled,) = pmic.discover(garbled_model, garbled_cmd)
    assert garbled.status.reason.startswith("unreadable:")


def test_the_sampler_process_integrates_the_rails(tmp_path: Path) -> None:
    """The real sampler process runs the command at 10 Hz and integrates a constant total power."""
    model_file, vcgencmd = fake_board(tmp_path)
    (found,) = pmic.discover(model_file, vcgencmd)
    meter = found.open()
    watts = expected_watts(OUTPUT)
    clock = time.perf_counter  # CLOCK_MONOTONIC, the sampler process's clock too
    try:
        t0 = clock()
        start = meter.read()
        t1 = clock()
        time.sleep(0.5)  # any length will do: the bounds below hold for every window
        t2 = clock()
        end = meter.read()
        t3 = clock()
    finally:
        meter.close()
    assert meter.proc.returncode == 0
    energy = end.energy_j - start.energy_j
    assert watts * (t2 - t1) * (1 - 1e-6) <= energy <= watts * (t3 - t0) * (1 + 1e-6)
