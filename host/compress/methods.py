"""The compression methods' vocabulary, declared once: every name, its family, and the order reports show.

Each name maps to the module that implements it, imported on use: importing this module loads nothing of the
methods themselves (quantization needs no torch, pruning and QAT do), so a report can use the vocabulary. The
agent's manifest carries the same names in its ``method`` field as plain strings; the host is where variants
are made, so the vocabulary lives here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

BASELINE = "baseline"
"""The ``method`` of an uncompressed policy (a baseline is no compression method)."""


class Family(str, Enum):
    int8 = "int8"
    """Quantization to int8 (weights, and activations for the static methods)."""
    pruning = "pruning"
    """Structural pruning of hidden neurons at a ratio."""


@dataclass(frozen=True)
class MethodEntry:
    """A method: its family, and where its config dataclass and ``compress`` function live."""

    family: Family
    module: str
    config: str
    function: str = "compress"

    def load(self) -> tuple[type, Any]:
        """(config class, compress function), importing the method's module."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.function)


METHODS: dict[str, MethodEntry] = {
    "ptdq": MethodEntry(Family.int8, "host.compress.quantize", "PTDQConfig", "compress_ptdq"),
    "ptsq": MethodEntry(Family.int8, "host.compress.quantize", "PTSQConfig", "compress_ptsq"),
    "qat": MethodEntry(Family.int8, "host.compress.qat", "QATConfig"),
    "l1": MethodEntry(Family.pruning, "host.compress.prune", "PruneConfig", "compress_l1"),
    "l2": MethodEntry(Family.pruning, "host.compress.prune", "PruneConfig", "compress_l2"),
}
"""Every compression method by name, in the order the study and every report list them."""

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
INT8_METHODS: tuple[str, ...] = tuple(m for m, e in METHODS.items() if e.family is Family.int8)
PRUNING_METHODS: tuple[str, ...] = tuple(m for m, e in METHODS.items() if e.family is Family.pruning)

METHOD_ORDER: dict[str, int] = {BASELINE: 0} | {m: i + 1 for i, m in enumerate(METHOD_NAMES)}
"""Where a report puts a model of each method: the baseline first, then the methods in declaration order."""
UNKNOWN_ORDER = len(METHOD_ORDER) + 1
"""The place of a method this host does not know (a variant made by a newer drlc): last."""
