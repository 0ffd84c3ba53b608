"""The study runner: a grid of policies x compression methods x targets, done resumably.

A study file (TOML) names the policies (RL Zoo checkpoints to import, baseline ONNX files, registered
models, or algorithm/env pairs to train with some seeds), the compression grid, the episodes and the
targets. :func:`make_plan` looks at the workspace and says what is missing, without doing anything;
:func:`run_study` does the missing part, in phases:

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

import hashlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from host.compress.methods import INT8_METHODS, METHOD_NAMES, PRUNING_METHODS
from host.measure.config_errors import describe
from host.measure.protocol import MAX_SPOILED_RETRIES_DEFAULT, ROUNDS_DEFAULT
from host.errors import DrlcError
from host.results_db import ModelRow, ResultsDB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from host.compress.variant import Variant
    from host.executors import Executor
    from host.measure.profiles import TargetProfile
    from host.workspace import Workspace


class StudyError(DrlcError):
    """A study file is malformed, names something that does not exist, or a phase of the study failed."""


ALL_METHODS = METHOD_NAMES
PRUNE_METHODS = PRUNING_METHODS

# Rough costs for the dry run's estimate when the workspace has no history to go by (2-core x86 VM).
EST_IMPORT_S = 8.0
"""Loading an SB3 checkpoint, exporting it and checking the graph against predict."""
EST_VARIANT_S = {"ptdq": 1.0, "ptsq": 4.0, "qat": 12.0, "l1": 1.5, "l2": 1.5}
"""Seconds to make one variant of a 256-256 MLP (QAT in distill mode; rl mode is training)."""
EST_SWEEP_SETUP_S = 6.0
"""Per baseline: rollouts shared by the sweep (held-out and calibration episodes)."""
EST_TRAIN_STEPS_PER_S = {"ppo": 1500.0, "a2c": 1500.0, "trpo": 1500.0, "sac": 80.0, "td3": 120.0}
"""Environment steps per second of training; off-policy algorithms update every step."""
EST_EPISODE_S = 0.25
"""One 1000-step MuJoCo episode with batch-1 inference, when the target has no history."""
EST_JOB_OVERHEAD_S = 2.5
"""A job's fixed cost: worker start, model load, warm-up, runtime floor."""
EST_LATENCY_ROUND_S = 0.6
"""A later (latency-only) round's job: worker start, model load, warm-up and 1000 timed calls (an estimate)."""


# ---------------------------------------------------------------------------------------------
# The study file
# ---------------------------------------------------------------------------------------------


class PolicyEntry(BaseModel):
    """One ``[[policy]]`` table: exactly one of ``import``, ``onnx``, ``model`` or ``train``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    import_: str | None = Field(
        default=None,
        alias="import",
        description="SB3 .zip or RL Zoo folder; 'zoo:ALGO/ENV' is looked up in $DRLC_ZOO_DIR or zoo_dir",
    )
    onnx: str | None = Field(default=None, description="a baseline drlc .onnx file")
    model: str | None = Field(default=None, description="a registered baseline: sha256 prefix or name")
    train: str | None = Field(default=None, description="algorithm to train (ppo, sac, ...) on env")
    env: str | None = Field(default=None, description="Gymnasium env id (import: default the checkpoint's)")
    algo: str | None = Field(default=None, description="import: override the detected algorithm")
    steps: int | None = Field(default=None, ge=1, description="train: env steps (default the RL Zoo's)")
    seeds: list[int] = Field(default_factory=lambda: [0], description="train: one baseline per seed")
    hp: dict[str, Any] = Field(default_factory=dict, description="train: hyperparameter overrides")
    normalize: bool | None = Field(default=None, description="train: VecNormalize (default as the zoo says)")
    env_options: dict[str, Any] = Field(
        default_factory=dict, description="import, train: env options for gymnasium.make (as --env-option)"
    )
    obs_wrappers: list[str] | None = Field(
        default=None, description="import: observation wrappers (as --obs-wrapper); default the zoo folder's"
    )

    @model_validator(mode="after")
    def _one_source(self) -> PolicyEntry:
        given = [k for k in ("import_", "onnx", "model", "train") if getattr(self, k) is not None]
        if len(given) != 1:
            names = ", ".join(g.rstrip("_") for g in given) or "none"
            raise ValueError(f"a [[policy]] needs exactly one of import, onnx, model, train (got {names})")
        if self.train is not None and not self.env:
            raise ValueError(f"train = {self.train!r} needs env = 'Gymnasium-Env-vN'")
        return self


class CompressEntry(BaseModel):
    """The ``[compress]`` table: the grid of the study's sweep for every baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: list[str] = Field(default_factory=lambda: list(ALL_METHODS))
    ratios: list[float] | Literal["study"] = Field(default="study", description="pruning ratios or 'study'")
    fp32_first_layer_variants: bool = True
    qat_mode: str = "distill"
    qat_steps: int | None = None
    calibration_episodes: int = Field(default=20, ge=1)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in ALL_METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; known: {', '.join(ALL_METHODS)}")
        return methods

    @field_validator("ratios")
    @classmethod
    def _ratio_range(cls, ratios: list[float] | str) -> list[float] | str:
        if isinstance(ratios, list) and any(not 0 < r < 1 for r in ratios):
            raise ValueError(f"pruning ratios must be in (0, 1), got {ratios}")
        return ratios


class StudyFile(BaseModel):
    """A whole study file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="names the report files")
    description: str = ""
    targets: list[str] = Field(default_factory=lambda: ["local"], min_length=1)
    episodes: int = Field(default=10, ge=1, description="episodes per model and target")
    seed: int = Field(default=0, description="episode i is reset with seed + i, on every target")
    warmup_calls: int = Field(default=100, ge=0)
    rounds: int = Field(default=ROUNDS_DEFAULT, ge=1, description="latency rounds per model and target")
    spoiled_retries: int = Field(
        default=MAX_SPOILED_RETRIES_DEFAULT, ge=0, description="re-runs of a round the validity rule spoiled"
    )
    report_dir: str | None = Field(default=None, description="where `study run` writes the report")
    zoo_dir: str | None = Field(
        default=None, description="where 'zoo:' paths point when $DRLC_ZOO_DIR is unset"
    )
    optimise: Literal["latency", "p99", "size", "memory", "energy"] = "latency"
    compress: CompressEntry = Field(default_factory=CompressEntry)
    policy: list[PolicyEntry] = Field(min_length=1)


@dataclass(frozen=True)
class StudyPolicy:
    """One baseline of the study, as the study file names it (a train entry gives one per seed)."""

    kind: Literal["import", "onnx", "model", "train"]
    label: str
    path: Path | None = None
    selector: str | None = None
    env_id: str | None = None
    algo: str | None = None
    steps: int | None = None
    seed: int = 0
    hyperparams: dict[str, Any] = field(default_factory=dict)
    normalize: bool | None = None
    env_options: dict[str, Any] = field(default_factory=dict)
    obs_wrappers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Study:
    """A parsed study file, paths resolved against its folder.

    :param report_dir: where ``study run`` writes ``<name>.html``, ``<name>.md`` and ``<name>.csv``
    """

    name: str
    path: Path
    policies: tuple[StudyPolicy, ...]
    targets: tuple[str, ...]
    episodes: int
    seed: int
    warmup_calls: int
    report_dir: Path
    optimise: str
    sweep: Any  # host.compress.sweep.SweepConfig (imported lazily: it pulls in the compression stack)
    description: str = ""
    rounds: int = ROUNDS_DEFAULT
    spoiled_retries: int = MAX_SPOILED_RETRIES_DEFAULT


def _zoo_root(study_dir: Path, configured: str | None) -> Path | None:
    if env := os.environ.get("DRLC_ZOO_DIR"):
        return Path(env)
    return (study_dir / configured).resolve() if configured else None


def _resolve_path(text: str, study_dir: Path, zoo: Path | None) -> Path:
    if text.startswith("zoo:"):
        if zoo is None:
            raise StudyError(
                f"{text!r} needs the RL Zoo folder: set DRLC_ZOO_DIR or zoo_dir = '...' in the study file"
            )
        return zoo / text.removeprefix("zoo:")
    path = Path(text).expanduser()
    return path if path.is_absolute() else (study_dir / path).resolve()


def load_study(path: Path) -> Study:
    """Read and check a study file; nothing is imported, trained or measured.

    :raises StudyError: the file cannot be read, has unknown keys or bad values, or names missing files
    """
    from host.compress.sweep import PAPER_RATIOS, SweepConfig

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StudyError(f"cannot read study file {path}: {exc}") from exc
    try:
        spec = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise StudyError(describe(path, exc, StudyFile)) from None
    study_dir = path.resolve().parent
    zoo = _zoo_root(study_dir, spec.zoo_dir)
    policies: list[StudyPolicy] = []
    for entry in spec.policy:
        if entry.import_ is not None:
            source = _resolve_path(entry.import_, study_dir, zoo)
            if not source.exists():
                raise StudyError(f"policy import = {entry.import_!r}: {source} does not exist")
            label = entry.import_.removeprefix("zoo:")
            policies.append(
                StudyPolicy(
                    "import",
                    label,
                    path=source,
                    env_id=entry.env,
                    algo=entry.algo,
                    env_options=dict(entry.env_options),
                    obs_wrappers=tuple(entry.obs_wrappers) if entry.obs_wrappers is not None else None,
                )
            )
        elif entry.onnx is not None:
            source = _resolve_path(entry.onnx, study_dir, zoo)
            if not source.is_file():
                raise StudyError(f"policy onnx = {entry.onnx!r}: {source} is not a file")
            policies.append(StudyPolicy("onnx", source.name, path=source))
        elif entry.model is not None:
            policies.append(StudyPolicy("model", entry.model, selector=entry.model))
        else:
            assert entry.train is not None and entry.env is not None  # for mypy: checked by the validator
            for seed in dict.fromkeys(entry.seeds):
                policies.append(
                    StudyPolicy(
                        "train",
                        f"{entry.train} {entry.env} seed {seed}",
                        env_id=entry.env,
                        algo=entry.train,
                        steps=entry.steps,
                        seed=seed,
                        hyperparams=dict(entry.hp),
                        normalize=entry.normalize,
                        env_options=dict(entry.env_options),
                    )
                )
    c = spec.compress
    sweep = SweepConfig(
        ratios=PAPER_RATIOS if c.ratios == "study" else tuple(float(r) for r in c.ratios),
        int8_methods=tuple(m for m in c.methods if m in INT8_METHODS),
        fp32_first_layer_variants=c.fp32_first_layer_variants,
        prune_methods=tuple(m for m in c.methods if m in PRUNE_METHODS),
        qat_mode=c.qat_mode,
        qat_steps=c.qat_steps,
        calibration_episodes=c.calibration_episodes,
    )
    report_dir = (
        _resolve_path(spec.report_dir, study_dir, zoo)
        if spec.report_dir
        else study_dir / f"{spec.name}-report"
    )
    return Study(
        name=spec.name,
        path=path.resolve(),
        policies=tuple(policies),
        targets=tuple(dict.fromkeys(spec.targets)),
        episodes=spec.episodes,
        seed=spec.seed,
        warmup_calls=spec.warmup_calls,
        rounds=spec.rounds,
        spoiled_retries=spec.spoiled_retries,
        report_dir=report_dir,
        optimise=spec.optimise,
        sweep=sweep,
        description=spec.description,
    )


# ---------------------------------------------------------------------------------------------
# Recipe keys: how a baseline is recognised as already made
# ---------------------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def baseline_recipe(policy: StudyPolicy) -> str | None:
    """The recipe key of an import or a training run (None for onnx/model entries: they are their file).

    An import is keyed by the checkpoint's and its VecNormalize's bytes, the env and the algorithm; a
    training run by its whole :class:`~host.train.TrainConfig`.
    """
    if policy.kind == "import":
        from host.export.sb3_loader import find_vecnormalize, resolve_checkpoint_path

        assert policy.path is not None  # for mypy: set by load_study
        try:
            checkpoint = resolve_checkpoint_path(policy.path)
            vecnormalize = find_vecnormalize(checkpoint)
        except DrlcError as exc:
            raise StudyError(f"policy {policy.label}: {exc}") from exc
        payload: dict[str, Any] = {
            "kind": "import",
            "checkpoint": _file_sha256(checkpoint),
            "vecnormalize": _file_sha256(vecnormalize) if vecnormalize else None,
            "env": policy.env_id,
            "algo": policy.algo,
        }
        if policy.env_options:  # only when given: imports without them keep their old keys
            payload["env_options"] = policy.env_options
        if policy.obs_wrappers is not None:
            payload["obs_wrappers"] = list(policy.obs_wrappers)
        return _key(payload)
    if policy.kind == "train":
        config = asdict(train_config(policy))
        if not config.get("env_kwargs"):
            config.pop("env_kwargs", None)  # added later: runs without env options keep their old keys
        return _key({"kind": "train", "config": config})
    return None


def train_config(policy: StudyPolicy) -> Any:
    from host.train import TrainConfig

    assert policy.algo is not None and policy.env_id is not None  # for mypy: train entries have both
    return TrainConfig(
        algo=policy.algo,
        env_id=policy.env_id,
        seed=policy.seed,
        total_steps=policy.steps,
        hyperparams=dict(policy.hyperparams),
        normalize=policy.normalize,
        env_kwargs=dict(policy.env_options),
    )


def find_baseline(db: ResultsDB, policy: StudyPolicy) -> ModelRow | None:
    """The registered baseline of ``policy``, or None when it still has to be imported or trained."""
    if policy.kind == "model":
        from host.artifacts import select_models

        assert policy.selector is not None
        try:
            rows = [r for r in select_models(db, [policy.selector]) if r.method == "baseline"]
        except DrlcError as exc:
            raise StudyError(f"policy model = {policy.selector!r}: {exc}") from exc
        if len(rows) != 1:
            raise StudyError(
                f"policy model = {policy.selector!r} matches {len(rows)} baselines; give a longer sha256 prefix"
            )
        return rows[0]
    if policy.kind == "onnx":
        from device_agent.manifest import sha256_bytes

        assert policy.path is not None
        return db.model(sha256_bytes(policy.path.read_bytes()))
    key = baseline_recipe(policy)
    assert key is not None
    return db.model_by_recipe(key)


# ---------------------------------------------------------------------------------------------
# The plan: what is missing, and how long it will take
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantPlan:
    method: str
    options: dict[str, Any]
    recipe_key: str | None
    """None while the baseline does not exist yet (its sha256 is part of the key)."""
    model: ModelRow | None
    """The registered variant, None when it still has to be made."""


@dataclass(frozen=True)
class PolicyPlan:
    policy: StudyPolicy
    baseline: ModelRow | None
    variants: tuple[VariantPlan, ...]
    jobs_missing: dict[str, int] = field(default_factory=dict)
    """Per target name: jobs of this policy's models (baseline and variants, made or not) still to run."""

    @property
    def variants_missing(self) -> int:
        return sum(v.model is None for v in self.variants)

    def models(self) -> list[ModelRow]:
        """Baseline and variants that exist now."""
        rows = [self.baseline] if self.baseline else []
        return rows + [v.model for v in self.variants if v.model is not None]


@dataclass(frozen=True)
class TargetPlan:
    name: str
    settings_key: str
    jobs_total: int
    jobs_missing: int
    est_s: float
    spawn_local: bool


@dataclass(frozen=True)
class StudyPlan:
    study: Study
    policies: tuple[PolicyPlan, ...]
    targets: tuple[TargetPlan, ...]
    est_baselines_s: float
    est_compress_s: float

    @property
    def est_deploy_s(self) -> float:
        """Targets on different devices are measured concurrently: the slowest one decides (an estimate)."""
        return max((t.est_s for t in self.targets), default=0.0)

    @property
    def est_total_s(self) -> float:
        return self.est_baselines_s + self.est_compress_s + self.est_deploy_s

    @property
    def nothing_to_do(self) -> bool:
        return all(p.baseline is not None and p.variants_missing == 0 for p in self.policies) and all(
            t.jobs_missing == 0 for t in self.targets
        )


def train_budget(policy: Any) -> int:
    """Env steps a ``train`` policy will run: its ``steps``, else what training uses, the RL Zoo's n_timesteps for
    the env (2e6 for Humanoid, 1e7 for some PPO entries), else 1e6. The dry run's estimate counts each cell's own."""
    from host.hyperparams import HyperparamError, lookup
    from host.train import DEFAULT_TOTAL_STEPS

    if policy.steps:
        return int(policy.steps)
    try:
        _, entry = lookup(policy.algo or "", policy.env_id or "")
    except HyperparamError:
        return DEFAULT_TOTAL_STEPS
    n = entry.get("n_timesteps")
    return (
        int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1 else DEFAULT_TOTAL_STEPS
    )


def deploy_config(study: Study) -> Any:
    from host.measure.deploy import DeployConfig

    return DeployConfig(
        n_episodes=study.episodes,
        seed=study.seed,
        warmup_calls=study.warmup_calls,
        rounds=study.rounds,
        max_spoiled_retries=study.spoiled_retries,
    )


def load_profiles(study: Study, profiles_dir: Path | None = None) -> list[TargetProfile]:
    from host.measure.profiles import find_profile, load_profile

    profiles = [load_profile(find_profile(name, profiles_dir)) for name in study.targets]
    local = [p.name for p in profiles if p.spawn_local]
    if len(local) > 1:
        raise StudyError(
            f"targets {', '.join(local)} all start an agent on this machine (spawn_local) and would share its "
            "data dir; measure this machine under one target name"
        )
    return profiles


def _plan_variants(db: ResultsDB, study: Study, baseline: ModelRow | None) -> tuple[VariantPlan, ...]:
    from host.compress import method_config
    from host.compress.sweep import plan, recipe_key

    out = []
    for item in plan(study.sweep):
        if baseline is None:
            out.append(VariantPlan(item.method, item.options, None, None))
            continue
        key = recipe_key(baseline.sha256, item.method, method_config(item.method, **item.options))
        out.append(VariantPlan(item.method, item.options, key, db.model_by_recipe(key)))
    return tuple(out)


def done_jobs(db: ResultsDB, target: str, settings_key: str, rounds: int = 1) -> set[str]:
    """sha256 of every model with a succeeded job in each of ``rounds`` rounds of one session on ``target``
    (by name) with these settings."""
    rows = db.conn.execute(
        """SELECT model_sha256 FROM jobs WHERE target = ? AND settings_key = ? AND state = 'succeeded'
           GROUP BY session_id, model_sha256 HAVING COUNT(DISTINCT COALESCE(round, 0)) >= ?""",
        (target, settings_key, rounds),
    )
    return {r[0] for r in rows}


def episode_seconds(db: ResultsDB, target: str, env_id: str) -> float | None:
    """Mean measured wall time of one episode of ``env_id`` on ``target``, from its finished jobs."""
    row = db.conn.execute(
        """SELECT AVG(e.wall_s) FROM episodes e JOIN jobs j ON j.job_id = e.job_id
           JOIN models m ON m.sha256 = j.model_sha256
           WHERE j.target = ? AND m.env_id = ? AND e.wall_s IS NOT NULL""",
        (target, env_id),
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def make_plan(study: Study, db: ResultsDB, profiles: list[TargetProfile]) -> StudyPlan:
    """What the study still has to do in this workspace, with an estimate of how long it takes."""
    from host.measure.deploy import deploy_key

    cfg = deploy_config(study)
    keys = {p.name: deploy_key(p, cfg) for p in profiles}
    done = {name: done_jobs(db, name, key, cfg.rounds) for name, key in keys.items()}
    policies = []
    est_baselines = est_compress = 0.0
    est_targets = dict.fromkeys(keys, 0.0)
    for policy in study.policies:
        baseline = find_baseline(db, policy)
        variants = _plan_variants(db, study, baseline)
        have = {m.sha256 for m in PolicyPlan(policy, baseline, variants).models()}
        n_models = 1 + len(variants)
        missing = {name: n_models - len(have & done[name]) for name in keys}
        policies.append(PolicyPlan(policy, baseline, variants, missing))
        if baseline is None:
            if policy.kind == "train":
                est_baselines += train_budget(policy) / EST_TRAIN_STEPS_PER_S.get(policy.algo or "", 500.0)
            else:
                est_baselines += EST_IMPORT_S
        n_variants = sum(v.model is None for v in variants)
        if n_variants:
            est_compress += EST_SWEEP_SETUP_S + sum(
                EST_VARIANT_S.get(v.method, 2.0) for v in variants if v.model is None
            )
        env_id = baseline.env_id if baseline is not None else policy.env_id
        for name in keys:
            per_episode = (episode_seconds(db, name, env_id) if env_id else None) or EST_EPISODE_S
            est_targets[name] += missing[name] * (
                EST_JOB_OVERHEAD_S + study.episodes * per_episode + (cfg.rounds - 1) * EST_LATENCY_ROUND_S
            )
    targets = tuple(
        TargetPlan(
            p.name,
            keys[p.name],
            sum(1 + len(pp.variants) for pp in policies),
            sum(pp.jobs_missing[p.name] for pp in policies),
            est_targets[p.name],
            p.spawn_local,
        )
        for p in profiles
    )
    return StudyPlan(study, tuple(policies), targets, est_baselines, est_compress)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------

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


def _make_baseline(
    policy: StudyPolicy, workspace: Workspace, db: ResultsDB, on_event: StudyEvent
) -> ModelRow:
    from host.artifacts import store_artifact

    key = baseline_recipe(policy)
    if policy.kind == "onnx":
        from host.compress.variant import Baseline

        assert policy.path is not None
        base = Baseline.load(policy.path)
        if base.manifest.method != "baseline":
            raise StudyError(f"{policy.path} is a {base.manifest.method} variant, not a baseline")
        return store_artifact(workspace, db, base.data, base.manifest)
    if policy.kind == "import":
        from host.export.sb3_loader import resolve_checkpoint_path
        from host.importer import import_checkpoint

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
        from host.train import train

        on_event("baseline", {"policy": policy.label, "status": "training"})
        result = train(
            train_config(policy),
            workspace.runs_dir,
            lambda p: on_event("train", {"policy": policy.label, "progress": p}),
            resume=True,
        )
        return store_artifact(
            workspace,
            db,
            result.exported.onnx_bytes,
            result.exported.manifest,
            checkpoint=result.checkpoint,
            recipe_key=key,
        )
    raise StudyError(f"policy {policy.label}: no registered baseline matches {policy.selector!r}")


def _compress(
    pp: PolicyPlan,
    study: Study,
    workspace: Workspace,
    db: ResultsDB,
    outcome: StudyOutcome,
    on_event: StudyEvent,
) -> None:
    from host.artifacts import store_artifact
    from host.compress.sweep import PlannedVariant, run_sweep
    from host.compress.variant import Baseline

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
    from host.measure.deploy import connect

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
) -> Any:
    """One target's deploy, on its group's thread: its own database connection (sqlite3 connections stay in
    their thread)."""
    from host.measure.deploy import deploy

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

    def run_group(group: list[TargetProfile]) -> dict[str, Any]:
        results: dict[str, Any] = {}
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
        from host.study_executor import train_on

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
        a Ray cluster: :mod:`host.study_executor`); None: in this process, one after another

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
        from host.study_executor import compress_on

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


def study_rows(study: Study, db: ResultsDB) -> list[Any]:
    """The report rows of the study's baselines (and their variants) on the study's targets."""
    from host.report.rows import ReportFilter, collect_rows

    baselines = tuple(row.sha256 for p in study.policies if (row := find_baseline(db, p)) is not None)
    if not baselines:
        return []
    return ReportFilter(targets=study.targets, baselines=baselines).apply(collect_rows(db))


def write_study_report(study: Study, db: ResultsDB) -> list[Path]:
    """The study's report files: ``<name>.html`` (plots embedded), ``<name>.md`` and ``<name>.csv``."""
    from host.report.analysis import analyse
    from host.report.csv_report import render_csv
    from host.report.html import render_html
    from host.report.markdown import render_markdown
    from host.report.rows import device_infos

    rows = study_rows(study, db)
    if not rows:
        raise StudyError(
            f"study {study.name}: nothing measured yet, so nothing to report; run `drlc-host study run`"
        )
    study.report_dir.mkdir(parents=True, exist_ok=True)
    title = f"drlc study: {study.name}"
    analysis = analyse(rows, study.optimise)
    files = {
        f"{study.name}.html": render_html(
            analysis, title=title, description=study.description, devices=device_infos(db, rows)
        ),
        f"{study.name}.md": render_markdown(analysis, title=title),
        f"{study.name}.csv": render_csv(analysis),
    }
    out = []
    for name, text in files.items():
        path = study.report_dir / name
        path.write_text(text)
        out.append(path)
    return out
