"""Plain records a worker sends to the agent while a job runs (pickled over a pipe).

Kept free of protobuf so the measuring loop and its tests do not depend on the wire format;
``device_agent.convert`` maps them to messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device_agent.stats import LatencySummary


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


@dataclass(frozen=True)
class MemoryFacts:
    rss_before_load_bytes: int
    rss_after_load_bytes: int
    peak_rss_bytes: int
    model_file_bytes: int
    device_memory_bytes: int | None = None


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


@dataclass(frozen=True)
class JobEnd:
    """What only the end of a job knows: the peak memory and the pooled latency figures."""

    memory: MemoryFacts
    inference: LatencySummary
    env_step: LatencySummary
    total_steps: int
    wall_s: float
    runtime_floor: LatencySummary | None = None


@dataclass(frozen=True)
class JobError:
    error_type: str
    message: str
