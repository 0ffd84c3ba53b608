"""Plain records a worker sends to the agent while a job runs (pickled over a pipe).

Kept free of protobuf so the measuring loop and its tests do not depend on the wire format;
``device_agent.jobs.convert`` maps them to messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from device_agent.energy.meters.base import MeterStatus
from device_agent.energy.recorder import EnergyFigure
from device_agent.contract.stats import LatencySummary


@dataclass(frozen=True)
class RuntimeFacts:
    execution_provider: str
    session_providers: list[str]
    onnxruntime_version: str
    mujoco_version: str
    gymnasium_version: str
    intra_op_threads: int
    env_id: str
    cpu_model: str
    cpu_flags: list[str]
    worker_pid: int
    timer_overhead_ns: float
    cpu_affinity: list[int] = field(default_factory=list)
    inference_binding: str = ""
    """How the loop calls the runtime: "io_binding" (preallocated input and output buffers bound once) or
    "session_run" (the fallback, for a provider or model IO binding does not suit)."""
    session_create_s: float | None = None
    """Wall time of creating the model's InferenceSession: a TensorRT engine build (or cached engine load) is
    here, apart from inference."""
    trt_engine_cache: str = ""
    """TensorRT with its engine cache on: "built" (a new engine was written to the cache) or "reused"."""


@dataclass(frozen=True)
class MemoryFacts:
    rss_before_load_bytes: int
    rss_after_load_bytes: int
    peak_rss_bytes: int
    model_file_bytes: int
    device_memory_bytes: int | None = None
    model_parameters: int | None = None
    runtime_startup_bytes: int | None = None
    """RSS that a session of a weightless graph with the model's input and output added first: ONNX Runtime's
    own start-up (arenas, kernels, threads), the same for every variant of a policy."""
    model_added_bytes: int | None = None
    """RSS the model's own session added on top of that: the part of memory a compression can change."""


@dataclass(frozen=True)
class InferencePhaseOutcome:
    calls: int
    wall_s: float
    distinct_observations: int
    energy: list[EnergyFigure] = field(default_factory=list)


@dataclass(frozen=True)
class ControlRateOutcome:
    period_s: float
    ticks: int
    deadline_misses: int
    max_overrun_ns: float


@dataclass(frozen=True)
class LatencyPhaseOutcome:
    """The timed in-loop calls the measuring worker makes alone when the episodes run in parallel."""

    calls: int
    seed: int
    """Its throw-away episodes are reset with seed, seed + 1, ..."""
    wall_s: float
    inference_ns: list[int] = field(default_factory=list)
    """Every call, when keep_latencies."""


@dataclass(frozen=True)
class PairedLatencyOutcome:
    """The reference model's side of a paired latency phase (``MeasurementSettings.paired_with_sha256``)."""

    reference_sha256: str
    block_calls: int
    reference: LatencySummary
    reference_inference_ns: list[int] = field(default_factory=list)
    """Every reference call, when keep_latencies."""


@dataclass(frozen=True)
class JobStart:
    runtime: RuntimeFacts
    memory: MemoryFacts


@dataclass(frozen=True)
class EpisodeOutcome:
    index: int
    seed: int
    episode_return: float
    length: int
    terminated: bool
    inference: LatencySummary
    env_step: LatencySummary
    wall_s: float
    inference_ns: list[int] = field(default_factory=list)
    energy: list[EnergyFigure] = field(default_factory=list)
    deadline_misses: int | None = None
    """Control-rate mode only, as is max_overrun_ns."""
    max_overrun_ns: float | None = None
    returns_only: bool = False
    """Ran in the parallel quality phase: its return and length count, it has no latency, step time or energy."""
    worker: int = 0
    """Which of the job's worker processes ran it (0: the measuring worker)."""


@dataclass(frozen=True)
class JobEnd:
    """What only the end of a job knows: the peak memory and the pooled latency figures."""

    memory: MemoryFacts
    inference: LatencySummary
    env_step: LatencySummary
    total_steps: int
    wall_s: float
    runtime_floor: LatencySummary | None = None
    meters: list[MeterStatus] = field(default_factory=list)
    """Every meter the worker looked for, available or not."""
    idle_energy: list[EnergyFigure] = field(default_factory=list)
    energy: list[EnergyFigure] = field(default_factory=list)
    """The episodes phase, one window per meter from the first episode's start to the last one's end."""
    inference_phase: InferencePhaseOutcome | None = None
    control_rate: ControlRateOutcome | None = None
    latency_phase: LatencyPhaseOutcome | None = None
    """Set when the episodes ran in parallel: then ``inference`` and ``env_step`` describe this phase."""
    validity: dict[str, Any] | None = None
    """What could have spoiled the timing over the timed window (``device_agent.measure.validity.facts``)."""
    runtime_floor_in_loop: bool = False
    """The floor was timed as the policy is: an env step between calls."""
    paired: PairedLatencyOutcome | None = None
    """A paired latency phase's reference side; ``inference`` is then the job's own model's calls in it."""


@dataclass(frozen=True)
class OpTime:
    """Mean kernel time per call of one op type (``name`` = the op type) or one node."""

    name: str
    op_type: str
    mean_us: float
    share: float
    """Of the profiled call's wall time."""
    provider: str = ""
    trimmed_us: float = 0.0
    """Its time in one call, the mean over the profiled calls less the fastest and slowest ``TRIM`` of them: robust
    to preempted calls on a busy device, finer than the profiler's whole µs."""


@dataclass(frozen=True)
class OpProfileOutcome:
    """Where one inference call's time goes (ONNX Runtime's profiler, in its own worker after the timed phases).
    ``wall_per_call_us`` is the profiled call, which the shares are of."""

    calls: int
    wall_per_call_us: float
    run_per_call_us: float
    kernel_per_call_us: float
    outside_kernels_us: float
    outside_kernels_share: float
    op_types: list[OpTime] = field(default_factory=list)
    nodes: list[OpTime] = field(default_factory=list)
    execution_provider: str = ""
    error: str = ""
    """The profile phase failed: why (then every figure is 0)."""
    timed_call_us: float = 0.0
    """The job's own timed call (its p50, profiler off): a profiled call is slower, its bookkeeping is in it."""
    kernel_overhead_us: float = 0.0
    """Trimmed-mean profiled time per kernel of the runtime floor's do-nothing kernels, in the same loop: what every
    kernel's figure holds of the profiler's and executor's own cost (0: not measured)."""


# Between the measuring worker, its helper workers and the agent (quality_workers > 1).
@dataclass(frozen=True)
class HelperReady:
    """A helper worker has built its env and session and waits for episode indices."""

    worker: int
    pid: int


class HelperStage(Enum):
    """What the measuring worker waits for its helpers to be: the device is quiet in both."""

    READY = "ready"
    """Set up (env built, session open) and idle, before the measuring worker's quiet phases."""
    DONE = "done"
    """Exited, after the episodes: the inference-only phase and the floor run alone again."""


@dataclass(frozen=True)
class AwaitHelpers:
    """The measuring worker waits until every helper is at ``stage``; the agent answers True."""

    stage: HelperStage


@dataclass(frozen=True)
class ClaimEpisode:
    """The measuring worker asks for the next episode index; the agent answers an int, or None when none is
    left. Its first claim also tells the agent that the quiet phases before the episodes are over."""


@dataclass(frozen=True)
class JobError:
    error_type: str
    message: str
