"""What the host needs of each compression method: the module that implements it, imported on use.

The names, their families (int8, pruning) and the order reports list them in are the agent contract's
(:mod:`device_agent.contract.vocabulary`: ``BASELINE``, ``INT8_METHODS``, ``PRUNING_METHODS``,
``COMPRESSION_METHODS``, ``METHODS``), declared once there because manifests carry them; every part of the
host takes them from there. :data:`METHODS` keys on them and refuses, on import, to lack one or add one.

Importing this module loads nothing of the methods themselves (quantization needs no torch, pruning and QAT
do), so a report can use the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device_agent.contract import vocabulary
from host.vocabulary import keyed_on


@dataclass(frozen=True)
class MethodEntry:
    """Where a method's config dataclass and ``compress`` function live."""

    module: str
    config: str
    function: str = "compress"

    def load(self) -> tuple[type, Any]:
        """(config class, compress function), importing the method's module."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config), getattr(module, self.function)


METHODS: Mapping[str, MethodEntry] = keyed_on(
    vocabulary.COMPRESSION_METHODS,
    {
        "ptdq": MethodEntry("host.compress.quantize", "PTDQConfig", "compress_ptdq"),
        "ptsq": MethodEntry("host.compress.quantize", "PTSQConfig", "compress_ptsq"),
        "qat": MethodEntry("host.compress.qat", "QATConfig"),
        "l1": MethodEntry("host.compress.prune", "PruneConfig", "compress_l1"),
        "l2": MethodEntry("host.compress.prune", "PruneConfig", "compress_l2"),
    },
    "host.compress.methods.METHODS",
)
"""Every compression method the contract names, in its order (``vocabulary.COMPRESSION_METHODS``)."""

METHOD_ORDER: Mapping[str, int] = {m: i for i, m in enumerate(vocabulary.METHODS)}
"""Where a report puts a model of each method: the baseline first, then the methods in the contract's order."""
UNKNOWN_ORDER = len(METHOD_ORDER) + 1
"""The place of a method this host does not know (a variant made by a newer drlc): last."""
