"""What one client may ask of this device (``AgentLimits``), and how a job's requested settings become the
settings it runs with (``effective_settings``): defaults filled, limits checked, providers chosen.

Requests beyond a limit are refused with the limit in the message, never clamped: the settings a host sent
are the settings used, or the job does not run.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import psutil

from device_agent.contract.errors import InvalidRequestError
from device_agent.contract.settings import MeasurementSettings
from device_agent.contract.vocabulary import CPU, PROVIDER_PREFERENCE

OP_PROFILE_MAX_CALLS = 100_000
"""Most calls an operator profile may record: each call writes a few hundred bytes of profiler JSON."""


@dataclass(frozen=True)
class AgentLimits:
    """What one client may ask of this device; requests beyond these are refused, not clamped."""

    max_model_bytes: int = 64 * 1024 * 1024
    max_episodes: int = 1000
    max_steps_per_episode: int = 100_000
    max_job_duration_s: float = 3600.0
    max_stored_models: int = 10_000
    max_store_bytes: int = 4 * 1024**3
    """Total size of stored models; uploads beyond it are refused, so clients cannot fill the disk."""
    max_queued_jobs: int = 256
    """Jobs waiting or running at once; more are refused, so clients cannot exhaust memory."""
    max_worker_rss_bytes: int = 0
    """A job whose worker processes together hold more resident memory than this is stopped and fails.
    0: half of this device's memory (see ``job_memory_limit``)."""
    allowed_providers: tuple[str, ...] = field(default=())
    """Empty: whatever the onnxruntime build offers."""
    allowed_envs: tuple[str, ...] = field(default=())
    """Empty: every Gymnasium MuJoCo env."""
    max_quality_workers: int = 0
    """Most worker processes one job may run at once; 0: this device's CPU count."""
    max_intra_op_threads: int = 0
    """Most ONNX Runtime threads one job may ask for; 0: this device's CPU count (more only oversubscribes)."""
    max_concurrent_uploads: int = 4
    """Uploads in progress at once; more are refused (RESOURCE_EXHAUSTED) so uploads cannot take every thread."""
    upload_idle_s: float = 30.0
    """An upload that sends nothing for this long is ended by the agent."""
    max_streams: int = 32
    """RunProfile and WatchJob streams open at once; more are refused (RESOURCE_EXHAUSTED). Short calls (health,
    device info, HasModels, GetJob) have threads of their own and always answer."""


def job_memory_limit(limits: AgentLimits) -> int:
    """The memory one job's workers may hold together: the configured figure, or half of this device's memory."""
    if limits.max_worker_rss_bytes > 0:
        return limits.max_worker_rss_bytes
    return int(psutil.virtual_memory().total // 2)


SEED_MAX = 2**31 - 1
"""Largest seed a job may ask for: Gymnasium seeds with non-negative integers, and the offsets the agent adds
for its warm-up and replay episodes keep every seed it uses below 2**32."""


def usable_cpus() -> set[int]:
    """The CPUs this device has. Not the agent's own affinity: a CPU kept out of it with isolcpus is
    exactly where a measurement should run. A CPU the worker still may not use (a container's cpuset)
    fails the job with the OS's reason."""
    return set(range(os.cpu_count() or 1))


def check_affinity(cpu_affinity: tuple[int, ...], cpus: set[int]) -> None:
    if not cpu_affinity:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise InvalidRequestError("cpu_affinity is not supported on this operating system; leave it empty")
    missing = sorted(set(cpu_affinity) - cpus)
    if missing:
        raise InvalidRequestError(
            f"cpu_affinity asks for CPUs {missing} that this device does not have; its CPUs: {sorted(cpus)}"
        )


def check_energy_settings(requested: MeasurementSettings) -> None:
    if not 0.0 <= requested.idle_s <= 600.0:
        raise InvalidRequestError(f"idle_s={requested.idle_s} is outside 0..600 seconds")
    if requested.inference_phase_s is not None and not 0.0 <= requested.inference_phase_s <= 3600.0:
        raise InvalidRequestError(
            f"inference_phase_s={requested.inference_phase_s} is outside 0..3600 seconds (unset: automatic)"
        )
    if not 1 <= requested.replay_observations <= 100_000:
        raise InvalidRequestError(f"replay_observations={requested.replay_observations} is outside 1..100000")


def quality_workers(
    requested: MeasurementSettings, limits: AgentLimits, cpus: set[int], has_energy_meter: bool
) -> int:
    """Resolve ``quality_workers`` (0: automatic) and check it against the limit; never above n_episodes."""
    most = limits.max_quality_workers or len(cpus)
    if not 0 <= requested.quality_workers <= most:
        raise InvalidRequestError(
            f"quality_workers={requested.quality_workers} is outside 0..{most} allowed by this agent "
            "(0: one per CPU)"
        )
    if requested.quality_workers == 0:
        wanted = 1 if has_energy_meter else len(requested.cpu_affinity) or len(cpus)
    else:
        wanted = requested.quality_workers
    return max(1, min(wanted, most, requested.n_episodes))


def check_paired(requested: MeasurementSettings) -> None:
    """A paired latency phase exists only in a latency-only job, and names a model by its full sha256."""
    ref = requested.paired_with_sha256
    if not ref:
        return
    if not requested.latency_only:
        raise InvalidRequestError(
            "paired_with_sha256 is only for latency_only jobs (a deploy's later rounds); leave it unset here"
        )
    if len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
        raise InvalidRequestError(f"paired_with_sha256={ref!r} is not a lowercase hex sha256 (64 characters)")


def effective_settings(
    requested: MeasurementSettings,
    limits: AgentLimits,
    available_providers: list[str],
    cpus: set[int] | None = None,
    has_energy_meter: bool = False,
) -> MeasurementSettings:
    """Fill defaults, check limits and pick providers this device has.

    Providers the device lacks are dropped (the report records the one actually used);
    CPU is always the last resort, as ONNX Runtime itself does. ``quality_workers`` = 0 is resolved
    to a number here, so the effective settings say how many processes ran the episodes.
    """
    if requested.n_episodes < 1 or requested.n_episodes > limits.max_episodes:
        raise InvalidRequestError(
            f"n_episodes={requested.n_episodes} is outside 1..{limits.max_episodes} allowed by this agent"
        )
    if requested.max_steps_per_episode < 0 or requested.max_steps_per_episode > limits.max_steps_per_episode:
        raise InvalidRequestError(
            f"max_steps_per_episode={requested.max_steps_per_episode} is outside "
            f"0..{limits.max_steps_per_episode} (0 = the env's own limit)"
        )
    if requested.warmup_calls < 0 or requested.warmup_calls > 100_000:
        raise InvalidRequestError(f"warmup_calls={requested.warmup_calls} is outside 0..100000")
    cpus = usable_cpus() if cpus is None else cpus
    most_threads = limits.max_intra_op_threads or len(cpus)
    if requested.intra_op_threads < 0 or requested.intra_op_threads > most_threads:
        raise InvalidRequestError(
            f"intra_op_threads={requested.intra_op_threads} is outside 0..{most_threads} allowed by this agent "
            "(its CPU count unless started with --max-threads; 0: ONNX Runtime's default)"
        )
    if not 0 <= requested.seed <= SEED_MAX:
        raise InvalidRequestError(f"seed={requested.seed} is outside 0..{SEED_MAX}")
    check_energy_settings(requested)
    check_affinity(requested.cpu_affinity, cpus)
    if not 1 <= requested.latency_calls <= 1_000_000:
        raise InvalidRequestError(f"latency_calls={requested.latency_calls} is outside 1..1000000")
    if not 0 <= requested.op_profile_calls <= OP_PROFILE_MAX_CALLS:
        raise InvalidRequestError(
            f"op_profile_calls={requested.op_profile_calls} is outside 0..{OP_PROFILE_MAX_CALLS} (0: no operator profile)"
        )
    check_paired(requested)
    workers = 1 if requested.latency_only else quality_workers(requested, limits, cpus, has_energy_meter)
    usable = [p for p in available_providers if not limits.allowed_providers or p in limits.allowed_providers]
    wanted = [p for p in requested.execution_providers if p in usable]
    if requested.execution_providers and not wanted:
        raise InvalidRequestError(
            f"none of the requested execution providers {list(requested.execution_providers)} is available "
            f"here; this device offers {usable}"
        )
    providers = wanted or [p for p in PROVIDER_PREFERENCE if p in usable] or [CPU]
    if CPU not in providers:
        providers.append(CPU)
    return dataclasses.replace(
        requested,
        execution_providers=tuple(providers),
        cpu_affinity=tuple(sorted(set(requested.cpu_affinity))),
        quality_workers=workers,
        op_profile_calls=0 if requested.latency_only else requested.op_profile_calls,
    )
