"""``--episodes auto``: the plan (pure) on planted returns, then the whole loop on a real agent."""

from __future__ import annotations

import numpy as np
import pytest

from host.decision import Keep, non_inferiority
from host.until_decided import MIN_STEP, plan_extension


def seeded(values: np.ndarray, start: int = 0) -> dict[int, float]:
    return {start + i: float(v) for i, v in enumerate(values)}


def test_an_undecided_variant_and_its_baseline_get_the_estimated_episodes_and_no_more_than_the_cap() -> None:
    rng = np.random.default_rng(0)
    base = 1000 + rng.normal(0, 20, 10)
    noisy = 0.95 * base + rng.normal(0, 120, 10)  # truly at 95 %, too noisy to show >= 90 % with 10 pairs
    clear = 0.99 * base + rng.normal(0, 5, 10)  # keeps, shown at once
    returns = {"b": seeded(base), "noisy": seeded(noisy), "clear": seeded(clear)}
    parents = {"b": None, "noisy": "b", "clear": "b"}
    verdict = non_inferiority(returns["noisy"], returns["b"])
    assert verdict.verdict is Keep.undecided and verdict.more_episodes is not None
    assert non_inferiority(returns["clear"], returns["b"]).verdict is Keep.keeps
    plan = plan_extension(returns, parents, cap=100_000)
    want = 10 + max(verdict.more_episodes, MIN_STEP)
    assert plan.totals == {"noisy": want, "b": want}  # the baseline too: the test pairs by seed
    assert set(plan.reasons) == {"noisy"} and "more episodes would decide it" in plan.reasons["noisy"]
    capped = plan_extension(returns, parents, cap=12)
    assert capped.totals == {"noisy": 12, "b": 12}
    assert plan_extension(returns, parents, cap=10).totals == {}  # already at the cap: nothing


def test_decided_variants_and_orphans_ask_for_nothing() -> None:
    base = np.linspace(900, 1100, 10)
    returns = {"b": seeded(base), "short": seeded(0.5 * base), "keeps": seeded(base), "orphan": seeded(base)}
    parents = {"b": None, "short": "b", "keeps": "b", "orphan": "missing"}
    assert plan_extension(returns, parents, cap=100).totals == {}


def test_a_baseline_already_extended_for_another_variant_is_not_extended_again() -> None:
    rng = np.random.default_rng(1)
    base = 1000 + rng.normal(0, 20, 40)
    noisy = 0.95 * base[:10] + rng.normal(0, 120, 10)
    plan = plan_extension({"b": seeded(base), "v": seeded(noisy)}, {"b": None, "v": "b"}, cap=30)
    assert set(plan.totals) == {"v"} and 10 < plan.totals["v"] <= 30  # the baseline has 40 seeds already: the variant's new ones pair with them


@pytest.mark.parametrize("episodes", ["0", "-3", "many", ""])
def test_episodes_takes_a_count_or_auto_and_refuses_the_rest(episodes: str) -> None:
    import typer

    from host.cli.deploy_cmd import parse_episodes

    assert parse_episodes("auto", 40) == (10, 40)
    assert parse_episodes("AUTO", 40) == (10, 40)
    assert parse_episodes("7", 40) == (7, 0)
    with pytest.raises(typer.BadParameter, match="neither a number of episodes"):
        parse_episodes(episodes, 40)
