"""Content-addressed model store on the device: ``<data>/models/<sha256>.onnx``.

The sha256 is the only name a client ever gives; no client string becomes a path. Files
are written to a temporary name and renamed into place only after the hash and the model
check pass, so a half-sent upload never looks like a model and a restart keeps every
stored model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from device_agent.store.files import write_atomically
from device_agent.contract.errors import InvalidModelError, ModelNotFoundError, UploadError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.store.model_check import check_file

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(value: str) -> str:
    if not SHA256_RE.match(value):
        raise UploadError(f"{value!r} is not a sha256 hex digest (64 lower-case hex characters)")
    return value


MAX_MANIFEST_BYTES = 1 << 20
"""A kept manifest larger than this is not read back (it was not written by this agent)."""


class ModelStore:
    """Stores verified models by hash; survives restarts because the files are the index.

    Limits hold under concurrent uploads: an upload reserves its announced size and a model slot
    under a lock before it receives a byte, so twenty uploads at once cannot pass a limit that one
    at a time would not. A stored file is checked against its hash before it is used (once per
    file version, cached by size and mtime); a file that no longer matches is set aside, so the
    next upload of that model replaces it.
    """

    def __init__(
        self, root: Path, max_model_bytes: int, max_models: int = 10_000, max_store_bytes: int = 4 * 1024**3
    ) -> None:
        self.root = root / "models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_model_bytes = max_model_bytes
        self.max_models = max_models
        self.max_store_bytes = max_store_bytes
        self._lock = threading.Lock()
        self._reserved_bytes = 0
        self._reserved_slots = 0
        self._verified: dict[str, tuple[int, int]] = {}
        """sha256 -> (size, mtime_ns) of the file version whose hash was checked."""
        for stale in self.root.glob(".upload-*"):  # left by a crash mid-upload
            stale.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / f"{check_sha256(sha256)}.onnx"

    def _intact(self, sha256: str) -> bool:
        """The stored file exists and hashes to its name; a damaged one is removed (and logged)."""
        path = self.path(sha256)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        version = (st.st_size, st.st_mtime_ns)
        if self._verified.get(sha256) == version:
            return True
        if file_sha256(path) == sha256:
            self._verified[sha256] = version
            return True
        log.warning("stored model %s no longer matches its sha256; removed, a new upload replaces it", sha256)
        path.unlink(missing_ok=True)
        self._manifest_path(sha256).unlink(missing_ok=True)
        self._verified.pop(sha256, None)
        return False

    def has(self, sha256: str) -> bool:
        return SHA256_RE.match(sha256) is not None and self._intact(sha256)

    def require(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ModelNotFoundError(f"{sha256!r} is not a sha256 hex digest")
        if not self._intact(sha256):
            raise ModelNotFoundError(f"this device holds no model {sha256[:12]}…; upload it first")
        return self.path(sha256)

    def count(self) -> int:
        return sum(1 for _ in self.root.glob("*.onnx"))

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.onnx"))

    def remove(self, sha256: str) -> bool:
        """Delete a stored model; False when there was none."""
        path = self.path(sha256)
        with self._lock:
            self._verified.pop(sha256, None)
            self._manifest_path(sha256).unlink(missing_ok=True)
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    @contextmanager
    def _reservation(self, size_bytes: int) -> Iterator[None]:
        with self._lock:
            if self.count() + self._reserved_slots >= self.max_models:
                raise UploadError(
                    f"this device already stores {self.max_models} models, its limit; remove some first "
                    "(drlc-host can remove models from a target)"
                )
            used = self.total_bytes() + self._reserved_bytes
            if used + size_bytes > self.max_store_bytes:
                raise UploadError(
                    f"storing {size_bytes} more bytes would pass this agent's store limit of "
                    f"{self.max_store_bytes} bytes ({used} in use or being uploaded); remove some models first"
                )
            self._reserved_slots += 1
            self._reserved_bytes += size_bytes
        try:
            yield
        finally:
            with self._lock:
                self._reserved_slots -= 1
                self._reserved_bytes -= size_bytes

    def put(self, sha256: str, size_bytes: int, chunks: Iterable[bytes]) -> ArtifactManifest:
        """Receive, verify and store one model; the chunks are consumed as they arrive."""
        check_sha256(sha256)
        if size_bytes <= 0 or size_bytes > self.max_model_bytes:
            raise UploadError(
                f"model size {size_bytes} bytes is outside 1..{self.max_model_bytes} allowed by this agent"
            )
        with self._reservation(size_bytes):
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
                    f"sha256 mismatch: announced {sha256[:12]}…, received data hashes to "
                    f"{digest.hexdigest()[:12]}…"
                )
            fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(buffer)
                    fh.flush()
                    os.fsync(fh.fileno())
                manifest = check_file(Path(tmp))  # in a sandboxed process, never in the agent's own
                write_atomically(self._manifest_path(sha256), manifest.to_json().encode(), prefix=".upload-")
                os.replace(tmp, self.path(sha256))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return manifest

    def _manifest_path(self, sha256: str) -> Path:
        return self.root / f"{check_sha256(sha256)}.json"

    def manifest(self, sha256: str) -> ArtifactManifest:
        """The stored model's manifest, from the check made when it was stored; a model stored before
        manifests were kept is checked once more (in the sandbox) and its manifest kept from then on."""
        path = self.require(sha256)
        kept = self._manifest_path(sha256)
        if kept.is_file() and kept.stat().st_size <= MAX_MANIFEST_BYTES:
            try:
                return ArtifactManifest.from_json(kept.read_text())
            except (ValueError, InvalidModelError):
                kept.unlink(missing_ok=True)  # damaged: check the model again
        try:
            manifest = check_file(path)
        except InvalidModelError as exc:  # a file changed on disk behind the agent's back
            raise ModelNotFoundError(
                f"stored model {sha256[:12]}… no longer passes its checks: {exc}"
            ) from exc
        write_atomically(kept, manifest.to_json().encode(), prefix=".upload-")
        return manifest
