"""One analysis of a report's rows, built once and handed to every renderer.

Comparing every variant with its baseline (tests, intervals, Holm's correction) and picking a recommendation
per (policy, device) is the costly part of a report; the study's tables are built from the same comparisons.
An :class:`Analysis` holds them, so writing one report in several formats analyses once, by construction
rather than through a cache keyed by object identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from host.decision import NOISE_THRESHOLD
from host.report.recommend import Recommendation, recommendations
from host.report.rows import ReportRow
from host.report.stats import Comparison, Optimise, compare_all
from host.report.tables import StudyTables, study_tables


@dataclass(frozen=True)
class Analysis:
    """The rows of a report, every comparison with a baseline, and the recommendation per (policy, device)."""

    rows: list[ReportRow]
    optimise: Optimise
    threshold: float
    comparisons: list[Comparison] = field(repr=False)
    recommendations: list[Recommendation] = field(repr=False)

    @cached_property
    def tables(self) -> StudyTables:
        """The study's tables (Tables 1-3 per target and across targets), built on first use."""
        return study_tables(self.rows, self.comparisons, self.recommendations)

    @property
    def targets(self) -> list[str]:
        """The measured targets, in report order."""
        return list(dict.fromkeys(r.target for r in self.rows))


def analyse(
    rows: Sequence[ReportRow],
    optimise: str | Optimise = Optimise.latency,
    threshold: float = NOISE_THRESHOLD,
) -> Analysis:
    """Compare every row with its baseline (:func:`compare_all`) and recommend per (policy, device)."""
    objective = Optimise(optimise)
    rows = list(rows)
    comparisons = compare_all(rows, threshold)
    return Analysis(rows, objective, threshold, comparisons, recommendations(comparisons, objective))
