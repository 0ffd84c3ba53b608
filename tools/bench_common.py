"""What every benchmark in tools/ shares: paired-round ratios, the machine's description, a JSON record.

Each benchmark measures its baseline in the same run, interleaved round by round, and reports the
median of the per-round ratios, so noise from a shared machine hits both sides of a round alike.
``--json PATH`` writes the figures for ``tools/bench_all.py``, which assembles docs/performance.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over rounds of numerator / denominator, each pair measured back to back."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def spread(values: list[float]) -> str:
    """min..max of per-round figures, for the reader to judge the noise."""
    return f"{min(values):.3g}..{max(values):.3g}"


def machine() -> dict[str, Any]:
    """CPU model and flags, cores, memory, OS, library versions and the load when the run started."""
    import psutil

    sys.path.insert(0, str(ROOT))
    from device_agent.contract.platform_facts import cpu_model_and_flags, library_versions

    cpu, flags = cpu_model_and_flags()
    facts: dict[str, Any] = {
        "cpu_model": cpu,
        "cpu_flags": flags,
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": library_versions(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        from importlib import metadata

        facts["versions"]["torch"] = metadata.version("torch")
    except Exception:
        pass
    return facts


@dataclass
class BenchResult:
    """One benchmark's outcome, as bench_all.py puts it in the table."""

    name: str
    summary: str
    """The one summary line the benchmark printed."""
    ratio: float | None = None
    """The headline ratio (None for report-only benchmarks such as memory)."""
    goal: str = ""
    """e.g. ">= 0.95"; empty when there is none."""
    met: bool | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    """The benchmark's detail table (one dict per row)."""
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    """What the table shows when one ratio does not say it all; empty: the ratio."""


def finish(result: BenchResult, json_path: Path | None) -> None:
    """Print the summary line (always last) and write the JSON record when asked."""
    print(result.summary, flush=True)
    if json_path is not None:
        result.machine = result.machine or machine()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
