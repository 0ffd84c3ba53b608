"""Compression methods. Each lives in its own module with its config dataclass beside it and
one signature, ``compress(baseline, cfg, ctx) -> MethodOutput``; :func:`make_variant` runs
one and finalizes the result into an ordinary drlc artifact.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from host.compress.variant import Baseline, CompressionContext, Variant, finalize
from host.errors import CompressionError


@dataclass(frozen=True)
class MethodEntry:
    module: str
    config: str
    function: str = "compress"

    def load(self) -> tuple[type, Any]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.function)


# Modules are imported on use: quantization needs no torch, pruning and QAT do.
METHODS: dict[str, MethodEntry] = {
    "ptdq": MethodEntry("host.compress.quantize", "PTDQConfig", "compress_ptdq"),
    "ptsq": MethodEntry("host.compress.quantize", "PTSQConfig", "compress_ptsq"),
    "qat": MethodEntry("host.compress.qat", "QATConfig"),
    "l1": MethodEntry("host.compress.prune", "PruneConfig", "compress_l1"),
    "l2": MethodEntry("host.compress.prune", "PruneConfig", "compress_l2"),
}


def method_config(method: str, **options: Any) -> Any:
    if method not in METHODS:
        raise CompressionError(f"unknown compression method {method!r}; known: {', '.join(METHODS)}")
    config_cls, _ = METHODS[method].load()
    try:
        return config_cls(**options)
    except TypeError as exc:
        raise CompressionError(f"bad options for {method}: {exc}") from exc


def make_variant(baseline: Baseline, method: str, cfg: Any, ctx: CompressionContext | None = None) -> Variant:
    if method not in METHODS:
        raise CompressionError(f"unknown compression method {method!r}; known: {', '.join(METHODS)}")
    _, function = METHODS[method].load()
    ctx = ctx or CompressionContext(baseline)
    return finalize(baseline, method, function(baseline, cfg, ctx), ctx)


__all__ = ["METHODS", "Baseline", "CompressionContext", "Variant", "make_variant", "method_config"]
