"""Every measurement knob of a profile job, in one place, with units in the names.

Stopping rule: a job runs ``n_episodes`` seeded episodes (episode ``i`` is reset with
``seed + i``), each until the env terminates or truncates (its own time limit, or
``max_steps_per_episode`` when that is > 0), after ``warmup_calls`` uncounted inference
calls. Requested settings are checked against the agent's ``AgentLimits``; both the requested
and the effective settings are reported with every result.

Phases of a job, in order: idle window (``idle_s``, only where an energy meter works), warm-up,
the episodes (paced at the env's control period when ``control_rate``), the inference-only
phase (``inference_phase_s``), the runtime floor (timed in the same loop as the policy: an env step between calls). With ``op_profile_calls`` > 0,
after all of them, the operator profile phase: ONNX Runtime's profiler over that many in-loop calls in a separate
worker process, so nothing it costs reaches a timed figure.

With ``quality_workers`` > 1 the episodes are wanted for their returns only and run in that many
worker processes at once (each at batch 1); the latency figures then come from a latency phase of
``latency_calls`` timed in-loop calls that the measuring worker makes alone, after the warm-up and
before any helper starts stepping. Every phase that times or meters anything runs alone on the device.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import psutil

from device_agent.contract.errors import InvalidRequestError


@dataclass(frozen=True)
class MeasurementSettings:
    n_episodes: int = 10
    """Episodes whose return is measured; the study used >= 10."""
    seed: int = 0
    """Episode i is reset with seed + i, so two jobs with the same seed see the same starts."""
    warmup_calls: int = 100
    """Inference calls (stepping a separate warm-up episode) before any latency is recorded."""
    max_steps_per_episode: int = 0
    """0: the env's own time limit (1000 steps for the MuJoCo locomotion envs)."""
    execution_providers: tuple[str, ...] = ()
    """ONNX Runtime providers in preference order; empty: the best one this device offers."""
    intra_op_threads: int = 1
    """1 by default: a batch-1 MLP gains nothing from a thread pool whose spinning threads steal
    the core that steps the env. 0 lets ONNX Runtime choose."""
    keep_latencies: bool = True
    """Send every per-call latency back, so the host can compute any statistic later."""

    # CPU placement
    cpu_affinity: tuple[int, ...] = ()
    """CPUs the worker process (and so ONNX Runtime's threads) may run on; empty: the agent's own set."""

    # Control-rate mode
    control_rate: bool = False
    """Pace the loop at the env's control period (dt) as a robot would, sleeping between ticks, and count
    ticks whose work (inference and env step) overran it. Spaced-out calls meet colder caches and lower
    clocks than back-to-back ones. An episode then lasts steps x dt of wall time (1000 x 0.05 s = 50 s for
    HalfCheetah). False: back-to-back, as fast as the device goes."""

    # Energy (only where a meter works; a device without one skips these phases)
    idle_s: float = 3.0
    """Idle window before the job, stretched to 10 updates of the slowest meter; its power is subtracted to
    give net energy. 0: no idle window, gross energy only."""
    inference_phase_s: float | None = None
    """Minimum length of the inference-only phase (observations recorded in the env, replayed back-to-back),
    stretched to 10 updates of the slowest meter. None: run it only where a meter works, for at least
    INFERENCE_PHASE_DEFAULT_S. 0: never. > 0: always (its mean call time is reported even without a meter)."""
    replay_observations: int = 1000
    """Observations recorded for the inference-only phase (a seeded rollout of the policy, untimed)."""

    # Parallel return evaluation
    quality_workers: int = 1
    """Worker processes that run the episodes. 1: every episode runs alone in the measuring worker, which times
    every call (latency from all episode steps) and meters every episode. N > 1: the episodes are run for their
    returns only, spread over N processes at once (each at batch 1, episode i still reset with seed + i, so the
    returns are those of a sequential run); latency comes from the latency phase (``latency_calls``) and no
    per-episode energy is measured. 0: one worker per CPU the job may use (``cpu_affinity``, else the device's),
    or 1 where an energy meter works, since per-episode energy needs the episodes alone. Never more workers than
    episodes."""
    latency_calls: int = 1000
    """With quality_workers > 1: timed inference calls, each followed by an env step as in an episode, that the
    measuring worker makes alone (seeded throw-away episodes, after the warm-up); summary latency and env-step
    figures come from them. 1000 puts ten samples beyond the p99."""

    # Paired, repeated latency (a deploy's later rounds)
    latency_only: bool = False
    """A later round of a repeated deploy: warm-up, then the latency phase (``latency_calls`` timed in-loop calls,
    each followed by an env step) in a fresh worker, and nothing else: no episodes for returns (seeded MuJoCo gives
    the same returns every round), no energy windows, no inference-only phase, no floor. ``n_episodes`` is then
    not run; ``quality_workers`` is 1 (no helpers)."""
    paired_with_sha256: str = ""
    """Latency-only jobs: a stored model (the variant's baseline, same shapes) whose calls alternate with the job's
    own in the latency phase, in blocks of ``PAIRED_BLOCK_CALLS`` ordered ABBA, in the same worker process. Two
    models timed in one process meet the same memory layout and the same moment's machine; timed in two processes
    they do not, and on a shared or virtual machine a process's speed alone varies by up to 2x (README, "Measurement
    protocol"). Empty: the job's model alone."""

    # Operator profile (where the time goes; off by default so it never touches a timed phase)
    op_profile_calls: int = 0
    """In-loop calls (each followed by an env step, as in the timed loop) that ONNX Runtime's profiler records,
    after ``warmup_calls`` unrecorded ones, in a separate worker process started after the job's timed phases.
    Reduced on the device to mean µs per call by op type and by node, each with its share of the call, and the
    part outside any kernel (wall per call minus the kernels' sum). 0: no operator profile. Never in a
    latency-only job."""

    # TensorRT execution provider options (ignored by every other provider)
    trt_engine_cache: bool = False
    """Keep built TensorRT engines in the agent's own cache directory (its data dir, or ``drlc-agent serve
    --trt-cache-dir``; a host never names a path on the device) and reuse them in later jobs: without it
    every job rebuilds its engine, which takes seconds to minutes."""
    trt_fp16: bool = False
    """Let TensorRT pick fp16 kernels where faster (changes the numbers the policy computes)."""
    trt_int8: bool = False
    """Let TensorRT pick int8 kernels: needs a model with Q/DQ nodes (PTSQ, QAT) or a calibration table."""


OP_PROFILE_CALLS_ON = 1000
"""Profiled calls when a user turns the operator profile on without a number (``drlc-host deploy --op-profile``):
enough for every kernel's mean to settle at the profiler's 1 µs resolution."""

OP_PROFILE_MAX_CALLS = 100_000
"""Most calls an operator profile may record: each call writes a few hundred bytes of profiler JSON."""

PAIRED_BLOCK_CALLS = 25
"""In-loop calls per block of a paired latency phase: long enough that switching models costs a negligible share
of a block's calls (the first call after a switch meets the other model's cache state), short enough that a
300-call round alternates 24 times."""

INFERENCE_PHASE_DEFAULT_S = 2.0
"""Inference-only phase length when a meter works and the request leaves it unset."""


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
    providers = wanted or [p for p in PROVIDER_PREFERENCE if p in usable] or ["CPUExecutionProvider"]
    if "CPUExecutionProvider" not in providers:
        providers.append("CPUExecutionProvider")
    return dataclasses.replace(
        requested,
        execution_providers=tuple(providers),
        cpu_affinity=tuple(sorted(set(requested.cpu_affinity))),
        quality_workers=workers,
        op_profile_calls=0 if requested.latency_only else requested.op_profile_calls,
    )


PROVIDER_PREFERENCE: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
"""When the request names no provider: the fastest kind first, CPU last."""
