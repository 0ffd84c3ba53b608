"""Several training runs on an executor, each recorded in the store as it finishes.

Used by ``drlc-host train`` (a grid of runs) and by a study (its missing baselines), so both make a
run the same way: one :class:`~host.training.run.TrainTask` per run, a token that tells workers
whether they share this machine's disk (Ray), and :func:`~host.training.records.record_run` for every
run that finished, artifact, checkpoint, run row and curve together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from host.errors import DrlcError
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace
from host.training.executors import Executor
from host.training.records import finished_run, record_run
from host.training.run import (
    TrainConfig,
    TrainPlan,
    TrainProgress,
    TrainResult,
    TrainTask,
    train_task,
    write_fs_token,
)


@dataclass(frozen=True)
class RunDone:
    """One run of a batch, finished: recorded (``model`` set) or failed (``error`` set)."""

    index: int
    """Its position in the batch."""
    config: TrainConfig
    result: TrainResult | None = None
    model: ModelRow | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.model is not None


@dataclass(frozen=True)
class Recorded:
    """A plan the store already holds a finished run of (``--resume`` skips it)."""

    plan: TrainPlan
    run_id: str
    model_sha256: str


def split_recorded(db: ResultsDB, plans: Sequence[TrainPlan]) -> tuple[list[TrainPlan], list[Recorded]]:
    """``plans`` the store has no finished run of (still to train), and those it has."""
    todo: list[TrainPlan] = []
    recorded: list[Recorded] = []
    for plan in plans:
        done = finished_run(db, plan.config_key)
        if done is None:
            todo.append(plan)
        else:
            recorded.append(Recorded(plan, done["run_id"], done["model_sha256"]))
    return todo, recorded


def train_batch(
    configs: Sequence[TrainConfig],
    executor: Executor,
    workspace: Workspace,
    db: ResultsDB,
    *,
    resume: bool,
    recipe_keys: Sequence[str | None] | None = None,
    on_progress: Callable[[int, TrainProgress], None] | None = None,
) -> Iterator[RunDone]:
    """Train every config on ``executor``; yield each run as it finishes, already recorded.

    A run that fails, or whose result cannot be stored, is yielded with its error; the others go on.

    :param resume: continue each run's interrupted run folder from its checkpoint, if any
    :param recipe_keys: per config, the recipe key its artifact is stored under (a study's), or None
    :param on_progress: ``(index in configs, progress)`` a few times a second per run
    """
    keys = list(recipe_keys) if recipe_keys is not None else [None] * len(configs)
    token = write_fs_token(workspace.runs_dir) if executor.name == "ray" else None
    tasks = [TrainTask(cfg, str(workspace.runs_dir), resume, token) for cfg in configs]
    try:
        for outcome in executor.run(train_task, tasks, on_progress):
            cfg = configs[outcome.index]
            if not outcome.ok or outcome.result is None:
                yield RunDone(outcome.index, cfg, error=outcome.error or "no result")
                continue
            try:
                model = record_run(workspace, db, outcome.result, recipe_key=keys[outcome.index])
            except DrlcError as exc:
                yield RunDone(outcome.index, cfg, outcome.result, error=str(exc))
                continue
            yield RunDone(outcome.index, cfg, outcome.result, model)
    finally:
        if token is not None:
            (workspace.runs_dir / token[0]).unlink(missing_ok=True)
