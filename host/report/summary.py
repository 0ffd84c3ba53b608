"""A job's stored summary, read through one typed accessor.

The results database keeps each job's summary as the JSON of agent.proto ``JobSummary`` (int64 fields as
strings, fields at their default left out, older agents' summaries missing newer fields). Every path into
that JSON the report needs is here, with its unit and what a missing field means, so no renderer or row
builder walks dict paths of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

PROVIDER_METERS = {"CUDAExecutionProvider": "nvml", "TensorrtExecutionProvider": "nvml"}
"""The meter family that sees the work of an execution provider; anything else runs on the CPU (RAPL first)."""
CPU_METERS = ("rapl", "ina3221", "battery")

LATENCY_BATCHES = 10
"""Batches a latency phase's calls are cut into when the episodes have no latency of their own."""


def meter_order(provider: str) -> tuple[str, ...]:
    """Meter families in the order that best covers ``provider``'s work: the GPU's own meter for a GPU
    provider, the CPU package (then a board rail, then the battery) for the CPU."""
    first = PROVIDER_METERS.get(provider)
    return (first, *CPU_METERS) if first else (*CPU_METERS, "nvml")


def _get(d: Any, *path: str, default: float = math.nan) -> float:
    for key in path:
        if not isinstance(d, Mapping) or key not in d:
            return default
        d = d[key]
    return float(d)


def _per_item(reading: Mapping[str, Any] | None) -> tuple[float | None, bool]:
    """(joules per item, net?) of one reading; None when it is below the meter's resolution."""
    if reading is None or reading.get("below_resolution") or not int(reading.get("n_items", 0)):
        return None, False
    if "net_j_per_item" in reading:
        return float(reading["net_j_per_item"]), True
    return float(reading.get("gross_j", 0.0)) / int(reading["n_items"]), False


def net_per_item(reading: Mapping[str, Any] | None) -> float | None:
    """Net joules per item of one reading, or None when it is no measurement to rank by: below the meter's
    resolution, gross only (idle power not subtracted), or not positive (idle power above the job's: noise)."""
    value, net = _per_item(reading)
    return value if net and value is not None and value > 0 else None


@dataclass(frozen=True)
class JobSummary:
    """One job's summary (agent.proto JobSummary as stored JSON). Latencies in µs, memory in bytes; a figure
    the agent did not report is NaN (or None where "absent" means something else than "unknown")."""

    data: Mapping[str, Any]

    @classmethod
    def parse(cls, text: str | None) -> JobSummary:
        """From the database's summary column; an empty summary for a job that has none."""
        return cls(json.loads(text) if text else {})

    def _section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, Mapping) else {}

    # latency
    @property
    def p50_us(self) -> float:
        return _get(self.data, "inference", "p50_ns") / 1e3

    @property
    def p99_us(self) -> float:
        return _get(self.data, "inference", "p99_ns") / 1e3

    @property
    def paired(self) -> tuple[str, float, float] | None:
        """A paired latency round's reference: (its sha256, its p50 µs, its p99 µs), timed in this job's worker
        process alternating with this job's model; None for a job timed alone."""
        section = self._section("paired")
        ref = section.get("reference_sha256")
        if not ref:
            return None
        return (
            str(ref),
            _get(section, "reference", "p50_ns") / 1e3,
            _get(section, "reference", "p99_ns") / 1e3,
        )

    @property
    def p999_us(self) -> float:
        return _get(self.data, "inference", "p999_ns") / 1e3

    @property
    def has_floor(self) -> bool:
        """Whether this job timed the runtime floor (round 0 of a session does; later rounds do not)."""
        return "runtime_floor" in self.data

    @property
    def floor_p50_us(self) -> float:
        return _get(self.data, "runtime_floor", "p50_ns") / 1e3

    @property
    def env_step_us(self) -> float:
        return _get(self.data, "env_step", "mean_ns") / 1e3

    def latency_phase_batches(self) -> list[float]:
        """Medians (µs) of consecutive batches of the latency phase's timed calls; [] when it kept none."""
        calls = self._section("latency_phase").get("inference_ns") or []
        n = min(LATENCY_BATCHES, len(calls) // 20)
        if n < 2:
            return []
        values = np.asarray(calls, dtype=np.float64) / 1e3
        return [float(np.median(batch)) for batch in np.array_split(values, n)]

    @property
    def deadline_misses(self) -> int | None:
        """Control-rate ticks that overran the period; None for a job that ran back-to-back."""
        if "control_rate" not in self.data:
            return None
        return int(self._section("control_rate").get("deadline_misses", 0))

    # runtime
    @property
    def execution_provider(self) -> str:
        return str(self._section("runtime").get("execution_provider", ""))

    @property
    def runtime_key(self) -> str:
        """What of the agent's software decides a timing: runtime versions and the provider that ran the job."""
        rt = self._section("runtime")
        return " ".join(
            f"{k}={rt.get(k, '')}"
            for k in ("onnxruntime_version", "mujoco_version", "gymnasium_version", "execution_provider")
        )

    @property
    def validity(self) -> dict[str, Any] | None:
        """What could have spoiled the job's timing, as the agent checked it (None from older agents)."""
        value = self.data.get("validity")
        return dict(value) if isinstance(value, Mapping) else None

    # memory
    @property
    def model_memory_bytes(self) -> float:
        """What the model itself adds to the worker's RSS: past the runtime's start-up (a weightless graph of
        the same I/O loaded first), where the agent measured that split; else, from older agents, the whole
        growth when the model loaded (start-up included, so about equal for every variant)."""
        memory = self._section("memory")
        if "model_added_bytes" in memory:
            return float(memory["model_added_bytes"])
        return _get(memory, "rss_after_load_bytes") - _get(memory, "rss_before_load_bytes")

    @property
    def model_mb(self) -> float:
        return self.model_memory_bytes / 2**20

    @property
    def peak_rss_mb(self) -> float:
        return _get(self._section("memory"), "peak_rss_bytes") / 2**20

    # energy
    @cached_property
    def episode_energy(self) -> dict[str, Mapping[str, Any]]:
        """Meter -> its reading over the episodes (n_items = episodes)."""
        return {e["meter"]: e for e in self.data.get("energy", [])}

    @cached_property
    def inference_energy(self) -> dict[str, Mapping[str, Any]]:
        """Meter -> its reading over the inference-only phase (n_items = calls)."""
        return {e["meter"]: e for e in self._section("inference_phase").get("energy", [])}

    @property
    def energy_meters(self) -> list[Mapping[str, Any]]:
        """Every meter the worker looked for; an unavailable one says why."""
        return list(self.data.get("energy_meters", []))

    def energy_meter(self) -> str | None:
        """The meter the job's energy figures come from: the first, in the provider's :func:`meter_order`, with
        a usable net reading of the inference phase (else of the episodes)."""
        episodes, inference = self.episode_energy, self.inference_energy
        meters = list(dict.fromkeys([*inference, *episodes]))
        for family in meter_order(self.execution_provider):
            for meter in meters:
                if meter.split(":")[0] != family:
                    continue
                if (
                    net_per_item(inference.get(meter)) is not None
                    or net_per_item(episodes.get(meter)) is not None
                ):
                    return meter
        return None

    def energy_per_item(self) -> tuple[float | None, float | None]:
        """Net J per episode and per inference from the meter that covers the job's execution provider
        (:meth:`energy_meter`); never a below-resolution, gross-only or non-positive figure, and never two
        meters mixed. (None, None) when no such reading exists."""
        meter = self.energy_meter()
        if meter is None:
            return None, None
        return net_per_item(self.episode_energy.get(meter)), net_per_item(self.inference_energy.get(meter))

    def meter_scope(self, meter: str) -> str:
        """The meter's name with what it covers (``rapl:package-0 (cpu package)``) when the agent said."""
        scope = next((m.get("scope") for m in self.energy_meters if m.get("name") == meter), None)
        return f"{meter} ({scope})" if scope else meter

    def energy_text(self) -> str:
        """The energy column: per meter, J per episode and µJ per inference (net of idle power unless marked
        gross), "below resolution" for windows too short for the meter, or why nothing was measured."""
        episodes, inference = self.episode_energy, self.inference_energy
        parts = []
        for meter in dict.fromkeys([*episodes, *inference]):
            shown = []
            for reading, scale, unit in (
                (episodes.get(meter), 1.0, "J/episode"),
                (inference.get(meter), 1e6, "µJ/inference"),
            ):
                if reading is None:
                    continue
                value, net = _per_item(reading)
                if value is None:
                    shown.append(f"{unit.split('/')[1]} below resolution")
                else:
                    shown.append(f"{value * scale:.3g} {unit}" + ("" if net else " gross"))
            parts.append(f"{meter}: {', '.join(shown)}")
        if parts:
            return "; ".join(parts)
        meters = self.energy_meters
        if not meters:
            return "not measured"
        broken = [
            m for m in meters if m.get("available") or str(m.get("reason", "")).startswith("failed mid-job")
        ]
        if broken:
            return (
                "not measured ("
                + "; ".join(f"{m['name']}: {m.get('reason') or 'no reading'}" for m in broken)
                + ")"
            )
        return "not measured (no meter on this device)"


def energy_text(summary: Mapping[str, Any]) -> str:
    """:meth:`JobSummary.energy_text` of a stored summary's JSON."""
    return JobSummary(summary).energy_text()


def energy_per_item(summary: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """:meth:`JobSummary.energy_per_item` of a stored summary's JSON."""
    return JobSummary(summary).energy_per_item()
