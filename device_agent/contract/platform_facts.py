"""Facts about the processor and the libraries, recorded with every result."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import device_agent

# Flags that change which inference kernels run; the full list is long and mostly noise.
RELEVANT_CPU_FLAGS = frozenset(
    {
        "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
        "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "sve", "sve2",
        "i8mm", "bf16", "fphp", "asimdhp",
    }
)  # fmt: skip


def cpu_model_and_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """CPU model name and the inference-relevant flags (x86 'flags', Arm 'Features')."""
    model, flags = "", set()
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), sorted(flags & RELEVANT_CPU_FLAGS)


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata so the agent need not import MuJoCo."""
    versions = {"drlc": device_agent.__version__, "python": platform.python_version()}
    for dist in ("onnxruntime", "onnxruntime-gpu", "mujoco", "gymnasium", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
