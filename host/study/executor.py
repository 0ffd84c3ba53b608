"""A study's training and compression spread over an executor: a local process pool or a Ray cluster.

A study that outgrows one host trains its baselines and makes its variants elsewhere: one task per
training run, one per variant, on :mod:`host.training.executors` (``--executor local|ray``). The host keeps
the results database: it sends each task what it needs (a training config; a baseline's bytes and
the variant's recipe) and stores each result, under the same recipe key the in-process study uses,
as it arrives, so a study interrupted half-way resumes with only the missing tasks, whichever way
it ran before. Measurement stays on the devices, as always. Imports run on the host (seconds each:
the checkpoint is a host file).

A variant task collects its own rollouts (calibration, held-out set): tasks share no memory, so
what one in-process sweep collects once per baseline is collected once per variant here. That is
the price of spreading; QAT's ``rl`` mode also needs the baseline's checkpoint at the same path on
the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.compress import make_variant, method_config
from host.compress.sweep import plan, recipe_key
from host.compress.variant import Baseline, CompressionContext, Variant
from host.store.artifacts import store_artifact
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.study.file import Study, StudyPolicy
from host.study.outcome import StudyEvent, StudyOutcome
from host.study.plan import PolicyPlan
from host.study.recipes import baseline_recipe, train_config
from host.training.batch import train_batch
from host.training.executors import Executor, Report
from host.training.run import TrainProgress


@dataclass(frozen=True)
class VariantTask:
    """One variant to make where the executor puts it (picklable).

    :param baseline: the baseline artifact's bytes
    :param checkpoint: its SB3 checkpoint path on the host (QAT rl mode), if any
    :param key: the variant's recipe key, under which the host stores it
    """

    baseline: bytes
    checkpoint: str | None
    baseline_sha256: str
    baseline_name: str
    method: str
    options: dict[str, Any]
    label: str
    key: str


def variant_task(task: VariantTask, report: Report | None = None) -> Variant:
    """Make one variant (an executor's worker); the host stores it."""
    base = Baseline.from_bytes(task.baseline, Path(task.checkpoint) if task.checkpoint else None)
    config = method_config(task.method, **task.options)
    return make_variant(base, task.method, config, CompressionContext(base))


def variant_tasks(pp: PolicyPlan, study: Study, db: ResultsDB) -> list[VariantTask]:
    """The variants of ``pp``'s baseline the database does not hold yet, as tasks."""
    assert pp.baseline is not None
    data = pp.baseline.path.read_bytes()
    tasks = []
    for item in plan(study.sweep):
        key = recipe_key(pp.baseline.sha256, item.method, method_config(item.method, **item.options))
        if db.model_by_recipe(key) is None:
            checkpoint = str(pp.baseline.checkpoint) if pp.baseline.checkpoint else None
            tasks.append(
                VariantTask(
                    data,
                    checkpoint,
                    pp.baseline.sha256,
                    pp.baseline.name,
                    item.method,
                    dict(item.options),
                    item.label,
                    key,
                )
            )
    return tasks


def compress_on(
    executor: Executor,
    plans: list[PolicyPlan],
    study: Study,
    workspace: Workspace,
    db: ResultsDB,
    outcome: StudyOutcome,
    emit: StudyEvent,
) -> None:
    """Every missing variant of every baseline, one task each; each stored as it arrives."""
    tasks = [task for pp in plans if pp.baseline is not None for task in variant_tasks(pp, study, db)]
    for pp in plans:
        outcome.variants_skipped += len(pp.variants) - sum(
            1 for t in tasks if pp.baseline and t.baseline_sha256 == pp.baseline.sha256
        )
    for done in executor.run(variant_task, tasks):
        task = done.task
        if done.ok and done.result is not None:
            store_artifact(workspace, db, done.result.data, done.result.manifest, recipe_key=task.key)
            outcome.variants_made += 1
            status = "made"
        else:
            status = f"failed: {done.error}"
            outcome.failures.append(f"{task.baseline_name} {task.label}: {status}")
        emit("variant", {"baseline": task.baseline_name, "label": task.label, "status": status})


def train_on(
    executor: Executor,
    policies: list[StudyPolicy],
    workspace: Workspace,
    db: ResultsDB,
    outcome: StudyOutcome,
    emit: StudyEvent,
) -> list[str]:
    """Train the study's missing baselines, one task per run (:func:`~host.training.batch.train_batch`,
    each recorded as it finishes, under its recipe key); returns the failures (``policy: error``)."""
    failures = []

    def progress(index: int, payload: TrainProgress) -> None:
        emit("train", {"policy": policies[index].label, "progress": payload})

    configs = [train_config(p) for p in policies]
    keys = [baseline_recipe(p) for p in policies]
    for done in train_batch(
        configs, executor, workspace, db, resume=True, recipe_keys=keys, on_progress=progress
    ):
        policy = policies[done.index]
        if done.model is None:
            failures.append(f"{policy.label}: {done.error}")
            emit("baseline", {"policy": policy.label, "status": "failed"})
            continue
        outcome.baselines_made.append(done.model.sha256)
        emit("baseline", {"policy": policy.label, "status": f"made {done.model.name} [{done.model.short}]"})
    return failures
