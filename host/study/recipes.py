"""Recipe keys: how a study recognises a baseline it already made.

Each baseline a study imports or trains is registered under a recipe key, the hash of what made it, so
running the study again finds it instead of making it twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from device_agent.contract.manifest import sha256_bytes
from device_agent.contract.vocabulary import BASELINE
from host.errors import DrlcError
from host.policies.sb3.files import find_vecnormalize, resolve_checkpoint_path
from host.store.artifacts import select_models
from host.store.results_db import ModelRow, ResultsDB
from host.study.file import StudyError, StudyPolicy
from host.training.run import TrainConfig


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
    training run by its whole :class:`~host.training.run.TrainConfig`.
    """
    if policy.kind == "import":
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


def train_config(policy: StudyPolicy) -> TrainConfig:
    """The training run of a ``train`` policy."""
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
        assert policy.selector is not None
        try:
            rows = [r for r in select_models(db, [policy.selector]) if r.method == BASELINE]
        except DrlcError as exc:
            raise StudyError(f"policy model = {policy.selector!r}: {exc}") from exc
        if len(rows) != 1:
            raise StudyError(
                f"policy model = {policy.selector!r} matches {len(rows)} baselines; give a longer sha256 prefix"
            )
        return rows[0]
    if policy.kind == "onnx":
        assert policy.path is not None
        return db.model(sha256_bytes(policy.path.read_bytes()))
    key = baseline_recipe(policy)
    assert key is not None
    return db.model_by_recipe(key)
