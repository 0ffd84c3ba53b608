"""Check an untrusted model in a sandboxed process: ``python -m device_agent.store.model_check FILE``.

Parsing an ONNX file costs memory and time in proportion to what the sender put in it (millions of
empty nodes, millions of metadata entries), not to its size on the wire. The agent therefore never
parses an uploaded model itself: a fresh process with an address-space and a CPU-time limit runs
``validation.check_model_bytes`` and prints one JSON line, and the agent keeps the resulting
manifest beside the model (``models/<sha256>.json``), so each model is parsed once, ever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import device_agent
from device_agent.contract.errors import InvalidModelError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.wire import CHECK_CPU_S, CHECK_WALL_S

CHECK_BASE_BYTES = 512 * 1024**2
"""Address space of the checking process before the model: Python, onnx and protobuf."""
CHECK_BYTES_PER_MODEL_BYTE = 8
"""A real policy parses to about twice its file size; a bomb of empty nodes to twenty times and more."""


def _limit(memory_bytes: int, cpu_s: int) -> None:
    """Applied by the checking process to itself before it imports onnx or reads the model."""
    if sys.platform == "win32":  # pragma: no cover - no rlimits there; the timeout still applies
        return
    import resource  # POSIX only: absent on Windows, checked just above

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))


def check_file(path: Path, memory_bytes: int | None = None, cpu_s: int = CHECK_CPU_S) -> ArtifactManifest:
    """The model's manifest, or InvalidModelError with the reason (including "too large to check")."""
    size = path.stat().st_size
    memory = memory_bytes or CHECK_BASE_BYTES + CHECK_BYTES_PER_MODEL_BYTE * size
    env = dict(os.environ)
    package_root = str(Path(device_agent.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "device_agent.store.model_check", str(memory), str(cpu_s), str(path)],
            capture_output=True,
            text=True,
            timeout=CHECK_WALL_S * cpu_s / CHECK_CPU_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidModelError(
            f"checking the model took longer than {CHECK_WALL_S * cpu_s / CHECK_CPU_S:.0f} s; refused"
        ) from exc
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if done.returncode == 0 and answer.get("ok"):
        return ArtifactManifest.from_json(answer["manifest"])
    if answer.get("error"):
        raise InvalidModelError(answer["error"])
    raise InvalidModelError(
        f"the model could not be checked within {memory >> 20} MiB of memory and {cpu_s} s of CPU "
        f"(the checking process ended with code {done.returncode}); a drlc policy needs far less, so it is refused"
    )


def too_large(memory_bytes: int) -> str:
    return (
        f"the model is too large to parse within the {memory_bytes >> 20} MiB the agent allows for checking "
        "one; a drlc policy needs far less, so it is refused"
    )


def main(argv: list[str] | None = None) -> int:
    """MEMORY_BYTES CPU_S FILE: limit this process, check FILE, print one JSON line."""
    memory, cpu_s, path = argv if argv is not None else sys.argv[1:]
    _limit(int(memory), int(cpu_s))
    # imported after the limits are set: importing onnx is part of what they bound
    from device_agent.store.validation import ParseMemoryError, check_model_bytes

    try:
        manifest = check_model_bytes(Path(path).read_bytes())
    except (MemoryError, ParseMemoryError):
        print(json.dumps({"ok": False, "error": too_large(int(memory))}))
        return 3
    except InvalidModelError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 3
    print(json.dumps({"ok": True, "manifest": manifest.to_json()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
