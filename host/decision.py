"""The rules behind every verdict drlc signs: numbers in, verdicts out (no report rows, no database).

Two questions, answered with different tools because the data differ:

- **Is a variant faster (smaller, leaner) than its baseline?** The unit is the *round*: per round, one
  fresh worker per model measured in the same session, so drift between rounds hits both alike and
  the per-round ratio ``variant / baseline`` cancels it. Whether it changed is Student's paired t on
  the log of those ratios (exact for log-normal noise, and a ratio is what an engineer reads); how
  much, with its 95 % CI, is their 20 % trimmed mean (Tukey–McLaughlin), so one wild round cannot
  move a verdict. A change inside the practical noise threshold (default ±5 %, Criterion.rs's idea)
  is **within noise** whatever its p-value; outside it the change must also be significant after
  Holm's correction across the variants of one baseline. Holm, not Benjamini–Hochberg: it bounds the
  chance of *any* false "faster"/"slower" in a sweep (family-wise error), which is what a signed
  recommendation needs and what the null-sweep test checks; BH only bounds the share of false ones.
- **Does a variant keep the return?** Episodes of a variant and its baseline share seeds, so they are
  compared paired (per-seed). The ratio ``mean(variant) / mean(baseline)`` gets Fieller's confidence
  limits — the set of θ for which the paired differences ``v_i − θ·b_i`` have mean zero by a t-test —
  which, unlike the delta method, are exact for normal data and honest (unbounded) when the
  baseline's mean is itself uncertain. A variant **keeps** the return when the one-sided 95 % lower
  limit is ≥ 90 % (non-inferiority), **falls short** when the one-sided 95 % upper limit is < 90 %,
  and is **undecided** otherwise, with an estimate of how many more episodes would decide it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import special

ALPHA = 0.05
"""Significance level of every test (after correction) and 1 − coverage of every one-sided bound."""
NOISE_THRESHOLD = 0.05
"""Default practical threshold: a ratio within 1 ± this is "within noise" whatever its p-value."""
KEEP_FRACTION = 0.9
"""The non-inferiority margin: a variant keeps the return while it keeps >= 90 % of the baseline's."""
MIN_ROUNDS = 3
"""Fewest paired rounds a timing verdict is made from (two rounds give a t-test with one degree of freedom)."""
MIN_EPISODES = 2
"""Fewest episodes (pairs, when paired) a return verdict is made from."""


def t_quantile(q: float, df: float) -> float:
    return float(special.stdtrit(df, q)) if df > 0 else math.nan


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    return float(special.stdtr(df, -t))


# ---------------------------------------------------------------------------------------------
# Multiplicity
# ---------------------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; NaN (no test) stays NaN and does not count in the family.

    Adjusted p_(i) = max over j <= i of min(1, (m − j + 1) · p_(j)) for the sorted p-values, so
    "adjusted p < α" rejects exactly what Holm's procedure at level α rejects.
    """
    out = [math.nan] * len(pvalues)
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m, running = len(tested), 0.0
    for k, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


# ---------------------------------------------------------------------------------------------
# Timing-like metrics over rounds
# ---------------------------------------------------------------------------------------------


class Change(str, Enum):
    """What a metric's comparison found; :data:`WORDS` turns lower/higher into the metric's words."""

    lower = "lower"
    higher = "higher"
    within_noise = "within noise"
    undecided = "undecided"
    not_compared = "not compared"


WORDS: dict[str, tuple[str, str]] = {
    "latency": ("faster", "slower"),
    "p99": ("faster", "slower"),
    "size": ("smaller", "larger"),
    "memory": ("smaller", "larger"),
    "energy": ("less energy", "more energy"),
}
"""Per objective, the verdict words for a significantly lower and a significantly higher value."""


def verdict_word(objective: str, change: Change) -> str:
    if change is Change.lower:
        return WORDS[objective][0]
    if change is Change.higher:
        return WORDS[objective][1]
    return change.value


TRIM = 0.2
"""Share of rounds trimmed from each end of the sorted log ratios for the effect and its CI (Tukey–McLaughlin)."""


@dataclass(frozen=True)
class RatioTest:
    """A variant's per-round log ratios to its baseline: a robust effect with its CI, and Student's p."""

    n: int
    ratio: float
    """Geometric mean of the per-round ratios, 20 % trimmed at each end."""
    low: float
    high: float
    """Two-sided 95 % CI of that ratio (trimmed t)."""
    p: float
    """Two-sided p of "no change": Student's paired t over every round."""


def paired_ratio(variant: Sequence[float], baseline: Sequence[float], trim: float = TRIM) -> RatioTest | None:
    """The test on aligned per-round values; pairs with a non-positive or missing value are dropped.

    Two jobs, two tools. Whether there is a change at all (the p-value Holm corrects) is Student's paired t
    on the log ratios of every round: exact for normal noise, so the family-wise error rate holds; the
    trimmed t's tails are about twice too light at these sample sizes (simulated: 0.27 % instead of 0.15 %
    below α/34), which Holm would turn into a 9 % false-call rate. How large the change is, and so which
    side of the noise threshold it lies on, is the 20 % trimmed mean with Tukey and McLaughlin's CI
    (winsorized variance, ``n − 2g − 1`` degrees of freedom, ``g = floor(trim · n)`` rounds dropped at each
    end): one wild round in ten (seen here: a round at 1.34× among rounds at 0.98–1.02×, not flagged by the
    validity checks) widens Student's CI sevenfold and turns a near-null variant "undecided", but does not
    move the trimmed one. Under five rounds nothing is trimmed and both are Student's; with five, one round
    at each end.

    None with fewer than two usable pairs. Zero spread leaves no doubt: p = 0 when the change is not 0, else 1.
    """
    v = np.asarray(variant, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(b) & (v > 0) & (b > 0)
    d = np.sort(np.log(v[ok]) - np.log(b[ok]))
    n = int(d.size)
    if n < 2:
        return None
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    p = 1.0 if mean == 0 else 0.0
    if sd > 0:
        p = min(2 * t_sf(abs(mean) / (sd / math.sqrt(n)), n - 1), 1.0)
    g = math.floor(trim * n)
    kept = n - 2 * g
    center = float(d[g : n - g].mean())
    se = float(np.clip(d, d[g], d[n - g - 1]).std(ddof=1)) / ((kept / n) * math.sqrt(n))
    # the kept rounds agree exactly but the trimmed ones do not: no narrower than Student's
    if se == 0.0 and sd > 0:
        kept, center, se = n, mean, sd / math.sqrt(n)
    half = t_quantile(0.975, kept - 1) * se if se > 0 else 0.0
    return RatioTest(n, math.exp(center), math.exp(center - half), math.exp(center + half), p)


def decide(
    test: RatioTest | None,
    p_adjusted: float,
    threshold: float = NOISE_THRESHOLD,
    min_rounds: int = MIN_ROUNDS,
) -> tuple[Change, str]:
    """The verdict on a ratio test, and why in words.

    - fewer than ``min_rounds`` paired rounds: undecided;
    - ``|ratio − 1| <= threshold``: within noise, whatever the p-value;
    - beyond the threshold and Holm-adjusted p < α: lower / higher;
    - beyond the threshold but not significant: undecided (a change that large is not excluded).

    The side of the threshold is the (trimmed) point estimate's. Taking a side only when the whole CI is
    there (Criterion.rs's rule) was tried and measured: it settles a change sitting exactly on the
    threshold, but on this VM's real round noise (1-3 % per round, a wild round in ten) it made more
    verdicts flip between two deploys, not fewer, and turned a near-null variant "undecided" in 3 of 10
    deploys. So the why says when the CI reaches across the threshold: the reader sees the verdict is
    on the edge.
    """
    n = 0 if test is None else test.n
    if test is None or n < min_rounds:
        return Change.undecided, f"{n} paired round{'s' if n != 1 else ''}; at least {min_rounds} needed"
    change = test.ratio - 1
    ci = f"[95 % CI {test.low - 1:+.1%}, {test.high - 1:+.1%}]"
    crossed = [bound for bound in (1 - threshold, 1 + threshold) if test.low < bound < test.high]
    edge = ""
    if len(crossed) == 2:
        edge = f"; the CI spans the whole ±{threshold:.0%} band"
    elif crossed:
        edge = f"; on the edge (CI crosses ±{threshold:.0%})"
    if abs(change) <= threshold:
        return Change.within_noise, f"{change:+.1%} {ci} is within the ±{threshold:.0%} noise threshold{edge}"
    if p_adjusted < ALPHA:
        return (
            Change.lower if change < 0 else Change.higher,
            f"{change:+.1%} {ci}, Holm-adjusted {fmt_p(p_adjusted)}{edge}",
        )
    # Student's p runs over every round: one wild round can leave a clear trimmed effect unproven
    return (
        Change.undecided,
        f"{change:+.1%} {ci} but not significant after Holm's correction ({fmt_p(p_adjusted)}, {n} rounds, "
        "the test counts every round, wild ones too): more rounds would decide",
    )


def unsettled(
    change: Change, low: float, high: float, n: int, threshold: float = NOISE_THRESHOLD
) -> str | None:
    """Why more paired rounds could settle a timing verdict, or None when they would not change it.

    Two cases: the verdict is *undecided* (beyond the threshold but not significant, or too few rounds), or
    its CI reaches across ±threshold, so the point estimate, and with it the verdict, can land on the other
    side in another deploy. Measured on SAC HalfCheetah's sweep (eight deploys, ten paired rounds each): the
    same variant's ratio moved 0.3-1.8 % from one deploy to the next, about what its CI said, so the
    variants whose verdicts differed between two deploys were exactly those within a CI of ±5 %. Rounds shrink that band as 1/sqrt(n).
    Only a tested verdict (``n`` paired rounds, ``n > 0``) can be settled by more rounds: a variant timed in
    round 0 alone, or not in its baseline's session, needs another kind of deploy."""
    if n <= 0:
        return None
    if change is Change.undecided:
        return "undecided"
    crossed = [f"{bound - 1:+.0%}" for bound in (1 - threshold, 1 + threshold) if low < bound < high]
    if crossed:
        return f"CI crosses {' and '.join(crossed)}"
    return None


def decide_exact(ratio: float, threshold: float = NOISE_THRESHOLD) -> tuple[Change, str]:
    """A deterministic figure (file bytes): no test, only the threshold."""
    if not math.isfinite(ratio):
        return Change.not_compared, "not measured on both"
    change = ratio - 1
    if abs(change) <= threshold:
        return Change.within_noise, f"{change:+.1%} is within the ±{threshold:.0%} threshold"
    return (Change.lower if change < 0 else Change.higher), f"{change:+.1%} (exact: file bytes, no test)"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "no test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# ---------------------------------------------------------------------------------------------
# Non-inferiority of the return
# ---------------------------------------------------------------------------------------------


class Keep(str, Enum):
    keeps = "keeps"
    falls_short = "falls short"
    undecided = "undecided"


@dataclass(frozen=True)
class NonInferiority:
    verdict: Keep
    n: int
    """Pairs of episodes (paired) or the smaller side's episodes (unpaired)."""
    paired: bool
    ratio: float
    """mean(variant) / mean(baseline) over the episodes used; NaN for a non-positive baseline mean."""
    low: float
    high: float
    """One-sided 95 % lower and upper limits of the ratio (Fieller); NaN when unbounded."""
    ci95: tuple[float, float]
    """Two-sided 95 % Fieller interval of the ratio, for display."""
    p: float
    """One-sided p of "the variant keeps less than the margin" (small: it keeps)."""
    more_episodes: int | None
    """Estimated extra episodes (pairs) that would decide an undecided verdict; None when decided or hopeless."""
    by_mean: bool
    """The study's own rule on means: mean(variant) >= 90 % of mean(baseline) (no test)."""
    reason: str
    on_difference: bool = False
    """The baseline's mean return is not positive: the margin is 10 % of its magnitude, on the difference."""


@dataclass(frozen=True)
class _Sample:
    mv: float
    mb: float
    svv: float
    sbb: float
    svb: float
    nv: int
    nb: int
    paired: bool


def _sample(v: np.ndarray, b: np.ndarray, paired: bool) -> _Sample:
    """Means and unbiased (co)variances; plain dot products, as a report computes thousands of these."""
    mv, mb = float(v.mean()), float(b.mean())
    dv, db = v - mv, b - mb
    svv, sbb = float(dv @ dv) / (v.size - 1), float(db @ db) / (b.size - 1)
    svb = float(dv @ db) / (v.size - 1) if paired else 0.0
    return _Sample(mv, mb, svv, sbb, svb, v.size, b.size, paired)


def _var_of_diff(s: _Sample, theta: float) -> float:
    """Variance of the estimate mean(v) − θ·mean(b)."""
    if s.paired:
        return max((s.svv - 2 * theta * s.svb + theta**2 * s.sbb) / s.nv, 0.0)
    return s.svv / s.nv + theta**2 * s.sbb / s.nb


def _df(s: _Sample, theta: float) -> float:
    if s.paired:
        return s.nv - 1
    a, b = s.svv / s.nv, theta**2 * s.sbb / s.nb
    if a + b == 0:
        return float(s.nv + s.nb - 2)
    return (a + b) ** 2 / ((a**2 / (s.nv - 1) if a else 0.0) + (b**2 / (s.nb - 1) if b else 0.0))


def fieller(s: _Sample, q: float) -> tuple[float, float]:
    """{θ : (mv − θ mb)² <= q² · Var(mv − θ mb)}; (NaN, NaN) when that set is not a bounded interval."""
    wv, wb = (s.svv / s.nv, s.sbb / (s.nv if s.paired else s.nb))
    wvb = s.svb / s.nv if s.paired else 0.0
    a = s.mb**2 - q**2 * wb
    bq = -2 * (s.mv * s.mb - q**2 * wvb)
    c = s.mv**2 - q**2 * wv
    disc = bq**2 - 4 * a * c
    if a <= 0 or disc < 0:
        return math.nan, math.nan
    root = math.sqrt(disc)
    return (-bq - root) / (2 * a), (-bq + root) / (2 * a)


def non_inferiority(
    variant: dict[int, float] | Sequence[float],
    baseline: dict[int, float] | Sequence[float],
    margin: float = KEEP_FRACTION,
) -> NonInferiority:
    """Does the variant keep ``margin`` of the baseline's return? Paired by seed when both are dicts
    ``seed -> return`` sharing at least two seeds; otherwise unpaired (Welch–Fieller)."""
    if isinstance(variant, dict) and isinstance(baseline, dict):
        common = sorted(set(variant) & set(baseline))
        all_v = np.asarray(list(variant.values()), dtype=np.float64)
        all_b = np.asarray(list(baseline.values()), dtype=np.float64)
        paired = len(common) >= MIN_EPISODES
        if paired:
            v = np.asarray([variant[k] for k in common], dtype=np.float64)
            b = np.asarray([baseline[k] for k in common], dtype=np.float64)
        else:
            v, b = all_v, all_b
    else:
        v = all_v = np.asarray(list(variant), dtype=np.float64)
        b = all_b = np.asarray(list(baseline), dtype=np.float64)
        paired = False
    by_mean = bool(
        all_v.size
        and all_b.size
        and all_v.mean()
        >= (margin * all_b.mean() if all_b.mean() > 0 else all_b.mean() - (1 - margin) * abs(all_b.mean()))
    )
    n = min(v.size, b.size)
    if n < MIN_EPISODES:
        ratio = (
            float(all_v.mean() / all_b.mean()) if all_v.size and all_b.size and all_b.mean() > 0 else math.nan
        )
        return NonInferiority(
            Keep.undecided, n, paired, ratio, math.nan, math.nan, (math.nan, math.nan), math.nan, None, by_mean,
            f"{n} episode{'s' if n != 1 else ''}: at least {MIN_EPISODES} needed for a test",
        )  # fmt: skip
    s = _sample(v, b, paired)
    if s.mb <= 0:
        return _on_difference(s, margin, by_mean)
    ratio = s.mv / s.mb
    var_m = _var_of_diff(s, margin)
    df = _df(s, margin)
    delta = s.mv - margin * s.mb
    if var_m == 0:
        p = 0.0 if delta > 0 else 1.0
    else:
        p = t_sf(delta / math.sqrt(var_m), df)
    low, high = fieller(s, t_quantile(1 - ALPHA, _df(s, ratio)))
    ci95 = fieller(s, t_quantile(0.975, _df(s, ratio)))
    pct = f"{ratio:.1%} of the baseline's return"
    bounds = f"one-sided 95 % limits [{low:.1%}, {high:.1%}]" if math.isfinite(low) else "limits unbounded"
    how = f"{n} {'paired' if paired else 'unpaired'} episodes"
    if math.isfinite(low) and low >= margin:
        return NonInferiority(
            Keep.keeps, n, paired, ratio, low, high, ci95, p, None, by_mean,
            f"{pct}, lower limit {low:.1%} >= {margin:.0%} ({how})",
        )  # fmt: skip
    if math.isfinite(high) and high < margin:
        return NonInferiority(
            Keep.falls_short, n, paired, ratio, low, high, ci95, p, None, by_mean,
            f"{pct}, upper limit {high:.1%} < {margin:.0%} ({how})",
        )  # fmt: skip
    more = more_episodes(s, margin)
    hint = (
        f"about {more} more episodes would decide it (estimate, if mean and spread hold)"
        if more is not None
        else "it sits at the margin: more episodes are unlikely to decide it"
    )
    return NonInferiority(
        Keep.undecided,
        n,
        paired,
        ratio,
        low,
        high,
        ci95,
        p,
        more,
        by_mean,
        f"{pct}, {bounds} ({how}); {hint}",
    )


MAX_MORE_EPISODES = 100_000
"""Beyond this the estimate says "unlikely to decide" rather than a number nobody will run."""


def more_episodes(s: _Sample, margin: float) -> int | None:
    """Estimated extra episodes (pairs when paired, per side otherwise) for the one-sided 95 % limit to
    clear the margin, if the observed mean and spread hold: n = (z_0.95 · sd / |mean − margin·base|)²,
    the normal-approximation sample size of a one-sided test (power 50 % at the observed effect)."""
    delta = abs(s.mv - margin * s.mb)
    if s.paired:
        per_episode = s.svv - 2 * margin * s.svb + margin**2 * s.sbb
    else:
        per_episode = s.svv + margin**2 * s.sbb
    if delta == 0 or per_episode <= 0:
        return None
    z = float(special.ndtri(1 - ALPHA))
    total = math.ceil((z**2) * per_episode / delta**2)
    more = max(total - min(s.nv, s.nb), 1)
    return more if more <= MAX_MORE_EPISODES else None


def _on_difference(s: _Sample, margin: float, by_mean: bool) -> NonInferiority:
    """A baseline whose mean return is not positive: "90 % of it" means nothing; the variant keeps the return
    when mean(v − b) is shown >= −10 % of |mean(b)|."""
    allowance = (1 - margin) * abs(s.mb)
    diff = s.mv - s.mb
    se = math.sqrt(_var_of_diff(s, 1.0))
    df = _df(s, 1.0)
    q = t_quantile(1 - ALPHA, df)
    low, high = diff - q * se, diff + q * se
    p = (0.0 if diff + allowance > 0 else 1.0) if se == 0 else t_sf((diff + allowance) / se, df)
    n = min(s.nv, s.nb)
    what = f"difference {diff:+.1f} (one-sided 95 % limits [{low:+.1f}, {high:+.1f}]) vs allowance −{allowance:.1f}"
    if low >= -allowance:
        verdict, reason, more = Keep.keeps, what, None
    elif high < -allowance:
        verdict, reason, more = Keep.falls_short, what, None
    else:
        shifted = _Sample(s.mv + allowance, s.mb, s.svv, s.sbb, s.svb, s.nv, s.nb, s.paired)
        more = more_episodes(shifted, 1.0)
        verdict = Keep.undecided
        reason = what + (f"; about {more} more episodes would decide it (estimate)" if more else "")
    return NonInferiority(
        verdict, n, s.paired, math.nan, math.nan, math.nan, (math.nan, math.nan), p, more, by_mean,
        "baseline return not positive: " + reason, on_difference=True,
    )  # fmt: skip
