"""The recommendation per (policy, target): which model to use, and why, in words.

Among the variants *shown* to keep the return (non-inferiority at 90 %, :mod:`host.decision`), the best on
the chosen objective among those that beat the baseline by more than the noise threshold and significantly
after Holm's correction; otherwise the baseline, with the reason. Energy compares readings of one meter and
scope only (:mod:`host.report_stats`), so a recommendation never mixes meters, scopes or units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from host.decision import KEEP_FRACTION, Change, Keep
from host.report import ReportRow
from host.report_stats import OBJECTIVE_TEXT, Comparison, Optimise, group


@dataclass(frozen=True)
class Recommendation:
    model: str
    """The model to use: a variant's name, or the baseline's own name when nothing beats it."""
    objective: Optimise
    reason: str
    target: str
    base: ReportRow
    choice: Comparison
    """The chosen model's comparison with the baseline (the baseline against itself when it is the pick)."""
    n_keep: int
    """Variants shown to keep >= 90 % of the baseline's return."""
    n_better: int
    """Of those, the ones that beat the baseline on the objective beyond the threshold, significantly."""

    @property
    def optimise(self) -> Optimise:
        return self.objective

    @property
    def is_baseline(self) -> bool:
        return self.choice.is_baseline


def _keep_text(c: Comparison) -> str:
    return f"keeps the return: {c.keep.reason}"


def recommend(comparisons: Sequence[Comparison], objective: Optimise = Optimise.latency) -> Recommendation:
    """The recommendation for one (target, baseline) family of comparisons (see the module docstring)."""
    base_c = next(c for c in comparisons if c.is_baseline)
    base = base_c.base
    what = OBJECTIVE_TEXT[objective.value]
    variants = [c for c in comparisons if not c.is_baseline]

    def keep_baseline(reason: str, n_keep: int = 0) -> Recommendation:
        return Recommendation(
            base.model, objective, reason + ": keep the baseline", base.target, base, base_c, n_keep, 0
        )

    if not variants:
        return keep_baseline(f"no variant of it was measured on {base.target}")
    if objective is Optimise.energy and not base.round_energy:
        return keep_baseline(
            f"energy per inference is not measured on {base.target} ({base.energy or 'no usable reading'}): no "
            "choice by energy; use --optimise latency, or give the device a meter"
        )
    keeps = [c for c in variants if c.keep.verdict is Keep.keeps]
    if not keeps:
        short = sum(c.keep.verdict is Keep.falls_short for c in variants)
        undecided = len(variants) - short
        return keep_baseline(
            f"none of {len(variants)} variants is shown to keep {KEEP_FRACTION:.0%} of the return "
            f"({short} fall short, {undecided} undecided)"
        )
    better = [c for c in keeps if c.metrics[objective.value].change is Change.lower]
    if not better:
        measured = [c for c in keeps if math.isfinite(c.metrics[objective.value].ratio)]
        if not measured:
            return keep_baseline(
                f"{what} is not comparable for any of the {len(keeps)} variants shown to keep the return "
                f"({keeps[0].metrics[objective.value].why})",
                len(keeps),
            )
        best = min(measured, key=lambda c: c.metrics[objective.value].ratio)
        m = best.metrics[objective.value]
        return keep_baseline(
            f"no variant shown to keep the return ({len(keeps)}) beats the baseline on {what} beyond the noise "
            f"threshold and significantly; the best, {best.label}: {m.verdict}, {m.why}",
            len(keeps),
        )
    best = min(better, key=lambda c: c.metrics[objective.value].ratio)
    m = best.metrics[objective.value]
    return Recommendation(
        best.row.model,
        objective,
        f"best {what} of {len(better)} variant{'s' if len(better) != 1 else ''} shown to keep the return and "
        f"{m.verdict} than the baseline: {m.why}; {_keep_text(best)}",
        base.target,
        base,
        best,
        len(keeps),
        len(better),
    )


def recommendations(
    comparisons: Iterable[Comparison], objective: Optimise = Optimise.latency
) -> list[Recommendation]:
    return [recommend(g, objective) for g in group(comparisons).values() if any(c.is_baseline for c in g)]
