"""Across policies: rliable's interquartile mean (IQM) with stratified bootstrap CIs and probability of
improvement, per (target, variant), instead of a mean of per-policy means.

Each policy is a *task*; its *runs* are the variant's episodes (returns as a fraction of that policy's
baseline mean, paired seeds) or its rounds (p50 latency as a ratio to the baseline's in the same round).
rliable's score matrices need as many runs per task, so every task is cut to the fewest any has (the first
seeds / rounds in order). A variant measured on fewer than two policies gets no aggregate.

The IQM point estimate is rliable's own (``rliable.metrics``). Probability of improvement and the CIs are
rliable's definitions and stratified
bootstrap (runs resampled with replacement within each task; percentile intervals), written here as whole-
array numpy because rliable's loop through ``arch`` takes about a second per figure, which a report of a
34-variant sweep on several devices cannot afford; tests/host/test_verdicts.py checks the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from host.report.stats import Comparison, label_sort_key

BOOTSTRAP_REPS = 1000
"""Stratified bootstrap replications: enough for 95 % percentile CIs stable to a few % of their width, and a
large report (100 policies x 34 variants x 3 devices) stays within seconds."""
BOOTSTRAP_SEED = 0
"""Fixed, so the same database gives the same report."""
MIN_POLICIES = 2


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Aggregate:
    target: str
    variant: str
    n_policies: int
    runs: int
    """Episodes per policy in the return matrices."""
    return_iqm: Estimate
    """IQM of per-episode return / baseline mean return."""
    improvement: Estimate
    """Probability that the variant's episode return exceeds the baseline's, averaged over policies."""
    latency_iqm: Estimate | None
    """IQM of per-round p50 latency ratios (variant / baseline); None without rounds on every policy."""
    latency_rounds: int = 0


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's probability of improvement of X over Y: P(X_m > Y_m) + ½ P(X_m = Y_m) per task m (Mann–Whitney
    U / (n_x n_y)), averaged over tasks. Whole-array numpy: rliable's per-task scipy loop took a third of a
    large report's time; tests check the two agree."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def _iqm(scores: np.ndarray) -> float:
    from rliable import metrics  # heavy (about a second to import): only reports across policies need it

    return float(metrics.aggregate_iqm(scores))


def _resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, runs, tasks): each task's runs drawn with replacement from its own runs (rliable's strata)."""
    runs, tasks = scores.shape
    idx = rng.integers(0, runs, (reps, runs, tasks), dtype=np.int32)  # narrow ints: twice as fast to draw
    return scores[idx, np.arange(tasks)[None, None, :]]


def _percentile(samples: np.ndarray, point: float) -> Estimate:
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(point, float(low), float(high))


def iqm_interval(scores: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """IQM of a (runs, tasks) matrix with its stratified-bootstrap 95 % percentile CI."""
    boot = _resample(scores, reps, np.random.default_rng(seed)).reshape(reps, -1)
    return _percentile(stats.trim_mean(boot, 0.25, axis=1), _iqm(scores))


def improvement_interval(
    x: np.ndarray, y: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
) -> Estimate:
    """Probability of improvement of X over Y with a stratified bootstrap CI (X and Y resampled independently
    within each task, as rliable's StratifiedIndependentBootstrap does).

    A resample of a task's runs is a vector of counts (multinomial), and the task's probability of improvement
    over resampled runs is cx · G · cy / (nx ny) with G[i, j] = [x_i > y_j] + ½ [x_i = y_j]: the same statistic
    as comparing the resampled values, in reps · tasks · nx · ny multiply-adds instead of materialising them."""
    rng = np.random.default_rng(seed)
    nx, tasks = x.shape
    ny = y.shape[0]
    g = (x.T[:, :, None] > y.T[:, None, :]) + 0.5 * (x.T[:, :, None] == y.T[:, None, :])  # (tasks, nx, ny)
    cx, cy = _counts(rng, reps, tasks, nx), _counts(rng, reps, tasks, ny)  # (tasks, reps, n)
    per_task = ((cx @ g) * cy).sum(axis=2) / (nx * ny)  # (tasks, reps)
    return _percentile(per_task.mean(axis=0), probability_of_improvement(x, y))


def _counts(rng: np.random.Generator, reps: int, tasks: int, n: int) -> np.ndarray:
    """(tasks, reps, n): how often each run is drawn when n runs are drawn with replacement."""
    idx = rng.integers(0, n, (tasks, reps, n), dtype=np.int32)
    offsets = (np.arange(tasks * reps) * n).reshape(tasks, reps, 1)
    flat = np.bincount((idx + offsets).ravel(), minlength=tasks * reps * n)
    return flat.reshape(tasks, reps, n).astype(np.float64)


def aggregates(comparisons: Sequence[Comparison]) -> list[Aggregate]:
    """One aggregate per (target, variant label) measured on at least :data:`MIN_POLICIES` policies."""
    families: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        if not c.is_baseline and c.base.return_mean > 0:
            families.setdefault((c.row.target, c.label), []).append(c)
    out = []
    for (target, label), cs in sorted(families.items(), key=lambda kv: (kv[0][0], label_sort_key(kv[0][1]))):
        tasks = []
        for c in cs:
            base = dict(zip(c.base.seeds, c.base.returns, strict=False))
            mine = dict(zip(c.row.seeds, c.row.returns, strict=False))
            seeds = sorted(set(base) & set(mine))
            if len(seeds) >= 2:
                scale = c.base.return_mean
                tasks.append(([mine[s] / scale for s in seeds], [base[s] / scale for s in seeds], c))
        if len(tasks) < MIN_POLICIES:
            continue
        runs = min(len(v) for v, _, _ in tasks)
        x = np.array([v[:runs] for v, _, _ in tasks]).T
        y = np.array([b[:runs] for _, b, _ in tasks]).T
        latency, n_rounds = _latency_iqm([c for _, _, c in tasks])
        out.append(
            Aggregate(
                target,
                label,
                len(tasks),
                runs,
                iqm_interval(x),
                improvement_interval(x, y),
                latency,
                n_rounds,
            )
        )
    return out


def _latency_iqm(cs: list[Comparison]) -> tuple[Estimate | None, int]:
    ratios = []
    for c in cs:
        if c.row.session_id is None or c.row.session_id != c.base.session_id:
            return None, 0
        mine = dict(zip(c.row.round_ids, c.row.round_p50_us, strict=False))
        base = dict(zip(c.base.round_ids, c.base.round_p50_us, strict=False))
        rounds = sorted(r for r in set(mine) & set(base) if mine[r] > 0 and base[r] > 0)
        if len(rounds) < 2:
            return None, 0
        ratios.append([mine[r] / base[r] for r in rounds])
    n = min(len(r) for r in ratios)
    return iqm_interval(np.array([r[:n] for r in ratios]).T), n


def fmt(e: Estimate | None, scale: float = 1.0, digits: int = 1) -> str:
    if e is None or not math.isfinite(e.value):
        return "–"
    return f"{e.value * scale:.{digits}f} [{e.low * scale:.{digits}f}, {e.high * scale:.{digits}f}]"


def aggregate_record(a: Aggregate) -> dict[str, object]:
    def est(e: Estimate | None) -> dict[str, float] | None:
        return None if e is None else {"value": e.value, "ci95": [e.low, e.high]}

    return {
        "target": a.target,
        "variant": a.variant,
        "n_policies": a.n_policies,
        "episodes_per_policy": a.runs,
        "return_iqm_fraction_of_baseline": est(a.return_iqm),
        "probability_of_improvement": est(a.improvement),
        "latency_ratio_iqm": est(a.latency_iqm),
        "rounds_per_policy": a.latency_rounds,
        "method": "rliable IQM and probability of improvement, stratified bootstrap 95 % percentile CIs",
    }
