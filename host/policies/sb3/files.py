"""Finding the files of a checkpoint: the model zip, the RL Zoo's config folder, ``vecnormalize.pkl``.

The RL Zoo layout is ``<algo>/<Env>/<Env>.zip`` with ``<algo>/<Env>/<Env>/{args.yml, config.yml,
vecnormalize.pkl}``; a bare ``.zip`` with a ``vecnormalize.pkl`` beside it works too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from host.errors import CheckpointError
from host.policies.zoo_files import zoo_yaml

VECNORMALIZE_NAMES = ("vecnormalize.pkl", "vec_normalize.pkl")
_ENV_ID_RE = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")
_RUN_SUFFIX_RE = re.compile(r"_\d+$")


def resolve_checkpoint_path(path: Path) -> Path:
    """The model zip for ``path``: the zip itself, or the one zip of an RL Zoo run folder.

    A folder ``<Env>/`` resolves to ``<Env>/<Env>.zip`` (the zoo's final model) when present,
    else to its only ``.zip``.
    """
    if path.is_file():
        return path
    if path.is_dir():
        named = path / f"{path.name}.zip"
        if named.is_file():
            return named
        zips = sorted(path.glob("*.zip"))
        if len(zips) == 1:
            return zips[0]
        found = ", ".join(z.name for z in zips) or "none"
        raise CheckpointError(f"{path} holds {len(zips)} .zip checkpoints ({found}); pass the one to import")
    if path.with_suffix(".zip").is_file():
        return path.with_suffix(".zip")
    raise CheckpointError(f"no checkpoint at {path}: expected an SB3 .zip or an RL Zoo run folder")


def config_dirs(checkpoint: Path) -> list[Path]:
    """Folders that may hold the zoo's args.yml / config.yml / vecnormalize.pkl for ``checkpoint``."""
    parent = checkpoint.parent
    dirs = [parent / checkpoint.stem]
    # A zoo run folder ``<Env>_1/`` keeps best_model.zip beside ``<Env>/``: take the one subfolder.
    subdirs = [
        d
        for d in sorted(parent.iterdir())
        if d.is_dir() and any((d / n).is_file() for n in ("args.yml", "config.yml"))
    ]
    if len(subdirs) == 1 and subdirs[0] not in dirs:
        dirs.append(subdirs[0])
    return [d for d in dirs if d.is_dir()]


def find_vecnormalize(checkpoint: Path) -> Path | None:
    """The ``vecnormalize.pkl`` that goes with ``checkpoint``, if any.

    Looked for in the zoo's ``<dir>/<stem>/`` folder first, then beside the zip.
    """
    for folder in [*config_dirs(checkpoint), checkpoint.parent]:
        for name in VECNORMALIZE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def read_zoo_args(checkpoint: Path) -> dict[str, Any]:
    """The zoo's ``args.yml`` for ``checkpoint`` (algo, env, seed, ...), or ``{}`` when there is none."""
    for folder in config_dirs(checkpoint):
        if (folder / "args.yml").is_file():
            loaded = zoo_yaml(folder / "args.yml")
            return loaded if isinstance(loaded, dict) else {}
    return {}


def guess_env_id(checkpoint: Path) -> str | None:
    """The env a checkpoint was trained on, from the zoo's args.yml or its folder and file names."""
    env = read_zoo_args(checkpoint).get("env")
    if isinstance(env, str) and env:
        return env
    candidates = [d.name for d in config_dirs(checkpoint)]
    candidates += [_RUN_SUFFIX_RE.sub("", checkpoint.parent.name), checkpoint.stem]
    return next((c for c in candidates if _ENV_ID_RE.match(c)), None)
