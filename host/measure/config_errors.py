"""One readable line from a pydantic ValidationError of a TOML file (a study or a target profile).

pydantic says "Extra inputs are not permitted" at a location tuple; a user needs the file, the TOML
section, the bad key, the keys that are valid there and, for a typo, the key they meant.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly, in a list or behind ``| None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _nested_model(arg)) is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel], str]:
    """The model that holds the last key of ``loc`` and the TOML section it is in ("" for the top level),
    written as in the file: ``[compress]``, ``[[policy]] #2``."""
    section: list[str] = []
    for part in loc[:-1]:
        if isinstance(part, int):  # an array of tables: [[policy]] number part + 1
            section[-1:] = [f"[{section[-1]}] #{part + 1}"] if section else []
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        field = fields.get(str(part))
        inner = _nested_model(field.annotation) if field else None
        if inner is None:
            break
        model = inner
        section.append(f"[{part}]")
    return model, " ".join(section)


def describe(path: Path, exc: ValidationError, root: type[BaseModel]) -> str:
    """Every problem pydantic found, each naming the key, its section, the valid keys and a close match."""
    lines: list[str] = []
    unknown: dict[str, tuple[type[BaseModel], list[str]]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        model, section = _walk(root, loc) if loc else (root, "")
        where = f"{section} of {path}" if section else str(path)
        key = str(loc[-1]) if loc else ""
        if error["type"] == "extra_forbidden":
            unknown.setdefault(where, (model, []))[1].append(key)
        elif error["type"] == "missing":
            lines.append(f"{where} needs {key!r}")
        else:
            label = f"{key!r} in {where}" if key else where
            lines.append(f"{label}: {error['msg']}")
    for where, (model, keys) in unknown.items():
        valid = _keys(model)
        guesses = [
            (f"{close[0]!r}" if len(keys) == 1 else f"{close[0]!r} for {k!r}")
            for k in keys
            if (close := difflib.get_close_matches(k, valid, n=1))
        ]
        guess = f"did you mean {', '.join(guesses)}? " if guesses else ""
        named = ", ".join(repr(k) for k in keys)
        lines.insert(
            0,
            f"unknown key{'s' if len(keys) > 1 else ''} {named} in {where}; {guess}valid keys: {', '.join(valid)}",
        )
    return "; ".join(lines)
