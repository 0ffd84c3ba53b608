"""The recommendation per (policy, target): which model to use, and why, in words.

Among the variants *shown* to keep the return (non-inferiority at 90 %, :mod:`host.decision`), the best on
the chosen objective among those that beat the baseline by more than the noise threshold and significantly
after Holm's correction; otherwise the baseline, with the reason. Energy compares readings of one meter and
scope only (:mod:`host.report.stats`), so a recommendation never mixes meters, scopes or units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from host.decision import KEEP_FRACTION, Change, Keep
from host.report.rows import ReportRow
from host.report.stats import OBJECTIVE_TEXT, Comparison, Optimise, group


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
    runner_up: Comparison | None = None
    """When the baseline is kept although some variant keeps the return: the best of those on the objective
    (what the headline names: "ptdq keeps the return and is 3.6× smaller, but is not faster here")."""
    n_short: int = 0
    """Variants shown to fall short of 90 % of the return."""

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

    n_short = sum(c.keep.verdict is Keep.falls_short for c in variants)

    def keep_baseline(reason: str, n_keep: int = 0, runner_up: Comparison | None = None) -> Recommendation:
        return Recommendation(
            base.model,
            objective,
            reason + ": keep the baseline",
            base.target,
            base,
            base_c,
            n_keep,
            0,
            runner_up,
            n_short,
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
        undecided = len(variants) - n_short
        return keep_baseline(
            f"none of {len(variants)} variants is shown to keep {KEEP_FRACTION:.0%} of the return "
            f"({n_short} fall short, {undecided} undecided)"
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
            best,
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
        None,
        n_short,
    )


def recommendations(
    comparisons: Iterable[Comparison], objective: Optimise = Optimise.latency
) -> list[Recommendation]:
    return [recommend(g, objective) for g in group(comparisons).values() if any(c.is_baseline for c in g)]


GAIN = {
    "latency": "faster",
    "p99": "faster at p99",
    "size": "smaller",
    "memory": "smaller in memory",
    "energy": "less energy per inference",
}
"""How a variant's gain on each objective reads: "1.8× faster", "3.6× smaller"."""
NO_GAIN = {
    "latency": "is not faster",
    "p99": "is not faster at p99",
    "size": "is not smaller",
    "memory": "takes no less memory",
    "energy": "uses no less energy",
}


def times(ratio: float) -> str:
    """A ratio below 1 as the multiple it gains: 0.55 -> "1.8×", 0.94 -> "1.06×" (two decimals below 1.1)."""
    gain = 1 / ratio
    return f"{gain:.2f}×" if gain < 1.1 else f"{gain:.1f}×"


def _size_gain(c: Comparison, objective: Optimise) -> str:
    size = c.metrics["size"]
    if objective is Optimise.size or size.change is not Change.lower:
        return ""
    return f"{times(size.ratio)} smaller"


def headline(rec: Recommendation) -> str:
    """The recommendation as one sentence, the same in the terminal, Markdown and HTML reports:

    - "use NAME (l2 30%): 1.8× faster, keeps the return (98 % of the baseline's), 2.0× smaller"
    - "keep the baseline: ptdq keeps the return and is 3.6× smaller, but is not faster here (p50 latency:
      within noise, +1.2 %)"
    - "keep the baseline: no variant is shown to keep 90 % of the return (2 fall short, 2 undecided)"
    """
    objective = rec.objective.value
    what = OBJECTIVE_TEXT[objective]
    if not rec.is_baseline:
        c = rec.choice
        m = c.metrics[objective]
        parts = [f"{times(m.ratio)} {GAIN[objective]}"]
        pct = c.pct.value
        parts.append(
            f"keeps the return ({pct:.0f} % of the baseline's)" if math.isfinite(pct) else "keeps the return"
        )
        if size := _size_gain(c, rec.objective):
            parts.append(size)
        return f"use {c.row.model} ({c.label}): " + ", ".join(parts)
    reason = rec.reason.removesuffix(": keep the baseline")
    if rec.runner_up is not None:
        c = rec.runner_up
        m = c.metrics[objective]
        gain = _size_gain(c, rec.objective)
        lead = f"{c.label} keeps the return" + (f" and is {gain}" if gain else "")
        change = f", {m.ratio - 1:+.0%}" if math.isfinite(m.ratio) else ""
        why = f": {m.why}" if m.change in (Change.undecided, Change.not_compared) else ""
        return f"keep the baseline: {lead}, but {NO_GAIN[objective]} here ({what}: {m.verdict}{change}{why})"
    if rec.n_keep == 0 and reason.startswith("none of"):
        undecided = reason[reason.index("(") :] if "(" in reason else ""
        return (
            f"keep the baseline: no variant is shown to keep {KEEP_FRACTION:.0%} of the return " + undecided
        ).rstrip()
    return f"keep the baseline: {reason}"
