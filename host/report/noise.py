"""The report's run-validity line: which devices were noisy while they were measured.

Every job of the measurement protocol carries what could have spoiled its timing (device_agent.validity);
a job the rule flagged is ``spoiled`` and was run again. One line per target says how many were, and the
most common reasons, so nobody reads a comparison from a noisy device without knowing it.
"""

from __future__ import annotations

from collections import Counter

from host.store.results_db import ResultsDB


def noise_lines(db: ResultsDB, targets: set[str] | None = None) -> list[str]:
    """One line per target with spoiled jobs (empty when none was): counts and the top reasons."""
    lines = []
    for target, (spoiled, checked) in sorted(db.spoiled_counts().items()):
        if spoiled == 0 or (targets is not None and target not in targets):
            continue
        reasons: Counter[str] = Counter()
        for validity in db.spoiled_validity(target):
            for reason in validity.get("reasons", []):
                reasons[" ".join(reason.split()[:2]).rstrip(":")] += (
                    1  # its kind: "cpu steal", "load average"
                )
        top = ", ".join(f"{why} ({n})" for why, n in reasons.most_common(3))
        lines.append(
            f"device {target} was noisy: {spoiled} of {checked} jobs had their timing spoiled and were run again"
            + (f" ({top})" if top else "")
        )
    return lines
