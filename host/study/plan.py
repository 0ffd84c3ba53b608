"""The plan of a study: what this workspace still misses, and how long making it should take.

:func:`make_plan` looks at the results database and does nothing: the dry run prints it, and
:func:`host.study.run.run_study` makes it again between phases to see what is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.compress import method_config
from host.compress.sweep import plan as sweep_plan
from host.compress.sweep import recipe_key
from host.measure.deploy import DeployConfig, deploy_key, episodes_for
from host.measure.profiles import TargetProfile, find_profile, load_profile
from host.measure.protocol import LATER_ROUNDS_ALL
from host.store.results_db import ModelRow, ResultsDB
from host.study.file import Study, StudyError, StudyPolicy
from host.study.recipes import find_baseline
from host.training.hyperparams import HyperparamError, lookup
from host.training.run import DEFAULT_TOTAL_STEPS

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
    episodes: int
    """Episodes per job there: the study's, else the target profile's, else the protocol's default."""


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


def train_budget(policy: StudyPolicy) -> int:
    """Env steps a ``train`` policy will run: its ``steps``, else what training uses, the RL Zoo's n_timesteps for
    the env (2e6 for Humanoid, 1e7 for some PPO entries), else 1e6. The dry run's estimate counts each cell's own."""
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


def deploy_config(study: Study) -> DeployConfig:
    """How the study measures every model: its episodes, seed, warm-up, rounds and retries."""
    return DeployConfig(
        n_episodes=study.episodes,
        seed=study.seed,
        warmup_calls=study.warmup_calls,
        rounds=study.rounds,
        max_rounds=study.max_rounds,
        max_spoiled_retries=study.spoiled_retries,
        # a study reports every variant's latency verdict (the paper's tables), and counts a model as done when
        # it has every round: its later rounds time every model
        later_rounds=LATER_ROUNDS_ALL,
    )


def load_profiles(study: Study, profiles_dir: Path | None = None) -> list[TargetProfile]:
    """The study's target profiles, by name (one spawn_local target at most: they would share its agent)."""
    profiles = [load_profile(find_profile(name, profiles_dir)) for name in study.targets]
    local = [p.name for p in profiles if p.spawn_local]
    if len(local) > 1:
        raise StudyError(
            f"targets {', '.join(local)} all start an agent on this machine (spawn_local) and would share its "
            "data dir; measure this machine under one target name"
        )
    return profiles


def _plan_variants(db: ResultsDB, study: Study, baseline: ModelRow | None) -> tuple[VariantPlan, ...]:
    out = []
    for item in sweep_plan(study.sweep):
        if baseline is None:
            out.append(VariantPlan(item.method, item.options, None, None))
            continue
        key = recipe_key(baseline.sha256, item.method, method_config(item.method, **item.options))
        out.append(VariantPlan(item.method, item.options, key, db.model_by_recipe(key)))
    return tuple(out)


def done_jobs(db: ResultsDB, target: str, settings_key: str, rounds: int = 1) -> set[str]:
    """sha256 of every model with a succeeded job in each of ``rounds`` rounds of one session on ``target``
    (by name) with these settings."""
    return db.models_done_on(target, settings_key, rounds)


def episode_seconds(db: ResultsDB, target: str, env_id: str) -> float | None:
    """Mean measured wall time of one episode of ``env_id`` on ``target``, from its finished jobs."""
    return db.mean_episode_wall_s(target, env_id)


def make_plan(study: Study, db: ResultsDB, profiles: list[TargetProfile]) -> StudyPlan:
    """What the study still has to do in this workspace, with an estimate of how long it takes."""
    cfg = deploy_config(study)
    keys = {p.name: deploy_key(p, cfg) for p in profiles}
    episodes = {p.name: episodes_for(p, cfg) for p in profiles}
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
                EST_JOB_OVERHEAD_S + episodes[name] * per_episode + (cfg.rounds - 1) * EST_LATENCY_ROUND_S
            )
    targets = tuple(
        TargetPlan(
            p.name,
            keys[p.name],
            sum(1 + len(pp.variants) for pp in policies),
            sum(pp.jobs_missing[p.name] for pp in policies),
            est_targets[p.name],
            p.spawn_local,
            episodes[p.name],
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
