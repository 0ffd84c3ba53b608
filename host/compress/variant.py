"""What every compression method shares: the baseline it starts from, the variant it ends with.

A method returns an ONNX graph; :func:`finalize` turns it into an ordinary drlc artifact:
it writes the manifest (lineage: parent sha256, method, parameters), measures the action
error against the baseline on held-out observations and refuses a graph whose outputs are
non-finite or shaped wrong. Serialisation is deterministic, so the same inputs give the
same sha256 and a sweep can skip what it already made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from device_agent.contract.manifest import MANIFEST_KEY, ArtifactManifest, sha256_bytes
from host.policies.env_setup import EnvSetup
from host.compress.observations import HELD_OUT_SEED, ObservationSet, actions, collect_observations
from host.errors import CompressionError
from host.policies.onnx_reader import spec_from_onnx
from host.policies.spec import PolicySpec
from host.policies.importer import package_versions


@dataclass(frozen=True, eq=False)
class Baseline:
    """An fp32 drlc artifact to compress, with its actor read back from the graph."""

    data: bytes
    sha256: str
    manifest: ArtifactManifest
    spec: PolicySpec
    checkpoint: Path | None = None
    """The SB3 checkpoint it was exported from, when known (QAT's rl mode needs it)."""

    @classmethod
    def from_bytes(cls, data: bytes, checkpoint: Path | None = None) -> Baseline:
        spec, manifest = spec_from_onnx(data)
        return cls(data, sha256_bytes(data), manifest, spec, checkpoint)

    @classmethod
    def load(cls, path: Path, checkpoint: Path | None = None) -> Baseline:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CompressionError(f"cannot read baseline {path}: {exc}") from exc
        return cls.from_bytes(data, checkpoint)


@dataclass
class CompressionContext:
    """Observations a method may need, collected once per baseline and shared across a sweep."""

    baseline: Baseline
    held_out_episodes: int = 3
    """Episodes (seeds from HELD_OUT_SEED) whose observations measure every variant's action error."""
    _rollouts: dict[tuple[int, int, float], ObservationSet] = field(default_factory=dict)

    def rollout(self, n_episodes: int, seed: int = 0, action_noise_std: float = 0.0) -> ObservationSet:
        if seed + n_episodes > HELD_OUT_SEED:
            raise CompressionError(
                f"seeds {seed}..{seed + n_episodes - 1} overlap the held-out evaluation seeds (>= {HELD_OUT_SEED})"
            )
        key = (n_episodes, seed, action_noise_std)
        if key not in self._rollouts:
            self._rollouts[key] = collect_observations(
                self.baseline.data,
                EnvSetup.of(self.baseline.manifest),
                n_episodes,
                seed,
                action_noise_std=action_noise_std,
            )
        return self._rollouts[key]

    @cached_property
    def held_out(self) -> ObservationSet:
        return collect_observations(
            self.baseline.data, EnvSetup.of(self.baseline.manifest), self.held_out_episodes, HELD_OUT_SEED
        )

    @cached_property
    def held_out_baseline_actions(self) -> np.ndarray:
        return actions(self.baseline.data, self.held_out.obs)


@dataclass(frozen=True, eq=False)
class MethodOutput:
    """What a compression method hands back before its variant is finalized."""

    model: onnx.ModelProto
    params: dict[str, Any]
    """Everything that determines the result (recorded in the manifest and in the name)."""
    hidden_sizes: list[int]
    n_params: int
    metrics: dict[str, Any] = field(default_factory=dict)
    """Method-specific facts, e.g. the number of integer kernels or fine-tuning loss."""


@dataclass(frozen=True, eq=False)
class Variant:
    data: bytes
    sha256: str
    manifest: ArtifactManifest


Method = Callable[[Baseline, Any, CompressionContext], MethodOutput]


def variant_name(base: ArtifactManifest, method: str, params: dict[str, Any]) -> str:
    suffix = method
    if "ratio" in params:
        pct = float(params["ratio"]) * 100
        # whole percents as the study names them (l2-05); others keep their tenth (0.4 % -> l2-0p4, not l2-00)
        suffix += (
            f"-{round(pct):02d}" if abs(pct - round(pct)) < 1e-6 else "-" + f"{pct:.1f}".replace(".", "p")
        )
    if params.get("fp32_first_layer"):
        suffix += "-fp32first"
    if "mode" in params:
        suffix += f"-{params['mode']}"
    return f"{base.name}-{suffix}"


def _compression_versions() -> dict[str, str]:
    out = {}
    for dist in ("onnxruntime", "torch-pruning"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _set_manifest(model: onnx.ModelProto, manifest: ArtifactManifest) -> bytes:
    props = [p for p in model.metadata_props if p.key != MANIFEST_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in props}, MANIFEST_KEY: manifest.to_json()})
    return model.SerializeToString(deterministic=True)


def finalize(baseline: Baseline, method: str, out: MethodOutput, ctx: CompressionContext) -> Variant:
    """Attach lineage and the measured action error; refuse variants that do not behave like policies."""
    manifest = baseline.manifest.model_copy(
        update={
            "name": variant_name(baseline.manifest, method, out.params),
            "method": method,
            "method_params": out.params,
            "parent_sha256": baseline.sha256,
            "hidden_sizes": out.hidden_sizes,
            "n_params": out.n_params,
            "metrics": {},
            # the tools that made this variant, not only those that made its baseline
            "versions": {**baseline.manifest.versions, **package_versions(), **_compression_versions()},
        }
    )
    draft = _set_manifest(out.model, manifest)
    reference = ctx.held_out_baseline_actions
    try:
        got = actions(draft, ctx.held_out.obs, batch1=True)
    except Exception as exc:  # ORT's own exception types
        raise CompressionError(
            f"ONNX Runtime cannot run the {method} variant: {type(exc).__name__}: {exc}"
        ) from exc
    if got.shape != reference.shape:
        raise CompressionError(
            f"the {method} variant returns actions of shape {got.shape}, the baseline {reference.shape}"
        )
    if not np.isfinite(got).all():
        raise CompressionError(f"the {method} variant returns non-finite actions; refused")
    error = np.abs(got.astype(np.float64) - reference)
    metrics = {
        "action_error_max_abs": float(error.max()),
        "action_error_mean_abs": float(error.mean()),
        "action_error_eval": ctx.held_out.provenance,
        **out.metrics,
    }
    manifest = manifest.model_copy(update={"metrics": metrics})
    data = _set_manifest(out.model, manifest)
    return Variant(data, sha256_bytes(data), manifest)
