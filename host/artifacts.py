"""The host's artifact store: ONNX variants named by content, registered in the results database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from device_agent.manifest import ArtifactManifest, sha256_bytes
from host.errors import StoreError
from host.results_db import ModelRow, ResultsDB
from host.workspace import Workspace


def store_artifact(workspace: Workspace, db: ResultsDB, data: bytes, manifest: ArtifactManifest) -> ModelRow:
    """Write ``data`` as ``artifacts/<name>-<sha12>.onnx`` (once) and register it."""
    sha = sha256_bytes(data)
    path = workspace.artifacts_dir / f"{manifest.name}-{sha[:12]}.onnx"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(prefix=".artifact-", dir=workspace.artifacts_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return db.add_model(sha, path, manifest)


def select_models(db: ResultsDB, selectors: list[str] | None) -> list[ModelRow]:
    """Models by sha256 prefix, name or artifact path; all registered models when none is given."""
    models = db.models()
    if not selectors:
        return models
    chosen: dict[str, ModelRow] = {}
    for selector in selectors:
        as_path = Path(selector)
        matches = [
            m
            for m in models
            if m.sha256.startswith(selector.lower())
            or m.name == selector
            or (as_path.suffix == ".onnx" and m.path == as_path.resolve())
        ]
        if not matches:
            raise StoreError(
                f"no registered model matches {selector!r}; `drlc-host models` lists them (sha256 prefix, name or .onnx path)"
            )
        for m in matches:
            chosen.setdefault(m.sha256, m)
    return list(chosen.values())
