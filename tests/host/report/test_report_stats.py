"""The report's statistics: Welch's test against scipy, intervals, verdicts, the 90 % rule shown by
non-inferiority, recommendations and filters, on rows whose truth is known. (Error rates by simulation:
test_verdicts.py.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from host.report.rows import ReportFilter, ReportRow, return_stats
from host.report.summary import JobSummary
from host.report.plots import pareto_front
from host.decision import Change, Keep
from host.report.recommend import recommend
from host.report.stats import (
    Optimise,
    Verdict,
    compare,
    compare_all,
    mean_ci,
    pruning_limits,
    ratio_ci,
    variant_label,
    welch,
)

BASE_SHA = "b" * 64


def row(
    method: str = "baseline",
    returns: list[float] | None = None,
    p50s: list[float] | None = None,
    ratio: float | None = None,
    params: str = "",
    target: str = "dev",
    sha: str | None = None,
    energy_j: float | None = None,
    algo: str = "sac",
    env_id: str = "Hopper-v5",
    baseline_sha: str = BASE_SHA,
) -> ReportRow:
    returns = returns if returns is not None else [100.0, 101.0, 99.0, 100.5, 99.5]
    p50s = p50s if p50s is not None else [50.0, 51.0, 49.0, 50.5, 49.5]
    st = return_stats(tuple(returns))
    sha = sha or (baseline_sha if method == "baseline" else f"{method}{ratio}{params}".ljust(64, "0"))
    return ReportRow(
        target=target,
        model=f"m-{method}-{ratio}",
        sha256=sha,
        baseline_sha256=baseline_sha,
        algo=algo,
        env_id=env_id,
        method=method,
        ratio=ratio,
        params=params or (f"ratio={ratio}" if ratio is not None else ""),
        return_mean=st.mean,
        return_std=st.std,
        return_ci95_low=st.ci95_low,
        return_ci95_high=st.ci95_high,
        return_pct_of_baseline=None,
        n_episodes=st.n,
        latency_p50_us=float(np.median(p50s)),
        latency_p99_us=2 * float(np.median(p50s)),
        floor_p50_us=5.0,
        env_step_us=100.0,
        model_rss_mb=10.0,
        peak_rss_mb=110.0,
        file_kb=280.0 if method == "baseline" else 80.0,
        n_params=70_000,
        action_error_mean_abs=None,
        execution_provider="CPUExecutionProvider",
        energy="not measured (no meter on this device)" if energy_j is None else "nvml: ...",
        latency_p999_us=math.nan,
        deadline_misses=None,
        energy_episode_j=None,
        energy_inference_j=energy_j,
        returns=tuple(returns),
        latency_samples_us=tuple(p50s),
        session_id="s1",
        seeds=tuple(range(len(returns))),
        round_ids=tuple(range(len(p50s))),
        round_p50_us=tuple(p50s),
        round_p99_us=tuple(2 * x for x in p50s),
        round_model_mb=(10.0,) * len(p50s),
    )


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_welch_matches_scipy(alternative: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(0, 1, rng.integers(2, 15)), rng.normal(0.3, 2.5, rng.integers(2, 15))
        ours = welch(a, b, alternative)
        ref = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        assert ours is not None and ours.p == pytest.approx(ref.pvalue, abs=1e-10)
        assert ours.t == pytest.approx(ref.statistic)
    scaled = welch(a, b, "less", scale_b=0.9)
    assert scaled is not None
    assert scaled.p == pytest.approx(stats.ttest_ind(a, 0.9 * b, equal_var=False, alternative="less").pvalue)


def test_welch_edge_cases() -> None:
    assert welch([1.0], [1.0, 2.0]) is None  # no variance from one episode
    same = welch([5.0, 5.0, 5.0], [5.0, 5.0])
    assert same is not None and same.p == 1.0
    apart = welch([5.0, 5.0], [6.0, 6.0], "less")
    assert apart is not None and apart.p == 0.0  # constant samples that differ leave no doubt


def test_intervals() -> None:
    values = [10.0, 12.0, 11.0, 13.0, 9.0]
    ci = mean_ci(values)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (ci.low, ci.high) == pytest.approx(ref)
    agent = return_stats(tuple(values))
    assert agent.ci95_low == pytest.approx(ci.low, rel=1e-3)  # the agent's t table agrees
    r = ratio_ci([90.0, 91.0, 89.0], [100.0, 101.0, 99.0])
    assert r.value == pytest.approx(0.9) and r.low < 0.9 < r.high and r.high - r.low < 0.05
    assert math.isnan(ratio_ci([1.0, 2.0], [-1.0, -2.0]).value)  # a % of a negative return says nothing


def test_verdicts_and_the_90_percent_rule_shown_by_non_inferiority() -> None:
    base = row()
    clearly_worse = compare(row("ptsq", [60.0, 61.0, 59.0, 60.5, 59.5]), base)
    assert clearly_worse.verdict is Verdict.worse and clearly_worse.keep.verdict is Keep.falls_short
    assert clearly_worse.pct.value == pytest.approx(60.0, abs=0.1)
    same = compare(row("ptdq", [100.2, 99.1, 100.9, 99.8, 100.0]), base)
    assert same.verdict is Verdict.same and same.keeps_return
    # 88 % on average and noisy: no longer "keeps" (the old rule's "not shown below"); undecided, not claimed
    noisy = compare(row("l1", [60.0, 120.0, 88.0, 70.0, 102.0], ratio=0.3), base)
    assert noisy.row.return_mean < 90 and not noisy.keeps_return and noisy.keep.verdict is Keep.undecided
    assert not noisy.keeps_by_mean and noisy.verdict is Verdict.same
    # 88 % with a tight spread: shown to fall short
    tight = compare(row("l2", [88.0, 88.2, 87.8, 88.1, 87.9], ratio=0.3), base)
    assert tight.keep.verdict is Keep.falls_short and tight.verdict is Verdict.worse
    better = compare(row("qat", [110.0, 111.0, 109.0, 110.5, 109.5]), base)
    assert better.verdict is Verdict.better and better.keeps_return
    faster = compare(row("ptdq", p50s=[30.0, 31.0, 29.0, 30.5, 29.5]), base)
    assert faster.latency.change is Change.lower and faster.latency.verdict == "faster"
    assert faster.latency_ratio == pytest.approx(0.6, abs=0.01)
    one = compare(row("ptdq", [100.0]), base)
    assert one.verdict is Verdict.too_few and one.keep.verdict is Keep.undecided and one.keeps_by_mean


def test_recommendation_picks_the_fastest_variant_shown_to_keep_the_return() -> None:
    base = row()
    rows = [
        base,
        row("ptsq", [60.0, 61.0, 59.0, 60.5, 59.5], p50s=[10.0] * 5),  # fastest, but loses the return
        row("l2", [99.0, 100.0, 98.0, 99.5, 98.5], ratio=0.3, p50s=[30.0, 31.0, 29.0, 30.5, 29.5]),
        row("l2", [99.0, 100.0, 98.0, 99.5, 98.5], ratio=0.1, p50s=[40.0, 41.0, 39.0, 40.5, 39.5]),
    ]
    rec = recommend(compare_all(rows))
    assert rec.choice.label == "l2 30%" and rec.model == rows[2].model
    assert "best p50 latency of 2 variants shown to keep the return" in rec.reason
    # within the noise threshold: keep the baseline, and say why
    slow = [base, row("ptdq", [100.0, 100.5, 99.5, 100.2, 99.8], p50s=[49.0, 52.0, 48.0, 51.0, 50.0])]
    rec = recommend(compare_all(slow))
    assert rec.is_baseline and rec.model == base.model and "within noise" in rec.reason
    alone = recommend(compare_all([base]))
    assert alone.is_baseline and "no variant" in alone.reason


def test_recommendation_by_energy_says_when_energy_is_not_comparable() -> None:
    rec = recommend(compare_all([row(), row("ptdq")]), Optimise.energy)
    assert rec.is_baseline and "energy per inference is not measured on dev" in rec.reason


def test_pruning_limits_on_means_and_with_a_test() -> None:
    base = row()
    rows = [base]
    for ratio, mean in ((0.1, 97.0), (0.2, 91.0), (0.3, 86.0)):
        rows.append(row("l1", [mean - 0.5, mean, mean + 0.5, mean, mean], ratio=ratio))
        rows.append(row("l2", [mean + 1.5, mean + 2, mean + 2.5, mean + 2, mean + 2], ratio=ratio))
    (limit,) = pruning_limits(compare_all(rows))
    # the study's rule: the highest ratio whose mean keeps >= 90 % (both methods at 20 %)
    assert [(m, r) for m, r, _ in limit.by_mean] == [("l1", 0.2), ("l2", 0.2)]
    assert limit.by_test == {"l1": 0.2, "l2": 0.2}


def test_labels_and_pareto_front() -> None:
    assert variant_label(row("l2", ratio=0.3)) == "l2 30%"
    assert (
        variant_label(row("ptsq", params="fp32_first_layer, per_channel, calibration=minmax"))
        == "ptsq fp32-1st"
    )
    assert variant_label(row("qat", params="mode=rl, calibration=minmax")) == "qat (mode=rl)"
    front = pareto_front([(10, 50), (20, 90), (15, 40), (30, 100), (25, 80)])
    assert front == [(10, 50), (20, 90), (30, 100)]


def test_report_filter() -> None:
    other = "c" * 64
    rows = [
        row(),
        row("ptdq"),
        row(target="pi"),
        dataclasses.replace(
            row(algo="ppo", env_id="HalfCheetah-v5", sha=other, baseline_sha=other), model="ppo-hc"
        ),
    ]
    assert len(ReportFilter(targets=("PI",)).apply(rows)) == 1
    assert len(ReportFilter(algos=("ppo",)).apply(rows)) == 1
    assert len(ReportFilter(envs=("hopper",)).apply(rows)) == 3  # the env's name without its version
    assert len(ReportFilter(baselines=(BASE_SHA[:8],)).apply(rows)) == 3  # a baseline brings its variants
    assert len(ReportFilter(baselines=("m-baseline-None",)).apply(rows)) == 3


def test_report_shows_the_newest_measurement_of_each_baseline() -> None:
    """A baseline measured twice on one target (an interrupted deploy under an older protocol, then a full one):
    by default only the newest measurement and the variants measured with it; the older one on request."""

    def measured(r: ReportRow, key: str, at: str) -> ReportRow:
        return dataclasses.replace(r, settings_key=key, measured_at=at)

    old = [
        measured(row(), "rounds=6", "2026-11-30T17:40:00"),
        measured(row("l2", ratio=0.1), "rounds=6", "2026-11-30T17:41:00"),
    ]
    new = [
        measured(row(), "rounds=11", "2026-11-30T18:05:00"),
        measured(row("l2", ratio=0.1), "rounds=11", "2026-11-30T18:06:00"),
    ]
    elsewhere = [measured(row(target="pi"), "rounds=6", "2026-11-29T09:00")]  # another target: its own newest
    rows = [*old, *new, *elsewhere]
    shown = ReportFilter(latest_only=True).apply(rows)
    assert shown == [*new, *elsewhere]
    assert ReportFilter().apply(rows) == rows
    # the newest is the baseline's newest, whatever the order the database handed the rows over in
    assert ReportFilter(latest_only=True).apply(rows[::-1]) == [*new, *elsewhere][::-1]
    # a variant whose baseline was never measured stays, to be reported as having nothing to compare with
    orphan = measured(row("ptdq", baseline_sha="d" * 64), "rounds=11", "")
    assert orphan in ReportFilter(latest_only=True).apply([*rows, orphan])
    # so does a variant measured alone some newer way its baseline never was
    alone = measured(row("l1", ratio=0.2), "rounds=12", "2026-11-30T19:00:00")
    assert alone in ReportFilter(latest_only=True).apply([*rows, alone])
    # what is shown compares within itself: the new l2 against the new baseline, each baseline with itself
    assert [c.row.settings_key for c in compare_all(shown)] == ["rounds=11", "rounds=11", "rounds=6"]


def test_latency_samples_of_a_job_whose_episodes_ran_in_parallel() -> None:
    calls = [str(20_000 + (i % 7) * 100) for i in range(1000)]  # int64 arrive as JSON strings
    batches = JobSummary({"latency_phase": {"calls": "1000", "inference_ns": calls}}).latency_phase_batches()
    assert len(batches) == 10 and all(20.0 <= b <= 20.6 for b in batches)
    assert (
        JobSummary({"latency_phase": {"inference_ns": calls[:30]}}).latency_phase_batches() == []
    )  # too few to cut
    assert JobSummary({}).latency_phase_batches() == []


def test_a_variant_timed_in_round_0_only_is_set_against_the_baselines_round_0() -> None:
    """Later rounds are latency-only jobs whose model session is the worker's first (its memory figure includes
    ONNX Runtime's start-up): a variant with round 0 only is compared with its baseline's round 0, not with the
    median of the baseline's rounds (which read 0.06x memory for every such variant before)."""
    base = dataclasses.replace(
        row(p50s=[50.0, 40.0, 40.0, 40.0]),
        round_model_mb=(2.0, 36.0, 36.0, 36.0),
        model_rss_mb=36.0,
        latency_p50_us=40.0,
    )
    variant = dataclasses.replace(
        row("l2", ratio=0.5, p50s=[45.0]), round_model_mb=(1.0,), model_rss_mb=1.0, latency_p50_us=45.0
    )
    (c,) = [c for c in compare_all([base, variant]) if not c.is_baseline]
    assert c.metrics["memory"].ratio == pytest.approx(0.5) and c.latency_ratio == pytest.approx(0.9)
    assert c.latency.change.value == "undecided" and "round 0 only" in c.latency.why
