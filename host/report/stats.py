"""A variant against its baseline: which baseline (pairing), and every comparison a report shows.

**Pairing.** A variant is compared only with its baseline measured on the same target fingerprint, under the
same settings key and the same agent runtime (ONNX Runtime, MuJoCo and Gymnasium versions, execution
provider). Timing-like figures (p50, p99, model memory, energy) are compared only within one deploy
session, round against round (see :mod:`host.decision`); rows from before sessions, or from different
sessions, get "undecided", never a p-value over episodes. File size is exact and needs no session.

**Return.** Paired by seed, non-inferiority at 90 % (:func:`host.decision.non_inferiority`); the study's
rule on means is kept beside it, labelled as the study's. The two-sided "better / worse / no significant
difference" mark on returns is Welch's test, for the tables' marks only: nothing is decided by it.

**Multiplicity.** Holm's correction across the variants of one baseline, per objective.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

from scipy import special

from device_agent.contract.vocabulary import BASELINE, PRUNING_METHODS
from host.decision import (
    ALPHA,
    KEEP_FRACTION,
    NOISE_THRESHOLD,
    Change,
    Keep,
    NonInferiority,
    RatioTest,
    decide,
    decide_exact,
    holm,
    non_inferiority,
    paired_ratio,
    unsettled,
    verdict_word,
)
from host.compress.methods import METHOD_ORDER, UNKNOWN_ORDER
from host.report.rows import Moments, ReportRow, collect_rows, moments
from host.report.summary import meter_order
from host.store.results_db import ResultsDB


class Verdict(str, Enum):
    better = "better"
    worse = "worse"
    same = "no significant difference"
    too_few = "n too small"

    @property
    def mark(self) -> str:
        return {"better": "▲", "worse": "▼", "no significant difference": "=", "n too small": "?"}[self.value]


class Optimise(str, Enum):
    """What the recommendation minimises among the variants shown to keep the return."""

    latency = "latency"
    """p50 inference latency per round"""
    p99 = "p99"
    size = "size"
    """file bytes (exact)"""
    memory = "memory"
    """the worker's RSS growth when the model loaded"""
    energy = "energy"
    """net energy per inference, one meter and scope"""


OBJECTIVES = tuple(o.value for o in Optimise)
OBJECTIVE_TEXT = {
    "latency": "p50 latency",
    "p99": "p99 latency",
    "size": "file size",
    "memory": "model memory",
    "energy": "energy per inference",
}


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
    if row.method == BASELINE:
        return BASELINE
    if row.ratio is not None:
        pct = row.ratio * 100
        # the study's ratios are whole percents; a near-null one (0.4 %) must not read as "0%"
        label = f"{row.method} {pct:.0f}%" if abs(pct - round(pct)) < 1e-6 else f"{row.method} {pct:.1f}%"
        extras = [p for p in row.params.split(", ") if p and not p.startswith("ratio=")]
    else:
        parts = [p for p in row.params.split(", ") if p]
        label = row.method + (" fp32-1st" if "fp32_first_layer" in parts else "")
        defaults = {"fp32_first_layer", "per_channel", "calibration=minmax", "mode=distill"}
        extras = [p for p in parts if p not in defaults]
    return label + (f" ({', '.join(extras)})" if extras else "")


def label_sort_key(label: str) -> tuple:
    method, _, rest = label.partition(" ")
    number = rest.split("%")[0] if rest and rest[0].isdigit() else ""
    return (METHOD_ORDER.get(method, UNKNOWN_ORDER), float(number) if number else -1.0, rest)


@dataclass(frozen=True)
class MetricComparison:
    """One objective of a variant against its baseline: effect, CI, p, Holm-adjusted p and the verdict."""

    objective: str
    ratio: float
    """Variant / baseline: the 20 % trimmed geometric mean of per-round ratios when tested, else the plain ratio
    of the figures."""
    low: float
    high: float
    """Two-sided 95 % CI of the ratio (NaN without a test)."""
    p: float
    p_adjusted: float
    """Holm-adjusted across the variants of the baseline (NaN without a test)."""
    n: int
    """Paired rounds the test used (0: exact or none)."""
    change: Change
    why: str
    meter: str | None = None
    """Energy only: the meter (and scope) both figures come from."""

    @property
    def verdict(self) -> str:
        """The verdict word: faster/slower, smaller/larger, less/more energy, within noise, undecided, not compared."""
        return verdict_word(self.objective, self.change)


@dataclass(frozen=True)
class Comparison:
    """A row (variant or the baseline itself) against its baseline on the same target."""

    row: ReportRow
    base: ReportRow
    label: str
    return_ci: Interval
    pct: Interval
    """Mean return as a % of the baseline's, with its two-sided 95 % Fieller CI (NaN for a non-positive baseline)."""
    return_test: Welch | None
    verdict: Verdict
    """Welch's two-sided mark on returns (tables only; nothing is decided by it)."""
    keep: NonInferiority
    latency_ci: Interval
    """Mean over episodes of the per-episode p50 latency, µs (display only)."""
    metrics: dict[str, MetricComparison] = field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        return self.row.sha256 == self.base.sha256

    @property
    def keeps_return(self) -> bool:
        """Shown to keep >= 90 % (non-inferiority); the baseline keeps its own."""
        return self.is_baseline or self.keep.verdict is Keep.keeps

    @property
    def keeps_by_mean(self) -> bool:
        """The study's own rule: the mean return is >= 90 % of the baseline's (no test)."""
        return self.is_baseline or self.keep.by_mean

    @property
    def latency(self) -> MetricComparison:
        return self.metrics["latency"]

    @property
    def latency_ratio(self) -> float:
        return self.metrics["latency"].ratio

    @property
    def energy_ratio(self) -> float | None:
        m = self.metrics["energy"]
        return None if m.change is Change.not_compared else m.ratio

    @property
    def memory_ratio(self) -> float:
        """Peak RSS of the worker, variant / baseline."""
        return _ratio(self.row.peak_rss_mb, self.base.peak_rss_mb)

    @property
    def model_mb_ratio(self) -> float:
        return self.metrics["memory"].ratio

    @property
    def file_ratio(self) -> float:
        return self.metrics["size"].ratio


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


@dataclass(frozen=True)
class _Raw:
    """A metric before Holm's correction: its test (or why there is none) and its plain ratio."""

    test: RatioTest | None
    plain: float
    why: str | None = None
    """Set when the metric cannot be tested at all: the verdict is then undecided or not compared."""
    not_compared: bool = False
    meter: str | None = None


def _rounds(row: ReportRow, values: tuple[float, ...]) -> dict[int, float]:
    return dict(zip(row.round_ids, values, strict=False))


def _session_problem(row: ReportRow, base: ReportRow) -> str | None:
    if row.session_id is None or base.session_id is None:
        return "measured before deploy sessions: no rounds to compare (deploy again)"
    if row.session_id != base.session_id:
        return "not measured in the same session as its baseline (deploy them together)"
    return None


def _paired_rounds(row: ReportRow, base: ReportRow, values: str) -> list[tuple[float, float]]:
    """(variant, baseline) per round timed in one worker process (a paired latency phase against this baseline)."""
    col = {"round_p50_us": 2, "round_p99_us": 3}.get(values)
    if col is None:
        return []  # memory is the job's own model's, taken before the reference is loaded: not a paired figure
    own = _rounds(row, getattr(row, values))
    return [
        (own[entry[0]], float(entry[col]))
        for entry in row.round_paired
        if entry[1] == base.sha256 and entry[0] in own
    ]


ROUND_0_ONLY = (
    "timed in round 0 only: it falls short on return, and a deploy's later rounds time the variants that can "
    "still be recommended (deploy --later-rounds all times every variant)"
)


def _raw_timing(row: ReportRow, base: ReportRow, values: str, plain: float) -> _Raw:
    """Per-round ratios to the baseline: from paired rounds (both models timed in the same worker, alternating)
    when the session has them, else from the two models' rounds in separate workers (sessions before pairing)."""
    problem = _session_problem(row, base)
    if problem is not None:
        return _Raw(None, plain, problem)
    paired = _paired_rounds(row, base, values)
    if paired:
        test = paired_ratio([p[0] for p in paired], [p[1] for p in paired])
        return _Raw(test, test.ratio if test else plain)
    v, b = _rounds(row, getattr(row, values)), _rounds(base, getattr(base, values))
    if set(row.round_ids) <= {0} and set(base.round_ids) - {0}:
        # compare round 0 with round 0: a later round's job is another kind of job (latency only, and the
        # model's session is the worker's first, so its memory figure includes ONNX Runtime's start-up)
        ratio0 = _ratio(v.get(0), b.get(0))
        return _Raw(None, ratio0 if math.isfinite(ratio0) else plain, ROUND_0_ONLY)
    common = sorted(set(v) & set(b))
    test = paired_ratio([v[r] for r in common], [b[r] for r in common])
    return _Raw(test, test.ratio if test else plain)


def _raw_energy(row: ReportRow, base: ReportRow) -> _Raw:
    """Per-round net J per inference of one meter (and scope) that measured both; never two meters mixed."""
    mine: dict[str, dict[int, float]] = {}
    theirs: dict[str, dict[int, float]] = {}
    for r, meter, value in row.round_energy:
        mine.setdefault(meter, {})[r] = value
    for r, meter, value in base.round_energy:
        theirs.setdefault(meter, {})[r] = value
    if not mine or not theirs:
        return _Raw(
            None,
            math.nan,
            "no usable energy reading on "
            + ("both" if not mine and not theirs else ("the variant" if not mine else "the baseline")),
            not_compared=True,
        )
    common = [m for m in mine if m in theirs]
    if not common:
        return _Raw(
            None,
            math.nan,
            f"different meters (variant: {', '.join(mine)}; baseline: {', '.join(theirs)}): not comparable",
            not_compared=True,
        )
    order = meter_order(row.execution_provider)
    meter = min(
        common, key=lambda m: order.index(m.split(":")[0]) if m.split(":")[0] in order else len(order)
    )
    plain = _ratio(_median(mine[meter].values()), _median(theirs[meter].values()))
    problem = _session_problem(row, base)
    if problem is not None:
        return _Raw(None, plain, problem, meter=meter)
    rounds = sorted(set(mine[meter]) & set(theirs[meter]))
    test = paired_ratio([mine[meter][r] for r in rounds], [theirs[meter][r] for r in rounds])
    return _Raw(test, test.ratio if test else plain, meter=meter)


def _median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return math.nan
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _raw_metrics(row: ReportRow, base: ReportRow) -> dict[str, _Raw]:
    return {
        "latency": _raw_timing(row, base, "round_p50_us", _ratio(row.latency_p50_us, base.latency_p50_us)),
        "p99": _raw_timing(row, base, "round_p99_us", _ratio(row.latency_p99_us, base.latency_p99_us)),
        "memory": _raw_timing(row, base, "round_model_mb", _ratio(row.model_rss_mb, base.model_rss_mb)),
        "energy": _raw_energy(row, base),
    }


def _finish(objective: str, raw: _Raw, p_adjusted: float, threshold: float) -> MetricComparison:
    t = raw.test
    if raw.not_compared:
        change, why = Change.not_compared, raw.why or ""
    elif t is None and raw.why is not None:
        change, why = Change.undecided, raw.why
    else:
        change, why = decide(t, p_adjusted, threshold)
    return MetricComparison(
        objective,
        raw.plain,
        t.low if t else math.nan,
        t.high if t else math.nan,
        t.p if t else math.nan,
        p_adjusted,
        t.n if t else 0,
        change,
        why,
        raw.meter,
    )


def _same(objective: str, ratio: float = 1.0) -> MetricComparison:
    return MetricComparison(
        objective,
        ratio,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        0,
        Change.within_noise,
        "the baseline itself",
    )


def compare(row: ReportRow, base: ReportRow, threshold: float = NOISE_THRESHOLD) -> Comparison:
    """One variant against its baseline, alone (no multiplicity: Holm over a family of one)."""
    return _compare_group([row], base, threshold)[0]


def _compare_group(rows: Sequence[ReportRow], base: ReportRow, threshold: float) -> list[Comparison]:
    """Every row of one baseline's family against it, with Holm's correction across the variants."""
    positive = base.return_mean > 0
    raws = [None if r.sha256 == base.sha256 else _raw_metrics(r, base) for r in rows]
    adjusted: dict[str, list[float]] = {}
    for objective in ("latency", "p99", "memory", "energy"):
        ps = [
            math.nan if raw is None or raw[objective].test is None else raw[objective].test.p for raw in raws
        ]
        adjusted[objective] = holm(ps)
    base_seeds = dict(zip(base.seeds, base.returns, strict=False)) if base.seeds else None
    out = []
    for i, (row, raw) in enumerate(zip(rows, raws, strict=True)):
        is_base = raw is None
        size_ratio = _ratio(row.file_kb, base.file_kb)
        if is_base:
            metrics = {o: _same(o) for o in ("latency", "p99", "memory", "energy", "size")}
            keep = (
                non_inferiority(list(row.returns), list(row.returns))
                if row.returns
                else non_inferiority([], [])
            )
        else:
            metrics = {o: _finish(o, raw[o], adjusted[o][i], threshold) for o in raw}
            change, why = decide_exact(size_ratio, threshold)
            metrics["size"] = MetricComparison(
                "size", size_ratio, math.nan, math.nan, math.nan, math.nan, 0, change, why
            )
            mine = dict(zip(row.seeds, row.returns, strict=False)) if row.seeds else None
            if mine is not None and base_seeds is not None:
                keep = non_inferiority(mine, base_seeds)
            else:
                keep = non_inferiority(list(row.returns), list(base.returns))
        if is_base:
            pct = Interval(100.0, math.nan, math.nan) if positive else NAN_INTERVAL
        elif positive and math.isfinite(keep.ratio):
            pct = Interval(100 * keep.ratio, 100 * keep.ci95[0], 100 * keep.ci95[1])
        else:
            pct = NAN_INTERVAL
        return_test = None if is_base else welch(row.returns, base.returns)
        latency_ci = (
            mean_ci(row.latency_samples_us)
            if row.latency_samples_us
            else Interval(row.latency_p50_us, math.nan, math.nan)
        )
        out.append(
            Comparison(
                row=row,
                base=base,
                label=variant_label(row),
                return_ci=Interval(row.return_mean, row.return_ci95_low, row.return_ci95_high),
                pct=pct,
                return_test=return_test,
                verdict=Verdict.same if is_base else _verdict(return_test),
                keep=keep,
                latency_ci=latency_ci,
                metrics=metrics,
            )
        )
    return out


def pair_key(row: ReportRow) -> tuple[str, str, str, str]:
    """What a variant must share with its baseline to be compared at all."""
    return (row.target, row.target_fingerprint, row.settings_key, row.runtime_key)


def compare_all(rows: Iterable[ReportRow], threshold: float = NOISE_THRESHOLD) -> list[Comparison]:
    """Every row whose baseline was measured under the same :func:`pair_key`, compared with it (baselines too),
    in the rows' order; Holm's correction runs across the variants of each baseline. A report compares once,
    in :func:`host.report.analysis.analyse`, and hands the result to every renderer."""
    rows = list(rows)
    bases = {(*pair_key(r), r.sha256): r for r in rows if r.method == BASELINE}
    families: dict[tuple, list[ReportRow]] = {}
    for row in rows:
        key = (*pair_key(row), row.baseline_sha256)
        if key in bases:
            families.setdefault(key, []).append(row)
    done: dict[int, Comparison] = {}
    for key, family in families.items():
        for row, c in zip(family, _compare_group(family, bases[key], threshold), strict=True):
            done[id(row)] = c
    return [done[id(r)] for r in rows if id(r) in done]


def unsettled_latency(
    comparisons: Iterable[Comparison], threshold: float = NOISE_THRESHOLD
) -> dict[str, str]:
    """sha256 -> why, for every variant whose latency verdict more paired rounds could settle
    (:func:`host.decision.unsettled`): what a deploy's extra rounds time (``--max-rounds``)."""
    out: dict[str, str] = {}
    for c in comparisons:
        t = c.latency
        why = None if c.is_baseline else unsettled(t.change, t.low, t.high, t.n, threshold)
        if why is not None:
            out[c.row.sha256] = f"{why} after {t.n} rounds"
    return out


def session_unsettled(db: ResultsDB, session_id: str, threshold: float = NOISE_THRESHOLD) -> dict[str, str]:
    """:func:`unsettled_latency` over one deploy session's rows, judged as the report judges them: the deploy
    asks this between its extra rounds (host.measure.deploy cannot import the report, so the CLI and the study
    hand it this function)."""
    return unsettled_latency(compare_all(collect_rows(db, session_id), threshold), threshold)


def group(comparisons: Iterable[Comparison]) -> dict[tuple[str, str], list[Comparison]]:
    """By (target, baseline key), in report order. The baseline key is its sha256, joined with its
    fingerprint, settings and runtime when it was measured more than one way."""
    out: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        b = c.base
        out.setdefault((b.target, "|".join((b.sha256, *pair_key(b)[1:]))), []).append(c)
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
    """Per pruning method: the highest ratio shown to keep >= 90 % of the return (non-inferiority); None: none."""


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
