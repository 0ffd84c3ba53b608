"""The study's grid for one baseline: three int8 methods and L1/L2 pruning at 5 %..70 %.

Every variant is identified before it is made by its recipe key, the hash of (baseline
sha256, method, requested config); a variant whose recipe is already registered is
skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_agent.contract.vocabulary import INT8_METHODS, PRUNING_METHODS
from host.compress import make_variant, method_config
from host.compress.variant import Baseline, CompressionContext, Variant

PAPER_RATIOS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 15))
"""5 %, 10 %, ... 70 %: the study's pruning grid."""


@dataclass(frozen=True)
class SweepConfig:
    ratios: tuple[float, ...] = PAPER_RATIOS
    """Pruning ratios for both L1 and L2."""
    int8_methods: tuple[str, ...] = INT8_METHODS
    """Quantization methods, each once with the study's all-int8 setting."""
    fp32_first_layer_variants: bool = True
    """Also make each int8 method with the first layer kept in fp32 (a finding the study did not have)."""
    prune_methods: tuple[str, ...] = PRUNING_METHODS
    qat_mode: str = "distill"
    """distill (fast) or rl (the study's: continues RL training; needs the SB3 checkpoint)."""
    qat_steps: int | None = None
    """None: the QAT config's default for the mode."""
    calibration_episodes: int = 20
    """PTSQ calibration rollouts."""


@dataclass(frozen=True)
class PlannedVariant:
    method: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        extras = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.method}({extras})" if extras else self.method


def plan(cfg: SweepConfig) -> list[PlannedVariant]:
    planned = []
    for method in cfg.int8_methods:
        base: dict[str, Any] = {}
        if method == "qat":
            base["mode"] = cfg.qat_mode
            if cfg.qat_steps is not None:
                base["steps"] = cfg.qat_steps
        if method == "ptsq":
            base["calibration_episodes"] = cfg.calibration_episodes
        planned.append(PlannedVariant(method, base))
        if cfg.fp32_first_layer_variants:
            planned.append(PlannedVariant(method, {**base, "fp32_first_layer": True}))
    for method in cfg.prune_methods:
        planned += [PlannedVariant(method, {"ratio": r}) for r in cfg.ratios]
    return planned


def recipe_key(parent_sha256: str, method: str, config: Any) -> str:
    """Same baseline, method and effective config -> same key (and, by construction, the same bytes)."""
    payload = json.dumps(
        {"parent": parent_sha256, "method": method, "config": dataclasses.asdict(config)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


SweepProgress = Callable[[PlannedVariant, str], None]
"""(variant, status) with status 'made', 'skipped' or 'failed: ...'."""


def run_sweep(
    baseline: Baseline,
    cfg: SweepConfig,
    is_done: Callable[[str], bool],
    store: Callable[[Variant, str], None],
    progress: SweepProgress | None = None,
) -> dict[str, list[PlannedVariant]]:
    """Make every planned variant not yet made; one context, so rollouts are collected once.

    :param is_done: does the workspace already hold the variant with this recipe key?
    :param store: register a new variant under its recipe key
    """
    ctx = CompressionContext(baseline)
    outcome: dict[str, list[PlannedVariant]] = {"made": [], "skipped": [], "failed": []}
    for item in plan(cfg):
        config = method_config(item.method, **item.options)
        key = recipe_key(baseline.sha256, item.method, config)
        if is_done(key):
            outcome["skipped"].append(item)
            status = "skipped"
        else:
            try:
                store(make_variant(baseline, item.method, config, ctx), key)
                outcome["made"].append(item)
                status = "made"
            except Exception as exc:  # one failed variant must not lose the rest of the sweep
                outcome["failed"].append(item)
                status = f"failed: {type(exc).__name__}: {exc}"
        if progress:
            progress(item, status)
    return outcome
