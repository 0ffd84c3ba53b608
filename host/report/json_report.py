"""`drlc-host report --format json`: every job, every comparison and the recommendation per (policy, target),
for CI pipelines and notebooks. The schema is documented in README ("How drlc decides"); ``schema`` names
its version, bumped when a field changes meaning or goes away (adding fields does not bump it)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from host.decision import ALPHA, KEEP_FRACTION
from host.report.aggregates import aggregate_record, aggregates
from host.report.analysis import Analysis
from host.report.recommend import Recommendation, headline
from host.report.rows import ReportRow
from host.report.summary import JobSummary
from host.report.stats import Comparison, MetricComparison
from host.store.results_db import ResultsDB

SCHEMA = "drlc.report/1"


def _num(value: float | None) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def job_records(db: ResultsDB, rows: Sequence[ReportRow]) -> list[dict[str, Any]]:
    """Every job behind ``rows`` (every round of each row's session, spoiled ones too), in row order."""
    wanted = [j for r in rows for j in r.job_ids]
    if not wanted:
        return []
    found: dict[str, dict[str, Any]] = {}
    for j in db.jobs_by_id(wanted):
        summary = JobSummary.parse(j["summary"])
        try:
            validity = json.loads(j["validity"]) if j["validity"] else None
        except ValueError:
            validity = j["validity"]
        found[j["job_id"]] = {
            "job_id": j["job_id"],
            "sha256": j["model_sha256"],
            "target": j["target"],
            "target_fingerprint": j["target_fingerprint"],
            "settings_key": j["settings_key"],
            "session_id": j["session_id"],
            "round": j["round"],
            "spoiled": bool(j["spoiled"]),
            "validity": validity,
            "state": j["state"],
            "p50_us": _num(summary.p50_us),
            "p99_us": _num(summary.p99_us),
            "created_at": j["created_at"],
            "finished_at": j["finished_at"],
        }
    names = {r.sha256: r.model for r in rows}
    return [found[j] | {"model": names.get(found[j]["sha256"])} for j in wanted if j in found]


def metric_record(m: MetricComparison) -> dict[str, Any]:
    return {
        "ratio": _num(m.ratio),
        "ci95": [_num(m.low), _num(m.high)],
        "p": _num(m.p),
        "p_adjusted": _num(m.p_adjusted),
        "n_rounds": m.n,
        "verdict": m.verdict,
        "why": m.why,
        **({"meter": m.meter} if m.meter else {}),
    }


def comparison_record(c: Comparison) -> dict[str, Any]:
    k = c.keep
    return {
        "target": c.row.target,
        "policy": c.base.model,
        "baseline_sha256": c.base.sha256,
        "model": c.row.model,
        "sha256": c.row.sha256,
        "variant": c.label,
        "is_baseline": c.is_baseline,
        "session_id": c.row.session_id,
        "baseline_session_id": c.base.session_id,
        "return": {
            "mean": _num(c.row.return_mean),
            "n_episodes": c.row.n_episodes,
            "pct_of_baseline": _num(c.pct.value),
            "pct_ci95": [_num(c.pct.low), _num(c.pct.high)],
            "keeps": {
                "verdict": "keeps" if c.is_baseline else k.verdict.value,
                "ratio": _num(k.ratio),
                "lower": _num(k.low),
                "upper": _num(k.high),
                "p": _num(k.p),
                "n": k.n,
                "paired": k.paired,
                "more_episodes_estimate": k.more_episodes,
                "why": "the baseline itself" if c.is_baseline else k.reason,
            },
            "study_rule": {
                "keeps": c.keeps_by_mean,
                "rule": f"the study's rule: mean return >= {KEEP_FRACTION:.0%} of the baseline's (no test)",
            },
        },
        "metrics": {name: metric_record(m) for name, m in c.metrics.items()},
    }


def recommendation_record(r: Recommendation) -> dict[str, Any]:
    c = r.choice
    return {
        "target": r.target,
        "policy": r.base.model,
        "baseline_sha256": r.base.sha256,
        "objective": r.objective.value,
        "model": r.model,
        "sha256": c.row.sha256,
        "variant": c.label,
        "is_baseline": c.is_baseline,
        "headline": headline(r),
        "reason": r.reason,
        "n_variants_keeping_return": r.n_keep,
        "n_variants_better": r.n_better,
        "effect": metric_record(c.metrics[r.objective.value]) if not c.is_baseline else None,
    }


def render_json(analysis: Analysis, jobs: list[dict[str, Any]], title: str = "drlc report") -> str:
    """The JSON document: rules, recommendations, comparisons, aggregates across policies and ``jobs``
    (:func:`job_records`)."""
    comparisons, recs = analysis.comparisons, analysis.recommendations
    optimise, threshold = analysis.optimise, analysis.threshold
    document = {
        "schema": SCHEMA,
        "title": title,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rules": {
            "objective": optimise.value,
            "noise_threshold": threshold,
            "alpha": ALPHA,
            "correction": "holm",
            "keep_fraction": KEEP_FRACTION,
        },
        "recommendations": [recommendation_record(r) for r in recs],
        "comparisons": [comparison_record(c) for c in comparisons],
        "aggregates": [aggregate_record(a) for a in aggregates(comparisons)],
        "jobs": jobs,
    }
    return json.dumps(document, indent=1, allow_nan=False)
