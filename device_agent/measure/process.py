"""Facts about the worker process itself: its memory, the CPUs it may run on, its clock's cost, the libraries
it runs. Read outside anything timed."""

from __future__ import annotations

import functools
import os
import resource
import sys
import time

import numpy as np
import psutil

from device_agent.contract.platform_facts import library_versions
from device_agent.contract.errors import InvalidRequestError
from device_agent.contract.vocabulary import NVIDIA_PROVIDERS
from device_agent.energy.meters.nvml import process_device_memory_bytes


@functools.cache
def cached_library_versions() -> dict[str, str]:
    """The installed versions do not change while the agent runs; read once (in the worker server)."""
    return library_versions()


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """The worker's high-water resident set (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def timer_overhead_ns(n: int = 10_000) -> float:
    """Median cost of one back-to-back perf_counter_ns pair: the floor of every latency we report.

    Stored the way the loop stores its samples (list append), so it costs what the loop costs.
    """
    clock = time.perf_counter_ns
    samples: list[int] = []
    record = samples.append
    for _ in range(n):
        t0 = clock()
        record(clock() - t0)
    return float(np.median(samples))


def apply_affinity(cpus: tuple[int, ...]) -> list[int]:
    """Pin this worker (and the threads ONNX Runtime will start) to ``cpus``; returns the CPUs it runs on."""
    if cpus:
        try:
            os.sched_setaffinity(0, set(cpus))
        except OSError as exc:
            raise InvalidRequestError(f"cannot pin the worker to CPUs {list(cpus)}: {exc}") from exc
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def device_memory_bytes(provider: str) -> int | None:
    """GPU memory the session holds, where the provider's device reports it (NVML, discrete GPUs)."""
    if provider not in NVIDIA_PROVIDERS:
        return None
    return process_device_memory_bytes(os.getpid())
