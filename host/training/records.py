"""A finished training run in the store: its artifact (with checkpoint), the run and its curve.

The SQL is the store's (:class:`~host.store.results_db.ResultsDB`); this module turns a
:class:`~host.training.run.TrainResult` into its rows and the rows back into curve points.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from host.store.artifacts import store_artifact
from host.store.results_db import ModelRow, ResultsDB, now
from host.store.workspace import Workspace
from host.training.run import CurvePoint, TrainResult, unpack_result


def record_run(
    workspace: Workspace, db: ResultsDB, result: TrainResult, recipe_key: str | None = None
) -> ModelRow:
    """Store the artifact (with its checkpoint and ``recipe_key``, see :func:`store_artifact`), the run
    and its curve; returns the model row. A run shipped back from another machine is unpacked into
    ``workspace.runs_dir`` first."""
    result = unpack_result(result, workspace.runs_dir)
    row = store_artifact(
        workspace,
        db,
        result.exported.onnx_bytes,
        result.exported.manifest,
        checkpoint=result.checkpoint,
        recipe_key=recipe_key,
    )
    plan = result.plan
    db.add_training_run(
        {
            "run_id": result.run_id,
            "algo": plan["algo"],
            "env_id": plan["env_id"],
            "seed": plan["seed"],
            "config_key": plan["config_key"],
            "total_steps": plan["total_steps"],
            "steps_done": result.steps_done,
            "hp_source": plan["hyperparams"]["source"]["kind"],
            "plan": json.dumps(plan, sort_keys=True),
            "model_sha256": row.sha256,
            "checkpoint": str(result.checkpoint),
            "vecnormalize": str(result.vecnormalize) if result.vecnormalize else None,
            "final_return_mean": result.final_return_mean,
            "final_return_std": result.final_return_std,
            "final_returns": json.dumps(result.final_returns),
            "wall_s": result.wall_s,
            "train_steps_per_s": result.train_steps_per_s,
            "resumed_from_step": result.resumed_from_step,
            "finished_at": now(),
        },
        [asdict(p) for p in result.curve],
    )
    return row


def finished_run(db: ResultsDB, config_key: str) -> dict[str, Any] | None:
    """The latest recorded run of a plan (by config key) whose artifact is still registered, or None."""
    return db.finished_training_run(config_key)


def training_runs(db: ResultsDB) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (for reports)."""
    return db.training_runs()


def training_curve(db: ResultsDB, run_id: str) -> list[CurvePoint]:
    return [CurvePoint(**point) for point in db.training_curve(run_id)]
