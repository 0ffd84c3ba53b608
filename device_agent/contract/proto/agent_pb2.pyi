from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class GetDeviceInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnergyMeterInfo(_message.Message):
    __slots__ = ("name", "available", "reason", "resolution_j", "update_period_s", "scope")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_J_FIELD_NUMBER: _ClassVar[int]
    UPDATE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    resolution_j: float
    update_period_s: float
    scope: str
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ..., resolution_j: _Optional[float] = ..., update_period_s: _Optional[float] = ..., scope: _Optional[str] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("hostname", "fingerprint", "os", "machine", "cpu_model", "n_cpu_logical", "n_cpu_physical", "cpu_flags", "memory_total_bytes", "gpus", "execution_providers", "versions", "energy_meters", "limits")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    N_CPU_LOGICAL_FIELD_NUMBER: _ClassVar[int]
    N_CPU_PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    CPU_FLAGS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    fingerprint: str
    os: str
    machine: str
    cpu_model: str
    n_cpu_logical: int
    n_cpu_physical: int
    cpu_flags: _containers.RepeatedScalarFieldContainer[str]
    memory_total_bytes: int
    gpus: _containers.RepeatedScalarFieldContainer[str]
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    versions: _containers.ScalarMap[str, str]
    energy_meters: _containers.RepeatedCompositeFieldContainer[EnergyMeterInfo]
    limits: AgentLimits
    def __init__(self, hostname: _Optional[str] = ..., fingerprint: _Optional[str] = ..., os: _Optional[str] = ..., machine: _Optional[str] = ..., cpu_model: _Optional[str] = ..., n_cpu_logical: _Optional[int] = ..., n_cpu_physical: _Optional[int] = ..., cpu_flags: _Optional[_Iterable[str]] = ..., memory_total_bytes: _Optional[int] = ..., gpus: _Optional[_Iterable[str]] = ..., execution_providers: _Optional[_Iterable[str]] = ..., versions: _Optional[_Mapping[str, str]] = ..., energy_meters: _Optional[_Iterable[_Union[EnergyMeterInfo, _Mapping]]] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ...) -> None: ...

class AgentLimits(_message.Message):
    __slots__ = ("max_model_bytes", "max_episodes", "max_steps_per_episode", "max_job_duration_s")
    MAX_MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_EPISODES_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_PER_EPISODE_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    max_model_bytes: int
    max_episodes: int
    max_steps_per_episode: int
    max_job_duration_s: float
    def __init__(self, max_model_bytes: _Optional[int] = ..., max_episodes: _Optional[int] = ..., max_steps_per_episode: _Optional[int] = ..., max_job_duration_s: _Optional[float] = ...) -> None: ...

class HasModelsRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class HasModelsResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, present: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("sha256", "size_bytes", "filename")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    filename: str
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., filename: _Optional[str] = ...) -> None: ...

class UploadModelRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadModelResponse(_message.Message):
    __slots__ = ("sha256", "already_present", "size_bytes", "manifest_json")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    already_present: bool
    size_bytes: int
    manifest_json: str
    def __init__(self, sha256: _Optional[str] = ..., already_present: _Optional[bool] = ..., size_bytes: _Optional[int] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class ProfileSettings(_message.Message):
    __slots__ = ("n_episodes", "seed", "warmup_calls", "max_steps_per_episode", "execution_providers", "intra_op_threads", "keep_latencies", "cpu_affinity", "control_rate", "idle_s", "inference_phase_s", "quality_workers", "latency_calls", "latency_only", "op_profile_calls", "trt_engine_cache", "trt_fp16", "trt_int8", "paired_with_sha256")
    N_EPISODES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WARMUP_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_PER_EPISODE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    KEEP_LATENCIES_FIELD_NUMBER: _ClassVar[int]
    CPU_AFFINITY_FIELD_NUMBER: _ClassVar[int]
    CONTROL_RATE_FIELD_NUMBER: _ClassVar[int]
    IDLE_S_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_PHASE_S_FIELD_NUMBER: _ClassVar[int]
    QUALITY_WORKERS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_CALLS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_ONLY_FIELD_NUMBER: _ClassVar[int]
    OP_PROFILE_CALLS_FIELD_NUMBER: _ClassVar[int]
    TRT_ENGINE_CACHE_FIELD_NUMBER: _ClassVar[int]
    TRT_FP16_FIELD_NUMBER: _ClassVar[int]
    TRT_INT8_FIELD_NUMBER: _ClassVar[int]
    PAIRED_WITH_SHA256_FIELD_NUMBER: _ClassVar[int]
    n_episodes: int
    seed: int
    warmup_calls: int
    max_steps_per_episode: int
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    intra_op_threads: int
    keep_latencies: bool
    cpu_affinity: _containers.RepeatedScalarFieldContainer[int]
    control_rate: bool
    idle_s: float
    inference_phase_s: float
    quality_workers: int
    latency_calls: int
    latency_only: bool
    op_profile_calls: int
    trt_engine_cache: bool
    trt_fp16: bool
    trt_int8: bool
    paired_with_sha256: str
    def __init__(self, n_episodes: _Optional[int] = ..., seed: _Optional[int] = ..., warmup_calls: _Optional[int] = ..., max_steps_per_episode: _Optional[int] = ..., execution_providers: _Optional[_Iterable[str]] = ..., intra_op_threads: _Optional[int] = ..., keep_latencies: _Optional[bool] = ..., cpu_affinity: _Optional[_Iterable[int]] = ..., control_rate: _Optional[bool] = ..., idle_s: _Optional[float] = ..., inference_phase_s: _Optional[float] = ..., quality_workers: _Optional[int] = ..., latency_calls: _Optional[int] = ..., latency_only: _Optional[bool] = ..., op_profile_calls: _Optional[int] = ..., trt_engine_cache: _Optional[bool] = ..., trt_fp16: _Optional[bool] = ..., trt_int8: _Optional[bool] = ..., paired_with_sha256: _Optional[str] = ...) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("job_id", "model_sha256", "env_id", "settings")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model_sha256: str
    env_id: str
    settings: ProfileSettings
    def __init__(self, job_id: _Optional[str] = ..., model_sha256: _Optional[str] = ..., env_id: _Optional[str] = ..., settings: _Optional[_Union[ProfileSettings, _Mapping]] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("count", "mean_ns", "std_ns", "min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns", "p999_ns", "bucket_edges_ns", "bucket_counts")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_NS_FIELD_NUMBER: _ClassVar[int]
    STD_NS_FIELD_NUMBER: _ClassVar[int]
    MIN_NS_FIELD_NUMBER: _ClassVar[int]
    P50_NS_FIELD_NUMBER: _ClassVar[int]
    P90_NS_FIELD_NUMBER: _ClassVar[int]
    P99_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_NS_FIELD_NUMBER: _ClassVar[int]
    P999_NS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_EDGES_NS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    mean_ns: float
    std_ns: float
    min_ns: float
    p50_ns: float
    p90_ns: float
    p99_ns: float
    max_ns: float
    p999_ns: float
    bucket_edges_ns: _containers.RepeatedScalarFieldContainer[float]
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, count: _Optional[int] = ..., mean_ns: _Optional[float] = ..., std_ns: _Optional[float] = ..., min_ns: _Optional[float] = ..., p50_ns: _Optional[float] = ..., p90_ns: _Optional[float] = ..., p99_ns: _Optional[float] = ..., max_ns: _Optional[float] = ..., p999_ns: _Optional[float] = ..., bucket_edges_ns: _Optional[_Iterable[float]] = ..., bucket_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class EnergyReading(_message.Message):
    __slots__ = ("meter", "gross_j", "net_j", "window_s", "below_resolution", "estimated", "idle_power_w", "n_items", "net_j_per_item")
    METER_FIELD_NUMBER: _ClassVar[int]
    GROSS_J_FIELD_NUMBER: _ClassVar[int]
    NET_J_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    BELOW_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    IDLE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    N_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NET_J_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    meter: str
    gross_j: float
    net_j: float
    window_s: float
    below_resolution: bool
    estimated: bool
    idle_power_w: float
    n_items: int
    net_j_per_item: float
    def __init__(self, meter: _Optional[str] = ..., gross_j: _Optional[float] = ..., net_j: _Optional[float] = ..., window_s: _Optional[float] = ..., below_resolution: _Optional[bool] = ..., estimated: _Optional[bool] = ..., idle_power_w: _Optional[float] = ..., n_items: _Optional[int] = ..., net_j_per_item: _Optional[float] = ...) -> None: ...

class MemoryStats(_message.Message):
    __slots__ = ("rss_before_load_bytes", "rss_after_load_bytes", "peak_rss_bytes", "device_memory_bytes", "model_file_bytes", "model_parameters", "runtime_startup_bytes", "model_added_bytes")
    RSS_BEFORE_LOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    RSS_AFTER_LOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_STARTUP_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ADDED_BYTES_FIELD_NUMBER: _ClassVar[int]
    rss_before_load_bytes: int
    rss_after_load_bytes: int
    peak_rss_bytes: int
    device_memory_bytes: int
    model_file_bytes: int
    model_parameters: int
    runtime_startup_bytes: int
    model_added_bytes: int
    def __init__(self, rss_before_load_bytes: _Optional[int] = ..., rss_after_load_bytes: _Optional[int] = ..., peak_rss_bytes: _Optional[int] = ..., device_memory_bytes: _Optional[int] = ..., model_file_bytes: _Optional[int] = ..., model_parameters: _Optional[int] = ..., runtime_startup_bytes: _Optional[int] = ..., model_added_bytes: _Optional[int] = ...) -> None: ...

class EpisodeResult(_message.Message):
    __slots__ = ("index", "seed", "episode_return", "length", "terminated", "inference", "env_step", "inference_ns", "energy", "wall_s", "deadline_misses", "max_overrun_ns", "returns_only", "worker")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EPISODE_RETURN_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    ENV_STEP_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_NS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MISSES_FIELD_NUMBER: _ClassVar[int]
    MAX_OVERRUN_NS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_ONLY_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    index: int
    seed: int
    episode_return: float
    length: int
    terminated: bool
    inference: LatencyStats
    env_step: LatencyStats
    inference_ns: _containers.RepeatedScalarFieldContainer[int]
    energy: _containers.RepeatedCompositeFieldContainer[EnergyReading]
    wall_s: float
    deadline_misses: int
    max_overrun_ns: float
    returns_only: bool
    worker: int
    def __init__(self, index: _Optional[int] = ..., seed: _Optional[int] = ..., episode_return: _Optional[float] = ..., length: _Optional[int] = ..., terminated: _Optional[bool] = ..., inference: _Optional[_Union[LatencyStats, _Mapping]] = ..., env_step: _Optional[_Union[LatencyStats, _Mapping]] = ..., inference_ns: _Optional[_Iterable[int]] = ..., energy: _Optional[_Iterable[_Union[EnergyReading, _Mapping]]] = ..., wall_s: _Optional[float] = ..., deadline_misses: _Optional[int] = ..., max_overrun_ns: _Optional[float] = ..., returns_only: _Optional[bool] = ..., worker: _Optional[int] = ...) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("execution_provider", "session_providers", "onnxruntime_version", "mujoco_version", "gymnasium_version", "intra_op_threads", "env_id", "cpu_model", "cpu_flags", "worker_pid", "timer_overhead_ns", "cpu_affinity", "inference_binding", "quality_worker_pids", "session_create_s", "trt_engine_cache")
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SESSION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    MUJOCO_VERSION_FIELD_NUMBER: _ClassVar[int]
    GYMNASIUM_VERSION_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_FLAGS_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    TIMER_OVERHEAD_NS_FIELD_NUMBER: _ClassVar[int]
    CPU_AFFINITY_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_BINDING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_WORKER_PIDS_FIELD_NUMBER: _ClassVar[int]
    SESSION_CREATE_S_FIELD_NUMBER: _ClassVar[int]
    TRT_ENGINE_CACHE_FIELD_NUMBER: _ClassVar[int]
    execution_provider: str
    session_providers: _containers.RepeatedScalarFieldContainer[str]
    onnxruntime_version: str
    mujoco_version: str
    gymnasium_version: str
    intra_op_threads: int
    env_id: str
    cpu_model: str
    cpu_flags: _containers.RepeatedScalarFieldContainer[str]
    worker_pid: int
    timer_overhead_ns: float
    cpu_affinity: _containers.RepeatedScalarFieldContainer[int]
    inference_binding: str
    quality_worker_pids: _containers.RepeatedScalarFieldContainer[int]
    session_create_s: float
    trt_engine_cache: str
    def __init__(self, execution_provider: _Optional[str] = ..., session_providers: _Optional[_Iterable[str]] = ..., onnxruntime_version: _Optional[str] = ..., mujoco_version: _Optional[str] = ..., gymnasium_version: _Optional[str] = ..., intra_op_threads: _Optional[int] = ..., env_id: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_flags: _Optional[_Iterable[str]] = ..., worker_pid: _Optional[int] = ..., timer_overhead_ns: _Optional[float] = ..., cpu_affinity: _Optional[_Iterable[int]] = ..., inference_binding: _Optional[str] = ..., quality_worker_pids: _Optional[_Iterable[int]] = ..., session_create_s: _Optional[float] = ..., trt_engine_cache: _Optional[str] = ...) -> None: ...

class OpTime(_message.Message):
    __slots__ = ("name", "op_type", "mean_us", "share", "provider", "trimmed_us")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    MEAN_US_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_US_FIELD_NUMBER: _ClassVar[int]
    name: str
    op_type: str
    mean_us: float
    share: float
    provider: str
    trimmed_us: float
    def __init__(self, name: _Optional[str] = ..., op_type: _Optional[str] = ..., mean_us: _Optional[float] = ..., share: _Optional[float] = ..., provider: _Optional[str] = ..., trimmed_us: _Optional[float] = ...) -> None: ...

class OpProfile(_message.Message):
    __slots__ = ("calls", "wall_per_call_us", "run_per_call_us", "kernel_per_call_us", "outside_kernels_us", "outside_kernels_share", "op_types", "nodes", "execution_provider", "error", "timed_call_us", "kernel_overhead_us")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    WALL_PER_CALL_US_FIELD_NUMBER: _ClassVar[int]
    RUN_PER_CALL_US_FIELD_NUMBER: _ClassVar[int]
    KERNEL_PER_CALL_US_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_KERNELS_US_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_KERNELS_SHARE_FIELD_NUMBER: _ClassVar[int]
    OP_TYPES_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMED_CALL_US_FIELD_NUMBER: _ClassVar[int]
    KERNEL_OVERHEAD_US_FIELD_NUMBER: _ClassVar[int]
    calls: int
    wall_per_call_us: float
    run_per_call_us: float
    kernel_per_call_us: float
    outside_kernels_us: float
    outside_kernels_share: float
    op_types: _containers.RepeatedCompositeFieldContainer[OpTime]
    nodes: _containers.RepeatedCompositeFieldContainer[OpTime]
    execution_provider: str
    error: str
    timed_call_us: float
    kernel_overhead_us: float
    def __init__(self, calls: _Optional[int] = ..., wall_per_call_us: _Optional[float] = ..., run_per_call_us: _Optional[float] = ..., kernel_per_call_us: _Optional[float] = ..., outside_kernels_us: _Optional[float] = ..., outside_kernels_share: _Optional[float] = ..., op_types: _Optional[_Iterable[_Union[OpTime, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[OpTime, _Mapping]]] = ..., execution_provider: _Optional[str] = ..., error: _Optional[str] = ..., timed_call_us: _Optional[float] = ..., kernel_overhead_us: _Optional[float] = ...) -> None: ...

class InferencePhase(_message.Message):
    __slots__ = ("calls", "wall_s", "mean_call_ns", "distinct_observations", "energy")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    MEAN_CALL_NS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    calls: int
    wall_s: float
    mean_call_ns: float
    distinct_observations: int
    energy: _containers.RepeatedCompositeFieldContainer[EnergyReading]
    def __init__(self, calls: _Optional[int] = ..., wall_s: _Optional[float] = ..., mean_call_ns: _Optional[float] = ..., distinct_observations: _Optional[int] = ..., energy: _Optional[_Iterable[_Union[EnergyReading, _Mapping]]] = ...) -> None: ...

class LatencyPhase(_message.Message):
    __slots__ = ("calls", "seed", "wall_s", "inference_ns")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_NS_FIELD_NUMBER: _ClassVar[int]
    calls: int
    seed: int
    wall_s: float
    inference_ns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, calls: _Optional[int] = ..., seed: _Optional[int] = ..., wall_s: _Optional[float] = ..., inference_ns: _Optional[_Iterable[int]] = ...) -> None: ...

class ControlRate(_message.Message):
    __slots__ = ("period_s", "ticks", "deadline_misses", "max_overrun_ns")
    PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MISSES_FIELD_NUMBER: _ClassVar[int]
    MAX_OVERRUN_NS_FIELD_NUMBER: _ClassVar[int]
    period_s: float
    ticks: int
    deadline_misses: int
    max_overrun_ns: float
    def __init__(self, period_s: _Optional[float] = ..., ticks: _Optional[int] = ..., deadline_misses: _Optional[int] = ..., max_overrun_ns: _Optional[float] = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("n_episodes", "return_mean", "return_std", "return_ci95_low", "return_ci95_high", "total_steps", "inference", "env_step", "memory", "energy", "runtime", "requested", "effective", "wall_s", "runtime_floor", "energy_meters", "idle_energy", "inference_phase", "control_rate", "latency_phase", "validity", "runtime_floor_in_loop", "op_profile", "paired")
    N_EPISODES_FIELD_NUMBER: _ClassVar[int]
    RETURN_MEAN_FIELD_NUMBER: _ClassVar[int]
    RETURN_STD_FIELD_NUMBER: _ClassVar[int]
    RETURN_CI95_LOW_FIELD_NUMBER: _ClassVar[int]
    RETURN_CI95_HIGH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    ENV_STEP_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FLOOR_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METERS_FIELD_NUMBER: _ClassVar[int]
    IDLE_ENERGY_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_PHASE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_PHASE_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FLOOR_IN_LOOP_FIELD_NUMBER: _ClassVar[int]
    OP_PROFILE_FIELD_NUMBER: _ClassVar[int]
    PAIRED_FIELD_NUMBER: _ClassVar[int]
    n_episodes: int
    return_mean: float
    return_std: float
    return_ci95_low: float
    return_ci95_high: float
    total_steps: int
    inference: LatencyStats
    env_step: LatencyStats
    memory: MemoryStats
    energy: _containers.RepeatedCompositeFieldContainer[EnergyReading]
    runtime: RuntimeInfo
    requested: ProfileSettings
    effective: ProfileSettings
    wall_s: float
    runtime_floor: LatencyStats
    energy_meters: _containers.RepeatedCompositeFieldContainer[EnergyMeterInfo]
    idle_energy: _containers.RepeatedCompositeFieldContainer[EnergyReading]
    inference_phase: InferencePhase
    control_rate: ControlRate
    latency_phase: LatencyPhase
    validity: RunValidity
    runtime_floor_in_loop: bool
    op_profile: OpProfile
    paired: PairedLatency
    def __init__(self, n_episodes: _Optional[int] = ..., return_mean: _Optional[float] = ..., return_std: _Optional[float] = ..., return_ci95_low: _Optional[float] = ..., return_ci95_high: _Optional[float] = ..., total_steps: _Optional[int] = ..., inference: _Optional[_Union[LatencyStats, _Mapping]] = ..., env_step: _Optional[_Union[LatencyStats, _Mapping]] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ..., energy: _Optional[_Iterable[_Union[EnergyReading, _Mapping]]] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., requested: _Optional[_Union[ProfileSettings, _Mapping]] = ..., effective: _Optional[_Union[ProfileSettings, _Mapping]] = ..., wall_s: _Optional[float] = ..., runtime_floor: _Optional[_Union[LatencyStats, _Mapping]] = ..., energy_meters: _Optional[_Iterable[_Union[EnergyMeterInfo, _Mapping]]] = ..., idle_energy: _Optional[_Iterable[_Union[EnergyReading, _Mapping]]] = ..., inference_phase: _Optional[_Union[InferencePhase, _Mapping]] = ..., control_rate: _Optional[_Union[ControlRate, _Mapping]] = ..., latency_phase: _Optional[_Union[LatencyPhase, _Mapping]] = ..., validity: _Optional[_Union[RunValidity, _Mapping]] = ..., runtime_floor_in_loop: _Optional[bool] = ..., op_profile: _Optional[_Union[OpProfile, _Mapping]] = ..., paired: _Optional[_Union[PairedLatency, _Mapping]] = ...) -> None: ...

class PairedLatency(_message.Message):
    __slots__ = ("reference_sha256", "block_calls", "reference", "reference_inference_ns")
    REFERENCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    BLOCK_CALLS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INFERENCE_NS_FIELD_NUMBER: _ClassVar[int]
    reference_sha256: str
    block_calls: int
    reference: LatencyStats
    reference_inference_ns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, reference_sha256: _Optional[str] = ..., block_calls: _Optional[int] = ..., reference: _Optional[_Union[LatencyStats, _Mapping]] = ..., reference_inference_ns: _Optional[_Iterable[int]] = ...) -> None: ...

class RunValidity(_message.Message):
    __slots__ = ("window", "window_s", "n_cpus", "load_avg_before", "load_avg_after", "cpu_steal_fraction", "involuntary_switches", "voluntary_switches", "cpu_clocks", "throttle_events", "busy_processes", "not_exposed")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    N_CPUS_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_AFTER_FIELD_NUMBER: _ClassVar[int]
    CPU_STEAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    INVOLUNTARY_SWITCHES_FIELD_NUMBER: _ClassVar[int]
    VOLUNTARY_SWITCHES_FIELD_NUMBER: _ClassVar[int]
    CPU_CLOCKS_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    BUSY_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    NOT_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    window: str
    window_s: float
    n_cpus: int
    load_avg_before: _containers.RepeatedScalarFieldContainer[float]
    load_avg_after: _containers.RepeatedScalarFieldContainer[float]
    cpu_steal_fraction: float
    involuntary_switches: int
    voluntary_switches: int
    cpu_clocks: _containers.RepeatedCompositeFieldContainer[CpuClock]
    throttle_events: int
    busy_processes: _containers.RepeatedCompositeFieldContainer[BusyProcess]
    not_exposed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, window: _Optional[str] = ..., window_s: _Optional[float] = ..., n_cpus: _Optional[int] = ..., load_avg_before: _Optional[_Iterable[float]] = ..., load_avg_after: _Optional[_Iterable[float]] = ..., cpu_steal_fraction: _Optional[float] = ..., involuntary_switches: _Optional[int] = ..., voluntary_switches: _Optional[int] = ..., cpu_clocks: _Optional[_Iterable[_Union[CpuClock, _Mapping]]] = ..., throttle_events: _Optional[int] = ..., busy_processes: _Optional[_Iterable[_Union[BusyProcess, _Mapping]]] = ..., not_exposed: _Optional[_Iterable[str]] = ...) -> None: ...

class CpuClock(_message.Message):
    __slots__ = ("cpu", "khz_before", "khz_after", "max_khz")
    CPU_FIELD_NUMBER: _ClassVar[int]
    KHZ_BEFORE_FIELD_NUMBER: _ClassVar[int]
    KHZ_AFTER_FIELD_NUMBER: _ClassVar[int]
    MAX_KHZ_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    khz_before: float
    khz_after: float
    max_khz: float
    def __init__(self, cpu: _Optional[int] = ..., khz_before: _Optional[float] = ..., khz_after: _Optional[float] = ..., max_khz: _Optional[float] = ...) -> None: ...

class BusyProcess(_message.Message):
    __slots__ = ("pid", "name", "cpu_percent")
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    name: str
    cpu_percent: float
    def __init__(self, pid: _Optional[int] = ..., name: _Optional[str] = ..., cpu_percent: _Optional[float] = ...) -> None: ...

class JobAccepted(_message.Message):
    __slots__ = ("job_id", "queue_position", "reattached")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    REATTACHED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_position: int
    reattached: bool
    def __init__(self, job_id: _Optional[str] = ..., queue_position: _Optional[int] = ..., reattached: _Optional[bool] = ...) -> None: ...

class JobStarted(_message.Message):
    __slots__ = ("runtime", "memory")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    runtime: RuntimeInfo
    memory: MemoryStats
    def __init__(self, runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ...) -> None: ...

class JobFailed(_message.Message):
    __slots__ = ("error_type", "message")
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error_type: str
    message: str
    def __init__(self, error_type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ProfileEvent(_message.Message):
    __slots__ = ("job_id", "sequence", "accepted", "started", "episode", "summary", "failed")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sequence: int
    accepted: JobAccepted
    started: JobStarted
    episode: EpisodeResult
    summary: JobSummary
    failed: JobFailed
    def __init__(self, job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., accepted: _Optional[_Union[JobAccepted, _Mapping]] = ..., started: _Optional[_Union[JobStarted, _Mapping]] = ..., episode: _Optional[_Union[EpisodeResult, _Mapping]] = ..., summary: _Optional[_Union[JobSummary, _Mapping]] = ..., failed: _Optional[_Union[JobFailed, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobRecord(_message.Message):
    __slots__ = ("job_id", "state", "request", "episodes", "summary", "failure", "device_fingerprint", "started_unix_ns", "ended_unix_ns", "started", "latencies_omitted")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LATENCIES_OMITTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    request: ProfileRequest
    episodes: _containers.RepeatedCompositeFieldContainer[EpisodeResult]
    summary: JobSummary
    failure: JobFailed
    device_fingerprint: str
    started_unix_ns: int
    ended_unix_ns: int
    started: JobStarted
    latencies_omitted: bool
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., request: _Optional[_Union[ProfileRequest, _Mapping]] = ..., episodes: _Optional[_Iterable[_Union[EpisodeResult, _Mapping]]] = ..., summary: _Optional[_Union[JobSummary, _Mapping]] = ..., failure: _Optional[_Union[JobFailed, _Mapping]] = ..., device_fingerprint: _Optional[str] = ..., started_unix_ns: _Optional[int] = ..., ended_unix_ns: _Optional[int] = ..., started: _Optional[_Union[JobStarted, _Mapping]] = ..., latencies_omitted: _Optional[bool] = ...) -> None: ...

class RemoveModelsRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveModelsResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneJobsRequest(_message.Message):
    __slots__ = ("older_than_days",)
    OLDER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    older_than_days: float
    def __init__(self, older_than_days: _Optional[float] = ...) -> None: ...

class PruneJobsResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...
