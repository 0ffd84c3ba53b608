"""`drlc-host report --format csv`: one line per measured model (per-episode samples stay in the database),
with the columns of its comparison with the baseline."""

from __future__ import annotations

import csv
import io
from typing import Any

from host.report.analysis import Analysis
from host.report.rows import ReportRow

SAMPLE_FIELDS = (
    "returns",
    "latency_samples_us",
    "seeds",
    "round_ids",
    "round_p50_us",
    "round_p99_us",
    "round_paired",
    "round_model_mb",
    "round_energy",
    "job_ids",
)
"""Per-episode samples: in the database, not in the CSV (one row per job)."""
CSV_STATS = (
    "variant",
    "return_pct_ci95_low",
    "return_pct_ci95_high",
    "return_vs_baseline",
    "return_p",
    "keeps_90pct",
    "keeps_90pct_p",
    "keeps_90pct_study_rule",
    "latency_p50_ci95_low_us",
    "latency_p50_ci95_high_us",
    "latency_vs_baseline",
    "latency_ratio",
    "latency_p",
    "latency_p_holm",
    "peak_rss_ratio",
    "file_ratio",
    "energy_inference_ratio",
)
"""Columns the CSV adds from the comparison with the baseline (empty for a row whose baseline was not
measured on the same target)."""


def render_csv(analysis: Analysis) -> str:
    """Every row of ``analysis``, its comparison's columns (:data:`CSV_STATS`) empty when it has none."""
    comparisons = {
        (c.row.target, c.row.sha256, c.row.target_fingerprint, c.row.settings_key): c
        for c in analysis.comparisons
    }
    fields = [f for f in ReportRow.__dataclass_fields__ if f not in SAMPLE_FIELDS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields + list(CSV_STATS))
    writer.writeheader()
    for row in analysis.rows:
        record: dict[str, Any] = {k: getattr(row, k) for k in fields}
        c = comparisons.get((row.target, row.sha256, row.target_fingerprint, row.settings_key))
        if c is not None:
            record |= {
                "variant": c.label,
                "return_pct_ci95_low": c.pct.low,
                "return_pct_ci95_high": c.pct.high,
                "return_vs_baseline": c.verdict.value,
                "return_p": c.return_test.p if c.return_test else None,
                "keeps_90pct": c.keep.verdict.value if not c.is_baseline else "keeps",
                "keeps_90pct_p": c.keep.p,
                "keeps_90pct_study_rule": c.keeps_by_mean,
                "latency_p50_ci95_low_us": c.latency_ci.low,
                "latency_p50_ci95_high_us": c.latency_ci.high,
                "latency_vs_baseline": c.latency.verdict,
                "latency_ratio": c.latency_ratio,
                "latency_p": c.latency.p,
                "latency_p_holm": c.latency.p_adjusted,
                "peak_rss_ratio": c.memory_ratio,
                "file_ratio": c.file_ratio,
                "energy_inference_ratio": c.energy_ratio,
            }
        writer.writerow(record)
    return buffer.getvalue()
