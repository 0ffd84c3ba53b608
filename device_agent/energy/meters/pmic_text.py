"""Reading ``vcgencmd pmic_read_adc``'s printout (stdlib only: the sampler process imports it)."""

from __future__ import annotations

import re

LINE = re.compile(
    r"^\s*(?P<rail>[A-Za-z0-9_]+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-+0-9.eE]+)[AV]\s*$"
)


class PmicParseError(ValueError):
    """The command's output has no rail with both a voltage and a current."""


def rails(text: str) -> dict[str, tuple[float, float]]:
    """Rail name -> (volts, amps), for the rails that print both."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            (amps if match["kind"] == "A" else volts)[match["rail"]] = float(match["value"])
    both = {rail: (volts[rail], amps[rail]) for rail in volts.keys() & amps.keys()}
    if not both:
        raise PmicParseError("no rail with both a voltage and a current in the pmic_read_adc output")
    return both


def total_power_w(text: str) -> float:
    return sum(v * abs(a) for v, a in rails(text).values())
