"""Reports from the results database: one table per target.

Statistics are recomputed here from the stored per-episode returns (the agent's summary is
kept for the latency and memory figures it alone could measure).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from enum import Enum

from device_agent.stats import return_stats
from host.results_db import ResultsDB


class ReportFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"


@dataclass(frozen=True)
class ReportRow:
    target: str
    model: str
    sha256: str
    algo: str
    env_id: str
    method: str
    params: str
    return_mean: float
    return_std: float
    return_ci95_low: float
    return_ci95_high: float
    n_episodes: int
    latency_p50_us: float
    latency_p99_us: float
    env_step_us: float
    model_rss_mb: float
    peak_rss_mb: float
    file_kb: float
    n_params: int
    execution_provider: str
    energy: str


def _get(d: dict, *path: str, default: float = math.nan) -> float:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return float(d)


def energy_text(summary: dict) -> str:
    readings = [e for e in summary.get("energy", []) if not e.get("below_resolution")]
    if not readings:
        return "not measured"
    return ", ".join(f"{e['meter']} {float(e.get('net_j', e['gross_j'])):.3g} J" for e in readings)


def collect_rows(db: ResultsDB) -> list[ReportRow]:
    rows = []
    for job in db.succeeded_jobs():
        summary = json.loads(job["summary"])
        stats = return_stats(db.episode_returns(job["job_id"]))
        memory = summary.get("memory", {})
        params = json.loads(job["method_params"])
        rows.append(
            ReportRow(
                target=job["target"],
                model=job["model_name"],
                sha256=job["model_sha256"],
                algo=job["algo"],
                env_id=job["env_id"],
                method=job["method"],
                params=", ".join(f"{k}={v}" for k, v in sorted(params.items())),
                return_mean=stats.mean,
                return_std=stats.std,
                return_ci95_low=stats.ci95_low,
                return_ci95_high=stats.ci95_high,
                n_episodes=stats.n,
                latency_p50_us=_get(summary, "inference", "p50_ns") / 1e3,
                latency_p99_us=_get(summary, "inference", "p99_ns") / 1e3,
                env_step_us=_get(summary, "env_step", "mean_ns") / 1e3,
                model_rss_mb=(_get(memory, "rss_after_load_bytes") - _get(memory, "rss_before_load_bytes"))
                / 2**20,
                peak_rss_mb=_get(memory, "peak_rss_bytes") / 2**20,
                file_kb=job["file_bytes"] / 1024,
                n_params=job["n_params"],
                execution_provider=summary.get("runtime", {}).get("execution_provider", ""),
                energy=energy_text(summary),
            )
        )
    return rows


HEADERS = [
    "model",
    "method",
    "return mean ± std",
    "95% CI",
    "n",
    "p50 µs",
    "p99 µs",
    "step µs",
    "model MB",
    "peak MB",
    "file KB",
    "params",
    "energy",
]
"""Latency is the inference call alone; step is one env.step; model MB is the worker's RSS growth when
the model loaded; peak MB the worker's high-water RSS."""


def cells(row: ReportRow) -> list[str]:
    method = row.method + (f" ({row.params})" if row.params else "")
    return [
        f"{row.model} [{row.sha256[:8]}]",
        method,
        f"{row.return_mean:.1f} ± {row.return_std:.1f}",
        f"[{row.return_ci95_low:.1f}, {row.return_ci95_high:.1f}]",
        str(row.n_episodes),
        f"{row.latency_p50_us:.1f}",
        f"{row.latency_p99_us:.1f}",
        f"{row.env_step_us:.1f}",
        f"{row.model_rss_mb:.1f}",
        f"{row.peak_rss_mb:.1f}",
        f"{row.file_kb:.1f}",
        str(row.n_params),
        row.energy,
    ]


def by_target(rows: list[ReportRow]) -> dict[str, list[ReportRow]]:
    groups: dict[str, list[ReportRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(row)
    return groups


def render_markdown(rows: list[ReportRow]) -> str:
    out = []
    for target, group in by_target(rows).items():
        out += [f"## Target `{target}`", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(cells(r)) + " |" for r in group]
        out.append("")
    return "\n".join(out)


def render_csv(rows: list[ReportRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ReportRow.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


def render_rich(rows: list[ReportRow]) -> list[object]:
    from rich.table import Table

    tables = []
    for target, group in by_target(rows).items():
        table = Table(title=f"target: {target}", title_justify="left")
        for header in HEADERS:
            table.add_column(header, justify="left" if header in ("model", "method", "energy") else "right")
        for row in group:
            table.add_row(*cells(row))
        tables.append(table)
    return tables
