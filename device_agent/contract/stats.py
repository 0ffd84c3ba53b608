"""Pure summaries of measured samples, shared by the agent (for its stream) and the host (for reports)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Two-sided 97.5 % quantiles of Student's t for df = 1..30; beyond that the normal 1.96 is
# within 2 % and the agent does not need scipy for it.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


@dataclass(frozen=True)
class ReturnStats:
    n: int
    mean: float
    std: float
    ci95_low: float
    ci95_high: float


def return_stats(returns: list[float] | np.ndarray) -> ReturnStats:
    """Mean, sample std and the t-based 95 % confidence interval of the mean."""
    values = np.asarray(returns, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return ReturnStats(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return ReturnStats(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_ns: float
    std_ns: float
    min_ns: float
    p50_ns: float
    p90_ns: float
    p99_ns: float
    p999_ns: float
    max_ns: float
    bucket_edges_ns: list[float] = field(default_factory=list)
    bucket_counts: list[int] = field(default_factory=list)


def latency_summary(samples_ns: list[int] | np.ndarray, n_buckets: int = 40) -> LatencySummary:
    """Percentiles plus a log-spaced histogram: latency tails are long, a linear one hides them."""
    values = np.asarray(samples_ns, dtype=np.float64)
    if values.size == 0:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan, nan, nan, nan)
    p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9])
    lo, hi = float(values.min()), float(values.max())
    edges = np.geomspace(max(lo, 1.0), max(hi, lo + 1.0) * 1.000001, n_buckets + 1)
    counts, _ = np.histogram(values, bins=edges)
    return LatencySummary(
        count=int(values.size),
        mean_ns=float(values.mean()),
        std_ns=float(values.std()),
        min_ns=lo,
        p50_ns=float(p50),
        p90_ns=float(p90),
        p99_ns=float(p99),
        p999_ns=float(p999),
        max_ns=hi,
        bucket_edges_ns=[float(e) for e in edges],
        bucket_counts=[int(c) for c in counts],
    )
