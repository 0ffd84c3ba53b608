"""What a study run reports while it runs (events) and when it is done (its outcome)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

StudyEvent = Callable[[str, dict[str, Any]], None]
"""``(kind, details)`` as the study runs. Kinds: ``phase`` (name), ``baseline`` (policy, status),
``variant`` (baseline, label, status), ``job`` (target, model, done, total; called from the target's
thread), ``target`` (target, outcome), ``train`` (policy, progress), ``note`` (text)."""


@dataclass
class StudyOutcome:
    baselines_made: list[str] = field(default_factory=list)
    variants_made: int = 0
    variants_skipped: int = 0
    failures: list[str] = field(default_factory=list)
    jobs_run: dict[str, int] = field(default_factory=dict)
    jobs_skipped: dict[str, int] = field(default_factory=dict)
    report_files: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
