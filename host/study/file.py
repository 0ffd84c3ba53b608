"""The study file (TOML): its model, checked on load, and the :class:`Study` it describes.

A study file names the policies (RL Zoo checkpoints to import, baseline ONNX files, registered models,
or algorithm/env pairs to train with some seeds), the compression grid, the episodes and the targets.
:func:`load_study` reads and checks it, resolving paths against the file's folder; nothing is imported,
trained or measured.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from device_agent.contract.vocabulary import ALGORITHMS, COMPRESSION_METHODS, INT8_METHODS, PRUNING_METHODS
from host.compress.sweep import PAPER_RATIOS, SweepConfig
from host.measure.config_errors import describe
from host.errors import DrlcError
from host.decision import NOISE_THRESHOLD
from host.measure.protocol import (
    EXTRA_ROUND_BASE,
    MAX_ROUNDS_DEFAULT,
    MAX_SPOILED_RETRIES_DEFAULT,
    N_EPISODES_DEFAULT,
    ROUNDS_DEFAULT,
    WARMUP_CALLS_DEFAULT,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class StudyError(DrlcError):
    """A study file is malformed, names something that does not exist, or a phase of the study failed."""


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
    train: str | None = Field(default=None, description=f"algorithm to train on env: {', '.join(ALGORITHMS)}")
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

    @field_validator("train", "algo")
    @classmethod
    def _known_algorithm(cls, name: str | None, info: ValidationInfo) -> str | None:
        # an import's algo is matched in any case (as drlc-host import --algo); training takes the registry's name
        known = name if info.field_name == "train" or name is None else name.lower()
        if known is not None and known not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
        return name

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

    methods: list[str] = Field(default_factory=lambda: list(COMPRESSION_METHODS))
    ratios: list[float] | Literal["study"] = Field(default="study", description="pruning ratios or 'study'")
    fp32_first_layer_variants: bool = True
    qat_mode: str = "distill"
    qat_steps: int | None = None
    calibration_episodes: int = Field(default=20, ge=1)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in COMPRESSION_METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; known: {', '.join(COMPRESSION_METHODS)}")
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
    episodes: int | None = Field(
        default=None,
        ge=1,
        description="episodes per model and target; unset: each target profile's [measurement] n_episodes, "
        f"else {N_EPISODES_DEFAULT}",
    )
    seed: int = Field(default=0, description="episode i is reset with seed + i, on every target")
    warmup_calls: int | None = Field(
        default=None,
        ge=0,
        description="uncounted inference calls before timing; unset: each target profile's [measurement] "
        f"warmup_calls, else {WARMUP_CALLS_DEFAULT}",
    )
    rounds: int = Field(default=ROUNDS_DEFAULT, ge=1, description="latency rounds per model and target")
    max_rounds: int = Field(
        default=MAX_ROUNDS_DEFAULT,
        ge=1,
        lt=EXTRA_ROUND_BASE,
        description="then more paired rounds, up to this many in all, for variants whose latency verdict is "
        f"unsettled (its CI crosses ±{NOISE_THRESHOLD:.0%}, or undecided); rounds or less: none",
    )
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
    episodes: int | None
    """None: each target's (host.measure.deploy.episodes_for)."""
    seed: int
    warmup_calls: int | None
    """None: each target's, as ``episodes``."""
    report_dir: Path
    optimise: str
    sweep: SweepConfig
    description: str = ""
    rounds: int = ROUNDS_DEFAULT
    max_rounds: int = MAX_ROUNDS_DEFAULT
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
        prune_methods=tuple(m for m in c.methods if m in PRUNING_METHODS),
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
        max_rounds=spec.max_rounds,
        spoiled_retries=spec.spoiled_retries,
        report_dir=report_dir,
        optimise=spec.optimise,
        sweep=sweep,
        description=spec.description,
    )
