"""``--episodes auto``: which models of a session need more seeded episodes for their return verdict, and how many.

A variant whose return is *undecided* (:func:`host.decision.non_inferiority`: its one-sided 95 % limits straddle
the 90 % margin) gets more episodes, and so does its baseline, since the test pairs episodes by seed: both run
the seeds that continue the sequence (``seed + n``, ``seed + n + 1``, ...), so the new pairs are new seeds for
both. How many: the decision layer's estimate ("about N more episodes would decide it"), at least
:data:`MIN_STEP` and never beyond the cap. The estimate assumes the mean and spread hold (power 50 % at the
observed effect), so a variant may still be undecided afterwards: the deploy plans again until every variant is
decided, hopeless ("sits at the margin"), or at the cap. Pure functions: host.measure.deploy runs the jobs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from host.decision import KEEP_FRACTION, Keep, NonInferiority, non_inferiority

AUTO_EPISODES_CAP_DEFAULT = 50
"""The most episodes per model ``--episodes auto`` goes to unless ``--max-episodes`` says otherwise."""
MIN_STEP = 5
"""Fewest episodes one extension adds (an extra job costs a worker's start-up; a handful of seeds is cheap)."""


@dataclass(frozen=True)
class Extension:
    """Models to extend, each to a total number of episodes (seeds), and why."""

    totals: dict[str, int]
    """sha256 -> episodes it should have in all (only models that need more than they have)."""
    reasons: dict[str, str]
    """sha256 of each undecided variant -> the decision layer's reason, for the deploy's output."""


def return_verdicts(
    returns: Mapping[str, Mapping[int, float]],
    parents: Mapping[str, str | None],
    margin: float = KEEP_FRACTION,
) -> Iterator[tuple[str, str, NonInferiority]]:
    """(variant, its baseline, its return verdict) for every variant whose baseline has returns too (a verdict
    needs both), from the returns stored so far (sha256 -> {seed: return})."""
    for sha, mine in returns.items():
        base = parents.get(sha)
        if base is not None and base != sha and base in returns:
            yield sha, base, non_inferiority(dict(mine), dict(returns[base]), margin)


def plan_extension(
    returns: Mapping[str, Mapping[int, float]],
    parents: Mapping[str, str | None],
    cap: int,
    margin: float = KEEP_FRACTION,
) -> Extension:
    """What to add, from the returns stored so far (sha256 -> {seed: return}) and each model's baseline.

    Only variants whose baseline is in ``returns`` are judged (a verdict needs both). A variant already at the
    cap, or whose estimate is None (at the margin, or beyond any sensible number), is left as it is.
    """
    totals: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for sha, base, verdict in return_verdicts(returns, parents, margin):
        mine = returns[sha]
        if verdict.verdict is not Keep.undecided or verdict.more_episodes is None:
            continue
        have = len(mine)
        if have >= cap:
            continue
        want = min(cap, have + max(verdict.more_episodes, MIN_STEP))
        reasons[sha] = verdict.reason
        totals[sha] = max(totals.get(sha, 0), want)
        totals[base] = max(totals.get(base, 0), want)
    return Extension({s: n for s, n in totals.items() if n > len(returns[s])}, reasons)


def falls_short(
    returns: Mapping[str, Mapping[int, float]],
    parents: Mapping[str, str | None],
    margin: float = KEEP_FRACTION,
) -> set[str]:
    """The variants shown to fall short of ``margin`` of their baseline's return (sha256 -> {seed: return} so
    far): a deploy's later rounds leave them out by default (``LATER_ROUNDS_DEFAULT``). A variant whose
    baseline has no returns yet, or that is undecided, is not among them."""
    return {sha for sha, _, v in return_verdicts(returns, parents, margin) if v.verdict is Keep.falls_short}
