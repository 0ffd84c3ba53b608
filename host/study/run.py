"""The study runner: a grid of policies x compression methods x targets, done resumably.

A study file (:mod:`host.study.file`) names the policies, the compression grid, the episodes and the
targets. :func:`~host.study.plan.make_plan` looks at the workspace and says what is missing, without
doing anything; :func:`run_study` does the missing part, in phases:

1. baselines: import, register or train what is not registered yet (each baseline is registered under
   a recipe key, the hash of what made it, so it is recognised next time);
2. compression: the sweep of every baseline (variants already made are skipped by their recipe key);
3. measurement: every target gets one worker thread, with its own SQLite connection, that deploys every
   study model its target has no finished job for; targets on different devices (agent fingerprints) are
   measured concurrently, targets on one device one after another, the models of
   one target one at a time (the agent runs jobs one at a time anyway);
4. the report: HTML, Markdown and CSV of the study's models and targets.

Compression runs before any measurement starts, never beside it: compressing is CPU-heavy, and a
latency measured on a machine busy compressing (the ``local`` target is this machine) would be wrong.

Run again, a study does nothing that is already in the database: "done" for a job means a succeeded
job of the model on a target of that name with the same measurement settings (the deploy itself then
checks the device's fingerprint).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from device_agent.contract.vocabulary import BASELINE
from host.compress.sweep import PlannedVariant, run_sweep
from host.compress.variant import Baseline, Variant
from host.report.stats import session_unsettled
from host.measure.deploy import DeployOutcome, connect, deploy
from host.errors import DrlcError
from host.policies.importer import import_checkpoint
from host.policies.sb3.files import resolve_checkpoint_path
from host.measure.profiles import TargetProfile
from host.store.artifacts import store_artifact
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace
from host.study.executor import compress_on, train_on
from host.study.file import Study, StudyError, StudyPolicy
from host.study.outcome import StudyEvent, StudyOutcome
from host.study.plan import PolicyPlan, deploy_config, make_plan
from host.study.recipes import baseline_recipe, find_baseline, train_config
from host.study.report import write_study_report
from host.training.executors import Executor
from host.training.records import record_run
from host.training.run import train


def _make_baseline(
    policy: StudyPolicy, workspace: Workspace, db: ResultsDB, on_event: StudyEvent
) -> ModelRow:
    key = baseline_recipe(policy)
    if policy.kind == "onnx":
        assert policy.path is not None
        base = Baseline.load(policy.path)
        if base.manifest.method != BASELINE:
            raise StudyError(f"{policy.path} is a {base.manifest.method} variant, not a baseline")
        return store_artifact(workspace, db, base.data, base.manifest)
    if policy.kind == "import":
        assert policy.path is not None
        on_event("baseline", {"policy": policy.label, "status": "importing"})
        exported = import_checkpoint(
            policy.path,
            env_id=policy.env_id,
            algo=policy.algo,
            env_options=policy.env_options,
            obs_wrappers=policy.obs_wrappers,
        )
        return store_artifact(
            workspace,
            db,
            exported.onnx_bytes,
            exported.manifest,
            checkpoint=resolve_checkpoint_path(policy.path),
            recipe_key=key,
        )
    if policy.kind == "train":
        on_event("baseline", {"policy": policy.label, "status": "training"})
        result = train(
            train_config(policy),
            workspace.runs_dir,
            lambda p: on_event("train", {"policy": policy.label, "progress": p}),
            resume=True,
        )
        # the artifact, its checkpoint and the training_runs / training_curve rows, as `drlc-host train` stores them
        return record_run(workspace, db, result, recipe_key=key)
    raise StudyError(f"policy {policy.label}: no registered baseline matches {policy.selector!r}")


def _compress(
    pp: PolicyPlan,
    study: Study,
    workspace: Workspace,
    db: ResultsDB,
    outcome: StudyOutcome,
    on_event: StudyEvent,
) -> None:
    assert pp.baseline is not None
    base_row = pp.baseline
    base = Baseline.load(base_row.path, checkpoint=base_row.checkpoint)

    def store(variant: Variant, key: str) -> None:
        store_artifact(workspace, db, variant.data, variant.manifest, recipe_key=key)

    def progress(item: PlannedVariant, status: str) -> None:
        on_event("variant", {"baseline": base_row.name, "label": item.label, "status": status})
        if status.startswith("failed"):
            outcome.failures.append(f"{base_row.name} {item.label}: {status}")

    result = run_sweep(base, study.sweep, lambda key: db.model_by_recipe(key) is not None, store, progress)
    outcome.variants_made += len(result["made"])
    outcome.variants_skipped += len(result["skipped"])


def target_fingerprints(profiles: list[TargetProfile], workspace: Workspace) -> dict[str, str | Exception]:
    """Each target's device fingerprint, asked of its agent (a target that cannot be reached: the error)."""
    out: dict[str, str | Exception] = {}
    for profile in profiles:
        try:
            with connect(profile, workspace) as client:
                out[profile.name] = client.device_info().fingerprint
        except DrlcError as exc:
            out[profile.name] = exc
    return out


def concurrency_groups(
    profiles: list[TargetProfile], fingerprints: dict[str, str | Exception]
) -> list[list[TargetProfile]]:
    """Targets measured at the same time must be different devices: targets whose agents report the same
    fingerprint form one group, measured one after another; different groups run concurrently. A target
    whose fingerprint is unknown is a group of its own (its deploy reports why it cannot be reached)."""
    groups: dict[str, list[TargetProfile]] = {}
    for profile in profiles:
        fp = fingerprints.get(profile.name)
        groups.setdefault(fp if isinstance(fp, str) else f"?{profile.name}", []).append(profile)
    return list(groups.values())


def _deploy_target(
    profile: TargetProfile,
    models: list[ModelRow],
    study: Study,
    workspace: Workspace,
    on_event: StudyEvent,
) -> DeployOutcome:
    """One target's deploy, on its group's thread: its own database connection (sqlite3 connections stay in
    their thread)."""
    with ResultsDB(workspace.db_path) as db:
        return deploy(
            models,
            profile,
            workspace,
            db,
            deploy_config(study),
            lambda model, done, total: on_event(
                "job", {"target": profile.name, "model": model, "done": done, "total": total}
            ),
            unsettled=lambda session_id: session_unsettled(db, session_id),
        )


def _deploy_targets(
    profiles: list[TargetProfile],
    models: list[ModelRow],
    study: Study,
    workspace: Workspace,
    emit: StudyEvent,
    outcome: StudyOutcome,
) -> None:
    """Deploy to every target: different devices at once, targets of one device one after another."""
    lock = threading.Lock()

    def locked(kind: str, details: dict[str, Any]) -> None:
        with lock:
            emit(kind, details)

    # one target needs no grouping (and asking a spawn_local target's fingerprint starts its agent once more)
    groups = (
        [profiles]
        if len(profiles) == 1
        else concurrency_groups(profiles, target_fingerprints(profiles, workspace))
    )
    for group in groups:
        if len(group) > 1:
            emit(
                "note",
                {
                    "text": f"targets {', '.join(p.name for p in group)} are the same device (one agent "
                    "fingerprint): measured one after another, not at once"
                },
            )

    def run_group(group: list[TargetProfile]) -> dict[str, DeployOutcome | DrlcError]:
        results: dict[str, DeployOutcome | DrlcError] = {}
        for profile in group:
            try:
                results[profile.name] = _deploy_target(profile, models, study, workspace, locked)
            except DrlcError as exc:
                results[profile.name] = exc
        return results

    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="drlc-study-target") as pool:
        done = [pool.submit(run_group, group) for group in groups]
        for future in done:
            for name, result in future.result().items():
                if isinstance(result, DrlcError):
                    outcome.failures.append(f"target {name}: {result}")
                    emit("target", {"target": name, "error": str(result)})
                    continue
                outcome.jobs_run[name] = len(result.succeeded)
                outcome.failures += [
                    f"target {name}: {sha[:12]}: {err}" for sha, err in result.failed.items()
                ]
                emit("target", {"target": name, "outcome": result})


def _make_baselines(
    study: Study,
    workspace: Workspace,
    db: ResultsDB,
    outcome: StudyOutcome,
    emit: StudyEvent,
    executor: Executor | None,
) -> None:
    """Import, register or train every baseline the database lacks (training on ``executor`` when given)."""
    missing = [p for p in study.policies if find_baseline(db, p) is None]
    if executor is not None and (to_train := [p for p in missing if p.kind == "train"]):
        failed = train_on(executor, to_train, workspace, db, outcome, emit)
        if failed:
            raise StudyError("training failed for " + "; ".join(failed))
    trained_now = set(outcome.baselines_made)
    for policy in study.policies:
        if (found := find_baseline(db, policy)) is not None:
            if found.sha256 not in trained_now:
                emit("baseline", {"policy": policy.label, "status": "registered"})
            continue
        try:
            row = _make_baseline(policy, workspace, db, emit)
        except DrlcError as exc:
            raise StudyError(f"policy {policy.label}: {exc}") from exc
        outcome.baselines_made.append(row.sha256)
        emit("baseline", {"policy": policy.label, "status": f"made {row.name} [{row.short}]"})


def run_study(
    study: Study,
    workspace: Workspace,
    db: ResultsDB,
    profiles: list[TargetProfile],
    on_event: StudyEvent | None = None,
    *,
    write_report: bool = True,
    executor: Executor | None = None,
) -> StudyOutcome:
    """Do whatever the study still misses: baselines, variants, measurements, then the report.

    A failed variant or target does not stop the others; the outcome lists the failures and the
    caller decides the exit status. Running the same study again does only what is still missing.

    :param executor: where training runs and variants are made, one task each (a local process pool,
        a Ray cluster: :mod:`host.study.executor`); None: in this process, one after another

    :raises StudyError: a baseline cannot be made (nothing downstream of it could run)
    """
    emit = on_event or (lambda *_: None)
    started = time.perf_counter()
    outcome = StudyOutcome()

    emit("phase", {"name": "baselines"})
    _make_baselines(study, workspace, db, outcome, emit, executor)

    plan = make_plan(study, db, profiles)
    emit("phase", {"name": "compress", "plan": plan})
    if executor is not None:
        compress_on(executor, list(plan.policies), study, workspace, db, outcome, emit)
    else:
        for pp in plan.policies:
            if pp.variants_missing:
                _compress(pp, study, workspace, db, outcome, emit)
            else:
                outcome.variants_skipped += len(pp.variants)

    plan = make_plan(study, db, profiles)
    models = [m for pp in plan.policies for m in pp.models()]
    emit("phase", {"name": "deploy", "plan": plan})
    busy = [(p, t) for p, t in zip(profiles, plan.targets, strict=True) if t.jobs_missing]
    for profile, tp in zip(profiles, plan.targets, strict=True):
        outcome.jobs_skipped[profile.name] = tp.jobs_total - tp.jobs_missing
        outcome.jobs_run[profile.name] = 0
    if busy:
        _deploy_targets([p for p, _ in busy], models, study, workspace, emit, outcome)

    if write_report:
        emit("phase", {"name": "report"})
        outcome.report_files = write_study_report(study, db)
    outcome.wall_s = time.perf_counter() - started
    return outcome
