"""Compression methods. Each lives in its own module with its config dataclass beside it and
one signature, ``compress(baseline, cfg, ctx) -> MethodOutput``, registered by name in
:mod:`host.compress.methods` (the vocabulary); :func:`make_variant` runs one and finalizes the result into an
ordinary drlc artifact; :mod:`host.compress.sweep` plans and runs the study's grid.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any

from host.compress.methods import METHODS, MethodEntry
from host.compress.variant import Baseline, CompressionContext, Variant, finalize
from host.errors import CompressionError


CLI_FLAGS: dict[str, str] = {
    "ratio": "--ratio",
    "fp32_first_layer": "--fp32-first-layer",
    "calibration_episodes": "--calibration-episodes",
    "calibration_method": "--calibration-method",
    "steps": "--steps",
    "mode": "--mode",
    "finetune_steps": "--finetune-steps",
    "finetune_mode": "--finetune-mode",
}
"""Options ``drlc-host compress`` has a flag for; every other one is given as ``--opt key=value``."""

REQUIRED_EXAMPLES: dict[str, str] = {"ratio": "0.3 (removes 30 % of each hidden layer's neurons)"}
"""What an error suggests for a required option that was left out."""


def option_flag(name: str) -> str:
    """How a user types this option on the command line."""
    return CLI_FLAGS.get(name, f"--opt {name}=VALUE")


def _shown(name: str) -> str:
    """An option as an error names it: its flag, or ``--opt name=…`` for the ones without a flag."""
    return CLI_FLAGS.get(name, f"--opt {name}=…")


def method_options(method: str) -> dict[str, dataclasses.Field[Any]]:
    """The options a method takes, by name (its config dataclass's fields)."""
    config_cls, _ = _entry(method).load()
    return {f.name: f for f in dataclasses.fields(config_cls)}


def _entry(method: str) -> MethodEntry:
    entry = METHODS.get(method.lower())
    if entry is None:
        raise CompressionError(f"unknown compression method {method!r}; known: {', '.join(METHODS)}")
    return entry


def _check_options(method: str, options: dict[str, Any]) -> None:
    """Name what is unknown, missing or of the wrong type, with the method's valid options."""
    fields = method_options(method)
    valid = ", ".join(_shown(name) for name in fields)
    for name in options:
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            guess = f"did you mean {_shown(close[0])}? " if close else ""
            takers = [m for m in METHODS if m != method and name in method_options(m)]
            only = f" (that is an option of {', '.join(takers)})" if takers else ""
            raise CompressionError(f"{method} takes no {_shown(name)}{only}; {guess}{method} takes: {valid}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in options:
            example = REQUIRED_EXAMPLES.get(name, "VALUE")
            raise CompressionError(f"{method} needs {_shown(name)}, e.g. {option_flag(name)} {example}")
        if name in options and f.default is not dataclasses.MISSING and f.default is not None:
            want = type(f.default)
            value = options[name]
            fits = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                fits = True
            if not fits:
                raise CompressionError(
                    f"{method}: {_shown(name)} takes a {want.__name__} (default {json.dumps(f.default)}), "
                    f"got {value!r}"
                )


def method_config(method: str, **options: Any) -> Any:
    """The config of ``method`` (any case) with ``options``; every user mistake is a CompressionError that
    lists what the method takes."""
    config_cls, _ = _entry(method).load()
    _check_options(method.lower(), options)
    try:
        return config_cls(**options)
    except (TypeError, ValueError) as exc:
        raise CompressionError(f"bad options for {method}: {exc}") from exc


def make_variant(baseline: Baseline, method: str, cfg: Any, ctx: CompressionContext | None = None) -> Variant:
    _, function = _entry(method).load()
    method = method.lower()
    ctx = ctx or CompressionContext(baseline)
    return finalize(baseline, method, function(baseline, cfg, ctx), ctx)


__all__ = [
    "METHODS",
    "Baseline",
    "CompressionContext",
    "Variant",
    "make_variant",
    "method_config",
    "method_options",
    "option_flag",
]
