"""The statistics behind a report's verdicts: CIs, Welch's t-tests against the baseline, recommendations.

Every variant is compared with its own baseline on the same target. The sample units are episodes:
per-episode returns for the return, per-episode median inference latencies for the latency (the
calls within one episode are not independent draws, the episodes are; a job whose episodes ran in
parallel, untimed, contributes the medians of batches of its quiet latency phase instead). Energy and memory are one
reading per job, so they get ratios but no test, and the report says so.

- A variant is **better** or **worse** than its baseline only when Welch's two-sided t-test says so at
  5 %; otherwise there is **no significant difference**. With fewer than two episodes on either side
  there is no test (``n too small``).
- A variant **keeps the return** when its mean return is not significantly below 90 % of the
  baseline's: the one-sided Welch test of ``variant < 0.9 x baseline`` (the baseline's episodes scaled
  by 0.9) does not reject at 5 %. For a baseline whose mean return is not positive, 90 % of it is
  meaningless; there the test is against the baseline itself.
- The **recommendation** per (policy, target) is the variant with the lowest p50 latency (or energy
  per inference) among those that keep the return, provided it is significantly faster than the
  baseline (latency) or uses less energy (energy, a single reading); otherwise the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from scipy import special

from host.report import KEEP_FRACTION, PRUNING_METHODS, Moments, ReportRow, moments

ALPHA = 0.05
"""Significance level of every test in a report."""


class Verdict(str, Enum):
    better = "better"
    worse = "worse"
    same = "no significant difference"
    too_few = "n too small"

    @property
    def mark(self) -> str:
        return {"better": "▲", "worse": "▼", "no significant difference": "=", "n too small": "?"}[self.value]


class Optimise(str, Enum):
    latency = "latency"
    energy = "energy"


# ---------------------------------------------------------------------------------------------
# Tests and intervals
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Welch:
    diff: float
    """mean(a) - mean(b)"""
    t: float
    df: float
    p: float


def welch_moments(
    x: Moments, y: Moments, alternative: str = "two-sided", scale_b: float = 1.0
) -> Welch | None:
    """Welch's test from the samples' moments; see :func:`welch`."""
    if x.n < 2 or y.n < 2:
        return None
    vx, vy = x.var / x.n, y.var * scale_b**2 / y.n
    diff = x.mean - y.mean * scale_b
    se2 = vx + vy
    if se2 <= 0.0:
        hit = {"two-sided": diff != 0, "less": diff < 0, "greater": diff > 0}[alternative]
        return Welch(diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if hit else 1.0)
    t = diff / math.sqrt(se2)
    df = se2**2 / (vx**2 / (x.n - 1) + vy**2 / (y.n - 1))
    cdf = float(special.stdtr(df, t))
    p = {"two-sided": 2 * min(cdf, 1 - cdf), "less": cdf, "greater": 1 - cdf}[alternative]
    return Welch(diff, t, df, min(max(p, 0.0), 1.0))


def welch(
    a: Sequence[float], b: Sequence[float], alternative: str = "two-sided", scale_b: float = 1.0
) -> Welch | None:
    """Welch's unequal-variance t-test of mean(a) vs mean(scale_b * b); None with fewer than 2 samples a side.

    :param alternative: ``two-sided``, ``less`` (H1: mean a < mean b) or ``greater``
    Two constant samples (zero variance on both sides) give p = 0 when their means differ in the
    alternative's direction, else 1: the data leave no doubt either way.
    """
    return welch_moments(moments(tuple(a)), moments(tuple(b)), alternative, scale_b)


@lru_cache(maxsize=4096)
def t975(df: float) -> float:
    return float(special.stdtrit(df, 0.975)) if df > 0 else math.nan


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def mean_ci(values: Sequence[float]) -> Interval:
    """Mean and its Student-t 95 % CI (NaN bounds with fewer than 2 values)."""
    m = moments(tuple(values))
    if m.n == 0:
        return NAN_INTERVAL
    if m.n < 2:
        return Interval(m.mean, math.nan, math.nan)
    half = t975(m.n - 1) * math.sqrt(m.var / m.n)
    return Interval(m.mean, m.mean - half, m.mean + half)


def ratio_ci(a: Sequence[float], b: Sequence[float]) -> Interval:
    """mean(a) / mean(b) with a 95 % CI by the delta method (Welch's df); NaN when mean(b) <= 0."""
    x, y = moments(tuple(a)), moments(tuple(b))
    if x.n == 0 or y.n == 0 or y.mean <= 0:
        return NAN_INTERVAL
    r = x.mean / y.mean
    if x.n < 2 or y.n < 2:
        return Interval(r, math.nan, math.nan)
    vx, vy = x.var / x.n, y.var / y.n
    var_r = (vx + r**2 * vy) / y.mean**2
    if var_r <= 0:
        return Interval(r, r, r)
    df = (vx + vy) ** 2 / (vx**2 / (x.n - 1) + vy**2 / (y.n - 1))
    half = t975(round(df, 2)) * math.sqrt(var_r)
    return Interval(r, r - half, r + half)


# ---------------------------------------------------------------------------------------------
# A variant against its baseline
# ---------------------------------------------------------------------------------------------


def variant_label(row: ReportRow) -> str:
    """Short name of a variant that is the same for every baseline: ``ptdq fp32-1st``, ``l2 30%``."""
    if row.method == "baseline":
        return "baseline"
    if row.ratio is not None:
        label = f"{row.method} {row.ratio * 100:.0f}%"
        extras = [p for p in row.params.split(", ") if p and not p.startswith("ratio=")]
    else:
        parts = [p for p in row.params.split(", ") if p]
        label = row.method + (" fp32-1st" if "fp32_first_layer" in parts else "")
        defaults = {"fp32_first_layer", "per_channel", "calibration=minmax", "mode=distill"}
        extras = [p for p in parts if p not in defaults]
    return label + (f" ({', '.join(extras)})" if extras else "")


LABEL_ORDER = {"baseline": 0, "ptdq": 1, "ptsq": 2, "qat": 3, "l1": 4, "l2": 5}


def label_sort_key(label: str) -> tuple:
    method, _, rest = label.partition(" ")
    number = rest.split("%")[0] if rest and rest[0].isdigit() else ""
    return (LABEL_ORDER.get(method, 9), float(number) if number else -1.0, rest)


@dataclass(frozen=True)
class Comparison:
    """A row (variant or the baseline itself) against its baseline on the same target."""

    row: ReportRow
    base: ReportRow
    label: str
    return_ci: Interval
    pct: Interval
    """Mean return as a % of the baseline's, with its 95 % CI (NaN for a non-positive baseline)."""
    return_test: Welch | None
    verdict: Verdict
    keep_test: Welch | None
    """One-sided test of return < 90 % of the baseline's (of the baseline's, for a non-positive one)."""
    keeps_return: bool
    latency_ci: Interval
    """Mean over episodes of the per-episode p50 latency, µs."""
    latency_ratio: float
    latency_test: Welch | None
    latency_verdict: Verdict
    """better = significantly faster."""
    energy_ratio: float | None
    memory_ratio: float
    """Peak RSS of the worker, variant / baseline."""
    model_mb_ratio: float
    file_ratio: float

    @property
    def is_baseline(self) -> bool:
        return self.row.sha256 == self.base.sha256


def _verdict(test: Welch | None, higher_is_better: bool = True) -> Verdict:
    if test is None:
        return Verdict.too_few
    if test.p >= ALPHA or test.diff == 0:
        return Verdict.same
    return Verdict.better if (test.diff > 0) == higher_is_better else Verdict.worse


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return math.nan
    return a / b


def compare(row: ReportRow, base: ReportRow) -> Comparison:
    positive = base.return_mean > 0
    is_base = row.sha256 == base.sha256
    return_test = None if is_base else welch(row.returns, base.returns)
    keep_test = (
        None if is_base else welch(row.returns, base.returns, "less", KEEP_FRACTION if positive else 1.0)
    )
    latency_test = None if is_base else welch(row.latency_samples_us, base.latency_samples_us)
    energy = None
    if row.energy_inference_j is not None and base.energy_inference_j is not None:
        energy = _ratio(row.energy_inference_j, base.energy_inference_j)
    latency_ci = (
        mean_ci(row.latency_samples_us)
        if row.latency_samples_us
        else Interval(row.latency_p50_us, math.nan, math.nan)
    )
    if is_base:
        pct = Interval(1.0, math.nan, math.nan) if positive else NAN_INTERVAL
    else:
        pct = ratio_ci(row.returns, base.returns) if positive else NAN_INTERVAL
    if keep_test is not None:
        keeps = keep_test.p >= ALPHA
    else:  # too few episodes for a test: the study's rule on means
        keeps = is_base or row.return_mean >= (KEEP_FRACTION if positive else 1.0) * base.return_mean
    return Comparison(
        row=row,
        base=base,
        label=variant_label(row),
        return_ci=Interval(row.return_mean, row.return_ci95_low, row.return_ci95_high),
        pct=Interval(100 * pct.value, 100 * pct.low, 100 * pct.high),
        return_test=return_test,
        verdict=Verdict.same if is_base else _verdict(return_test),
        keep_test=keep_test,
        keeps_return=keeps,
        latency_ci=latency_ci,
        latency_ratio=_ratio(row.latency_p50_us, base.latency_p50_us),
        latency_test=latency_test,
        latency_verdict=Verdict.same if is_base else _verdict(latency_test, higher_is_better=False),
        energy_ratio=energy,
        memory_ratio=_ratio(row.peak_rss_mb, base.peak_rss_mb),
        model_mb_ratio=_ratio(row.model_rss_mb, base.model_rss_mb),
        file_ratio=_ratio(row.file_kb, base.file_kb),
    )


_last: tuple[Sequence[ReportRow], int, list[Comparison]] | None = None


def compare_all(rows: Iterable[ReportRow]) -> list[Comparison]:
    """Every row that has its baseline measured on the same target, compared with it (baselines too).

    The last result is kept for the same (unchanged) list of rows: writing a report in three formats
    compares once, not three times.
    """
    global _last
    if _last is not None and _last[0] is rows and _last[1] == len(_last[0]):
        return list(_last[2])
    given = rows
    rows = list(rows)
    bases = {(r.target, r.sha256): r for r in rows if r.method == "baseline"}
    out = []
    for row in rows:
        base = bases.get((row.target, row.baseline_sha256))
        if base is not None:
            out.append(compare(row, base))
    if isinstance(given, list):
        _last = (given, len(given), out)
    return list(out)


def group(comparisons: Iterable[Comparison]) -> dict[tuple[str, str], list[Comparison]]:
    """By (target, baseline sha256), in report order."""
    out: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        out.setdefault((c.row.target, c.base.sha256), []).append(c)
    return out


# ---------------------------------------------------------------------------------------------
# The study's tables and the recommendation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningLimit:
    """Table 3 of one (target, baseline): the study's rule on means, and drlc's with the test."""

    target: str
    base: ReportRow
    by_mean: tuple[tuple[str, float, float], ...]
    """(method, ratio, % of baseline) of the highest ratio keeping >= 90 % of the mean (the study's rule)."""
    by_test: dict[str, float | None]
    """Per pruning method: the highest ratio whose return is not significantly below 90 %; None: none."""


def pruning_limits(comparisons: Iterable[Comparison]) -> list[PruningLimit]:
    out = []
    for (target, _), group_ in group(comparisons).items():
        base = group_[0].base
        pruned = [c for c in group_ if c.row.method in PRUNING_METHODS and c.row.ratio is not None]
        if not pruned:
            continue
        by_mean: list[tuple[str, float, float]] = []
        if base.return_mean > 0:
            kept = [c for c in pruned if c.row.return_mean >= KEEP_FRACTION * base.return_mean]
            if kept:
                top = max(c.row.ratio for c in kept if c.row.ratio is not None)
                by_mean = [
                    (c.row.method, top, 100 * c.row.return_mean / base.return_mean)
                    for c in sorted(kept, key=lambda c: c.row.method)
                    if c.row.ratio == top
                ]
        by_test: dict[str, float | None] = {}
        for method in PRUNING_METHODS:
            ratios = [c.row.ratio for c in pruned if c.row.method == method and c.keeps_return]
            present = any(c.row.method == method for c in pruned)
            if present:
                by_test[method] = max((r for r in ratios if r is not None), default=None)
        out.append(PruningLimit(target, base, tuple(by_mean), by_test))
    return out


@dataclass(frozen=True)
class Recommendation:
    target: str
    base: ReportRow
    choice: Comparison | None
    """None: no choice can be made (energy asked for where none was measured)."""
    optimise: Optimise
    reason: str
    n_keep: int
    """Variants whose return is not significantly below 90 % of the baseline's."""


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _keep_text(c: Comparison) -> str:
    pct = f"{c.pct.value:.1f} % of the baseline's return" if math.isfinite(c.pct.value) else "return"
    if math.isfinite(c.pct.low):
        pct += f" [95 % CI {c.pct.low:.1f}, {c.pct.high:.1f}]"
    if c.keep_test is None:
        return f"{pct}; too few episodes for a test"
    return f"{pct}, not significantly below 90 % ({_fmt_p(c.keep_test.p)})"


def recommend(comparisons: Sequence[Comparison], optimise: Optimise = Optimise.latency) -> Recommendation:
    """The recommendation for one (target, baseline) group of comparisons (see the module docstring)."""
    base_c = next(c for c in comparisons if c.is_baseline)
    base = base_c.base
    target = base.target
    keep = [c for c in comparisons if not c.is_baseline and c.keeps_return]
    if len(comparisons) == 1:
        return Recommendation(
            target,
            base,
            base_c,
            optimise,
            f"no variant of it was measured on {target}: nothing to choose from",
            0,
        )
    if optimise is Optimise.energy:
        if base.energy_inference_j is None:
            return Recommendation(
                target,
                base,
                None,
                optimise,
                f"energy per inference is not measured on {target} ({base.energy}): no choice by energy; "
                "use --optimise latency, or give the device a meter",
                len(keep),
            )
        measured = [c for c in keep if c.row.energy_inference_j is not None]
        if not measured:
            return Recommendation(
                target,
                base,
                base_c,
                optimise,
                "no variant that keeps the return has an energy reading: keep the baseline",
                len(keep),
            )
        best = min(measured, key=lambda c: c.row.energy_inference_j or math.inf)
        b_e, v_e = base.energy_inference_j, best.row.energy_inference_j or math.nan
        if v_e >= b_e:
            return Recommendation(
                target,
                base,
                base_c,
                optimise,
                f"no variant that keeps the return uses less energy per inference than the baseline "
                f"({b_e * 1e6:.3g} µJ; the lowest, {best.label}, {v_e * 1e6:.3g} µJ): keep the baseline",
                len(keep),
            )
        return Recommendation(
            target,
            base,
            best,
            optimise,
            f"lowest energy per inference among {len(keep)} variants that keep the return: {v_e * 1e6:.3g} µJ vs "
            f"{b_e * 1e6:.3g} µJ for the baseline ({100 * (v_e / b_e - 1):+.0f} %; one reading each, no test); "
            + _keep_text(best),
            len(keep),
        )
    if not keep:
        return Recommendation(
            target,
            base,
            base_c,
            optimise,
            "every variant's return is significantly below 90 % of the baseline's: keep the baseline",
            0,
        )
    best = min(keep, key=lambda c: c.row.latency_p50_us if math.isfinite(c.row.latency_p50_us) else math.inf)
    lat = f"p50 {best.row.latency_p50_us:.1f} µs vs {base.latency_p50_us:.1f} µs for the baseline"
    if best.latency_verdict is not Verdict.better:
        why = (
            f"({_fmt_p(best.latency_test.p)})"
            if best.latency_test is not None
            else "(too few episodes for a test)"
        )
        return Recommendation(
            target,
            base,
            base_c,
            optimise,
            f"the fastest of the {len(keep)} variants that keep the return, {best.label}, is "
            + (
                "significantly slower than"
                if best.latency_verdict is Verdict.worse
                else "not significantly faster than"
            )
            + f" the baseline: {lat} {why}: keep the baseline",
            len(keep),
        )
    assert best.latency_test is not None  # for mypy: a "better" verdict has a test
    return Recommendation(
        target,
        base,
        best,
        optimise,
        f"lowest p50 latency among {len(keep)} variants that keep the return: {lat} "
        f"({100 * (best.latency_ratio - 1):+.0f} %, {_fmt_p(best.latency_test.p)}); " + _keep_text(best),
        len(keep),
    )


def recommendations(
    comparisons: Iterable[Comparison], optimise: Optimise = Optimise.latency
) -> list[Recommendation]:
    return [recommend(g, optimise) for g in group(comparisons).values() if any(c.is_baseline for c in g)]
