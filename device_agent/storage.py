"""Content-addressed model store on the device: ``<data>/models/<sha256>.onnx``.

The sha256 is the only name a client ever gives; no client string becomes a path. Files
are written to a temporary name and renamed into place only after the hash and the model
check pass, so a half-sent upload never looks like a model and a restart keeps every
stored model.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from device_agent.errors import InvalidModelError, ModelNotFoundError, UploadError
from device_agent.manifest import ArtifactManifest
from device_agent.validation import check_model_bytes

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(value: str) -> str:
    if not SHA256_RE.match(value):
        raise UploadError(f"{value!r} is not a sha256 hex digest (64 lower-case hex characters)")
    return value


class ModelStore:
    """Stores verified models by hash; survives restarts because the files are the index."""

    def __init__(
        self, root: Path, max_model_bytes: int, max_models: int = 10_000, max_store_bytes: int = 4 * 1024**3
    ) -> None:
        self.root = root / "models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_model_bytes = max_model_bytes
        self.max_models = max_models
        self.max_store_bytes = max_store_bytes
        for stale in self.root.glob(".upload-*"):  # left by a crash mid-upload
            stale.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / f"{check_sha256(sha256)}.onnx"

    def has(self, sha256: str) -> bool:
        return SHA256_RE.match(sha256) is not None and self.path(sha256).is_file()

    def require(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ModelNotFoundError(f"{sha256!r} is not a sha256 hex digest")
        path = self.path(sha256)
        if not path.is_file():
            raise ModelNotFoundError(f"this device holds no model {sha256[:12]}…; upload it first")
        return path

    def count(self) -> int:
        return sum(1 for _ in self.root.glob("*.onnx"))

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.onnx"))

    def put(self, sha256: str, size_bytes: int, chunks: Iterable[bytes]) -> ArtifactManifest:
        """Receive, verify and store one model; the chunks are consumed as they arrive."""
        check_sha256(sha256)
        if size_bytes <= 0 or size_bytes > self.max_model_bytes:
            raise UploadError(
                f"model size {size_bytes} bytes is outside 1..{self.max_model_bytes} allowed by this agent"
            )
        if self.count() >= self.max_models:
            raise UploadError(
                f"this device already stores {self.max_models} models, its limit; remove some first"
            )
        digest = hashlib.sha256()
        buffer = bytearray()
        for chunk in chunks:
            if len(buffer) + len(chunk) > size_bytes:
                raise UploadError(f"received more than the announced {size_bytes} bytes")
            digest.update(chunk)
            buffer += chunk
        if len(buffer) != size_bytes:
            raise UploadError(
                f"received {len(buffer)} bytes, the header announced {size_bytes}; the upload was cut"
            )
        if digest.hexdigest() != sha256:
            raise UploadError(
                f"sha256 mismatch: announced {sha256[:12]}…, received data hashes to {digest.hexdigest()[:12]}…"
            )
        manifest = check_model_bytes(bytes(buffer))
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(sha256))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return manifest

    def manifest(self, sha256: str) -> ArtifactManifest:
        path = self.require(sha256)
        try:
            return check_model_bytes(path.read_bytes())
        except InvalidModelError as exc:  # a file changed on disk behind the agent's back
            raise ModelNotFoundError(
                f"stored model {sha256[:12]}… no longer passes its checks: {exc}"
            ) from exc
