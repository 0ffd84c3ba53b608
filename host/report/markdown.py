"""`drlc-host report --format md`: the answer, the study's tables, then every measurement, one table per target.

Also the study's rule on means ("best pruning": the highest ratio whose mean return keeps at least 90 % of the
baseline's on the same target), shown under each target's measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from device_agent.contract.vocabulary import BASELINE, PRUNING_METHODS
from host.report.analysis import Analysis
from host.decision import KEEP_FRACTION
from host.report.rows import ReportRow
from host.report.tables import study_markdown
from host.report.terminal import DEFAULT_COLUMNS, answer_markdown


@dataclass(frozen=True)
class BestPruning:
    target: str
    algo: str
    env_id: str
    baseline: str
    baseline_return: float
    method: str
    ratio: float
    return_pct_of_baseline: float


def best_pruning(rows: Iterable[ReportRow]) -> list[BestPruning]:
    """Per (target, baseline): the highest pruning ratio that keeps >= 90 % of the baseline's return."""
    rows = list(rows)
    out = []
    for base in (r for r in rows if r.method == BASELINE):
        if base.return_mean <= 0:
            continue  # a percentage of a non-positive return says nothing
        kept = [
            r
            for r in rows
            if r.target == base.target
            and r.baseline_sha256 == base.sha256
            and r.method in PRUNING_METHODS
            and r.ratio is not None
            and r.return_mean >= KEEP_FRACTION * base.return_mean
        ]
        if not kept:
            continue
        top = max(r.ratio for r in kept if r.ratio is not None)
        for r in sorted((r for r in kept if r.ratio == top), key=lambda r: r.method):
            out.append(
                BestPruning(
                    base.target,
                    base.algo,
                    base.env_id,
                    base.model,
                    base.return_mean,
                    r.method,
                    top,
                    r.return_pct_of_baseline or math.nan,
                )
            )
    return out


HEADERS = [
    "model",
    "method",
    "return mean ± std",
    "95% CI",
    "% base",
    "n",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "floor µs",
    "step µs",
    "misses",
    "model MB",
    "peak MB",
    "file KB",
    "params",
    "mean abs Δa",
    "energy",
]
"""Latency is the inference call alone (p99.9 needs >= 1000 calls to mean anything); misses counts the
control-rate ticks that overran the env's control period ("–": the job ran back-to-back); floor is the p50 of
the same runtime on a trivial graph of the same shapes, timed in the same loop (an env step between calls):
what no compression can remove; step is one env.step;
model MB is what the model adds to the worker's RSS beyond the runtime's start-up (a weightless graph of the same
I/O, loaded first); peak MB the worker's high-water RSS; mean abs Δa the
action error vs the baseline on held-out observations, measured when the variant was made; energy is net of
idle power, J per episode and µJ per call of the inference-only phase, or "not measured" and why."""


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def cells(row: ReportRow) -> list[str]:
    method = row.method + (f" ({row.params})" if row.params else "")
    pct = f"{row.return_pct_of_baseline:.1f}" if row.return_pct_of_baseline is not None else "–"
    error = f"{row.action_error_mean_abs:.4f}" if row.action_error_mean_abs is not None else "–"
    return [
        f"{row.model} [{row.sha256[:8]}]",
        method,
        f"{row.return_mean:.1f} ± {row.return_std:.1f}",
        f"[{row.return_ci95_low:.1f}, {row.return_ci95_high:.1f}]",
        pct,
        str(row.n_episodes),
        _num(row.latency_p50_us),
        _num(row.latency_p99_us),
        _num(row.latency_p999_us),
        _num(row.floor_p50_us),
        _num(row.env_step_us),
        "–" if row.deadline_misses is None else str(row.deadline_misses),
        _num(row.model_rss_mb),
        _num(row.peak_rss_mb),
        f"{row.file_kb:.1f}",
        str(row.n_params),
        error,
        row.energy,
    ]


BEST_HEADERS = ["algo", "env", "baseline", "baseline return", "best pruning", "ratio", "% base"]


def best_cells(b: BestPruning) -> list[str]:
    return [
        b.algo,
        b.env_id,
        b.baseline,
        f"{b.baseline_return:.1f}",
        b.method,
        f"{b.ratio:.2f}",
        f"{b.return_pct_of_baseline:.1f}",
    ]


def by_target(rows: list[ReportRow]) -> dict[str, list[ReportRow]]:
    groups: dict[str, list[ReportRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(row)
    return groups


def _md_table(headers: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(c) + " |" for c in body),
    ]


def render_markdown(
    analysis: Analysis, title: str | None = None, columns: Sequence[str] | None = None
) -> str:
    """The answer (verdict lines and compact tables, ``columns`` as the terminal's), the study's tables
    (recommendations, Tables 1-3, per target and side by side), then every measurement, one table per target."""
    out = [f"# {title}", ""] if title else []
    out += answer_markdown(analysis, columns or DEFAULT_COLUMNS)
    out += study_markdown(analysis.tables)
    out += ["# Every measurement", ""]
    for target, group in by_target(analysis.rows).items():
        out += [f"## Target `{target}`", ""]
        out += _md_table(HEADERS, [cells(r) for r in group])
        best = best_pruning(group)
        if best:
            out += [
                "",
                f"Best pruning by the study's rule (highest ratio keeping ≥ {KEEP_FRACTION:.0%} of the baseline's return):",
                "",
            ]
            out += _md_table(BEST_HEADERS, [best_cells(b) for b in best])
        out.append("")
    return "\n".join(out)
