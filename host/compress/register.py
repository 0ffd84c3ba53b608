"""Make variants into a workspace: one, or the study's grid, each stored as an artifact and registered in the
results database under its recipe key, so asking again finds it instead of making it twice.

The command line (``drlc-host compress``) only parses and prints around these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from host.store.artifacts import store_artifact
from host.compress import make_variant
from host.compress.sweep import PlannedVariant, SweepConfig, recipe_key, run_sweep
from host.compress.variant import Baseline, Variant
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace


def store_variant(workspace: Workspace, db: ResultsDB, variant: Variant, key: str) -> ModelRow:
    """Write the variant's file into the workspace and register it under its recipe key."""
    return store_artifact(workspace, db, variant.data, variant.manifest, recipe_key=key)


def existing_variant(db: ResultsDB, base: Baseline, method: str, config: Any) -> ModelRow | None:
    """The registered variant of ``base`` with this recipe (same method and effective config), if any."""
    return db.model_by_recipe(recipe_key(base.sha256, method, config))


def make_and_store(
    workspace: Workspace, db: ResultsDB, base: Baseline, method: str, config: Any
) -> tuple[ModelRow, dict[str, Any]]:
    """Make the variant of ``base`` by ``method`` with ``config`` and register it: (its row, the metrics
    measured when it was made, such as the action error against the baseline)."""
    variant = make_variant(base, method, config)
    row = store_variant(workspace, db, variant, recipe_key(base.sha256, method, config))
    return row, dict(variant.manifest.metrics)


SweepItemFn = Callable[[PlannedVariant, str], None]
"""(variant, status) after each planned variant: 'made', 'skipped' or 'failed: why' (for display)."""


@dataclass
class SweepReport:
    """What a sweep did, and every variant of the baseline the workspace now holds."""

    made: list[PlannedVariant] = field(default_factory=list)
    skipped: list[PlannedVariant] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Label of each variant that could not be made -> why."""
    variants: list[tuple[ModelRow, dict[str, Any]]] = field(default_factory=list)
    """(row, manifest metrics) of every variant of the baseline in the workspace, made now or before."""


def sweep_into(
    workspace: Workspace,
    db: ResultsDB,
    base: Baseline,
    cfg: SweepConfig,
    on_item: SweepItemFn | None = None,
) -> SweepReport:
    """Make every variant of the grid ``cfg`` the workspace does not hold yet (one failed variant does not
    lose the rest), register each, and list every variant of ``base`` afterwards."""
    report = SweepReport()

    def record(item: PlannedVariant, status: str) -> None:
        if status not in ("made", "skipped"):
            report.failed[item.label] = status.removeprefix("failed: ")
        if on_item is not None:
            on_item(item, status)

    outcome = run_sweep(
        base,
        cfg,
        lambda key: db.model_by_recipe(key) is not None,
        lambda variant, key: store_variant(workspace, db, variant, key),
        record,
    )
    report.made, report.skipped = outcome["made"], outcome["skipped"]
    report.variants = [
        (row, manifest.metrics if (manifest := db.manifest(row.sha256)) else {})
        for row in db.variants_of(base.sha256)
    ]
    return report
