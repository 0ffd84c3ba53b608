"""The host's artifact store: ONNX variants named by content, registered in the results database."""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

from device_agent.contract.manifest import ArtifactManifest, sha256_bytes
from host.errors import StoreError
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace


def store_artifact(
    workspace: Workspace,
    db: ResultsDB,
    data: bytes,
    manifest: ArtifactManifest,
    checkpoint: Path | None = None,
    recipe_key: str | None = None,
) -> ModelRow:
    """Write ``data`` as ``artifacts/<name>-<sha12>.onnx`` (once) and register it."""
    sha = sha256_bytes(data)
    path = workspace.artifacts_dir / f"{manifest.name}-{sha[:12]}.onnx"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(prefix=".artifact-", dir=workspace.artifacts_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return db.add_model(sha, path, manifest, checkpoint=checkpoint, recipe_key=recipe_key)


def select_models(db: ResultsDB, selectors: list[str] | None) -> list[ModelRow]:
    """Models by sha256 prefix, name or artifact path; ``sweep:SELECTOR`` is a baseline with all
    its variants. All registered models when no selector is given. A selector may be a comma list
    (``--models a,b``), as well as repeated."""
    models = db.models()
    if not selectors:
        return models
    chosen: dict[str, ModelRow] = {}
    for selector in [part.strip() for item in selectors for part in item.split(",") if part.strip()]:
        if selector.startswith("sweep:"):
            for base in select_models(db, [selector.removeprefix("sweep:")]):
                for m in [base, *db.variants_of(base.sha256)]:
                    chosen.setdefault(m.sha256, m)
            continue
        as_path = Path(selector)
        matches = [
            m
            for m in models
            if m.sha256.startswith(selector.lower())
            or m.name == selector
            or (as_path.suffix == ".onnx" and m.path == as_path.resolve())
        ]
        if not matches:
            if as_path.suffix == ".onnx":
                if not as_path.is_file():
                    raise StoreError(f"file not found: {as_path}")
                raise StoreError(
                    f"{as_path} is not registered in this workspace: `drlc-host compress {as_path} --method M` "
                    "registers a baseline .onnx (and makes a variant); `drlc-host models` lists what is registered"
                )
            close = difflib.get_close_matches(selector, sorted({m.name for m in models}), n=3)
            guess = f"did you mean {' or '.join(close)}? " if close else ""
            raise StoreError(
                f"no registered model matches {selector!r}; {guess}"
                "`drlc-host models` lists them (sha256 prefix, name or .onnx path)"
            )
        for m in matches:
            chosen.setdefault(m.sha256, m)
    return list(chosen.values())
