"""Every measurement knob of a profile job, in one place, with units in the names.

Stopping rule: a job runs ``n_episodes`` seeded episodes (episode ``i`` is reset with
``seed + i``), each until the env terminates or truncates (its own time limit, or
``max_steps_per_episode`` when that is > 0), after ``warmup_calls`` uncounted inference
calls. Requested settings are clamped to the agent's ``AgentLimits``; both the requested
and the effective settings are reported with every result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from device_agent.errors import InvalidRequestError


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
    max_worker_rss_bytes: int = 4 * 1024**3
    """A worker whose resident memory grows past this is killed and its job fails."""
    allowed_providers: tuple[str, ...] = field(default=())
    """Empty: whatever the onnxruntime build offers."""
    allowed_envs: tuple[str, ...] = field(default=())
    """Empty: every Gymnasium MuJoCo env."""


def effective_settings(
    requested: MeasurementSettings, limits: AgentLimits, available_providers: list[str]
) -> MeasurementSettings:
    """Fill defaults, check limits and pick providers this device has.

    Providers the device lacks are dropped (the report records the one actually used);
    CPU is always the last resort, as ONNX Runtime itself does.
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
    if requested.intra_op_threads < 0 or requested.intra_op_threads > 1024:
        raise InvalidRequestError(f"intra_op_threads={requested.intra_op_threads} is outside 0..1024")
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
    return dataclasses.replace(requested, execution_providers=tuple(providers))


PROVIDER_PREFERENCE: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
"""When the request names no provider: the fastest kind first, CPU last."""
