"""The measuring loop: one policy, one MuJoCo env, seeded episodes, timed inference calls.

Runs inside a job's worker process. Between ``env.step`` and the inference call it does
only what the measurement needs: copy the observation into the preallocated float32 input
buffer, read the clock, run the session (bound once to that buffer and to a preallocated
output buffer through ONNX Runtime's IO binding), read the clock. Statistics are computed
per episode, after the episode, outside the timed region, and Python's cyclic garbage
collector is paused while anything is timed. docs/performance.md has the measurements
behind each choice.

A job's phases: idle window (where an energy meter works), warm-up, the episodes (paced at
the env's control period in control-rate mode), the inference-only phase (observations
recorded in the env, replayed back-to-back: what energy per inference is measured on), the
runtime floor (a weightless graph of the same I/O, timed in the same loop: an env step between
calls). Energy meters are read only between phases and between episodes. Run-validity facts
(device_agent.measure.validity) are read just before and after the timed window. A latency-only job (a
later round of a repeated deploy) is warm-up and latency phase alone.

With ``quality_workers`` > 1 the episodes run for their returns only, shared with helper
workers through a ``Scheduler``; before them the measuring worker times ``latency_calls``
in-loop calls alone (the latency phase), and after them, alone again, the inference-only
phase and the floor.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device_agent.energy.recorder import EnergyRecorder, Marks, open_recorder
from device_agent.contract.envs import build_env
from device_agent.contract.errors import InvalidModelError, InvalidRequestError, WorkerError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.platform_facts import cpu_model_and_flags, library_versions
from device_agent.measure.providers import cached_engines, engine_cache_outcome, provider_options
from device_agent.measure.results import (
    ControlRateOutcome,
    EnergyFigure,
    EpisodeOutcome,
    InferencePhaseOutcome,
    JobEnd,
    JobStart,
    LatencyPhaseOutcome,
    PairedLatencyOutcome,
    MemoryFacts,
    RuntimeFacts,
)
from device_agent.contract.settings import INFERENCE_PHASE_DEFAULT_S, PAIRED_BLOCK_CALLS, MeasurementSettings
from device_agent.contract.stats import latency_summary
from device_agent.measure.validity import Probe, validity_window

Emit = Callable[[object], None]


class Policy(Protocol):
    """Anything that maps a (1, obs_dim) float32 buffer to a (1, act_dim) action array."""

    def __call__(self) -> np.ndarray: ...


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a timed region, as ``timeit`` does: a collection (0.1-0.2 ms,
    a few per thousand steps) landing inside an inference call would be reported as the policy's latency.
    What the region leaves behind is collected after it, in untimed time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.cache
def cached_library_versions() -> dict[str, str]:
    """The installed versions do not change while the agent runs; read once (in the worker server)."""
    return library_versions()


def rss_bytes() -> int:
    import psutil

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


def make_env(env_id: str, max_steps: int, manifest: ArtifactManifest | None = None) -> Any:
    """The env a job steps: ``env_id`` with the manifest's env options and observation wrappers."""
    return build_env(
        env_id,
        manifest.env_kwargs if manifest is not None else None,
        manifest.obs_wrappers if manifest is not None else (),
        max_episode_steps=max_steps if max_steps > 0 else None,
    )


def check_spaces(env: Any, manifest: ArtifactManifest, env_id: str) -> None:
    obs_shape = list(env.observation_space.shape or ())
    act_shape = list(getattr(env.action_space, "shape", None) or ())
    if obs_shape != manifest.observation_shape or act_shape != manifest.action_shape:
        raise InvalidModelError(
            f"the model maps observations {manifest.observation_shape} to actions {manifest.action_shape}, "
            f"but {env_id} has observations {obs_shape} and actions {act_shape}"
        )


def session_options(settings: MeasurementSettings) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(
    model_path: Path | bytes,
    settings: MeasurementSettings,
    trt_cache_dir: Path | None = None,
    options: Any = None,
) -> Any:
    """The session every phase runs: the job's providers, each with its options (``device_agent.measure.providers``).

    :param options: SessionOptions to use instead of ``session_options(settings)`` (the operator profile's)
    """
    import onnxruntime as ort

    options = options or session_options(settings)
    providers, provider_opts = provider_options(settings, trt_cache_dir)
    try:
        source = model_path if isinstance(model_path, bytes) else str(model_path)
        return ort.InferenceSession(
            source, sess_options=options, providers=providers, provider_options=provider_opts
        )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise InvalidModelError(f"ONNX Runtime cannot load the model: {type(exc).__name__}: {exc}") from exc


def bind_session(session: Any, obs_buffer: np.ndarray, action_shape: tuple[int, ...]) -> tuple[Policy, str]:
    """Bind the session once to the preallocated input buffer and a preallocated output buffer.

    :return: (infer, how): ``infer()`` runs the model on whatever ``obs_buffer`` holds and returns the
        action buffer (the same array every call: copy it to keep it); ``how`` is "io_binding", or
        "session_run" where IO binding does not suit the provider or the model (then each call allocates
        its output, as a plain ``session.run`` does).
    """
    in_name = session.get_inputs()[0].name
    out_name = session.get_outputs()[0].name
    feeds = {in_name: obs_buffer}
    run = session.run

    def session_run() -> np.ndarray:
        return run([out_name], feeds)[0]

    bound = _io_binding_call(session, in_name, out_name, obs_buffer, action_shape)
    if bound is not None:
        try:  # the bound call must give exactly what session.run gives, or we do not use it
            expected = session_run()
            if np.array_equal(bound(), expected, equal_nan=True):
                return bound, "io_binding"
        except Exception:  # a model session.run rejects fails below, with session.run's own error
            pass
    return session_run, "session_run"


def _io_binding_call(
    session: Any, in_name: str, out_name: str, obs_buffer: np.ndarray, action_shape: tuple[int, ...]
) -> Policy | None:
    """``session.run_with_iobinding`` on buffers bound once, or None where binding is refused.

    Calls the C++ session's ``run_with_iobinding`` directly when the Python wrapper exposes it (``_sess``,
    ``_iobinding``, stable since ONNX Runtime 1.x): the public method forwards to the same call after WebGPU
    graph-capture bookkeeping, which costs about 1 µs a call here and is never used by drlc.
    """
    if session.get_outputs()[0].type != "tensor(float)" or not obs_buffer.flags.c_contiguous:
        return None
    action = np.zeros((1, *action_shape), dtype=np.float32)
    try:
        binding = session.io_binding()
        binding.bind_cpu_input(in_name, obs_buffer)
        binding.bind_output(out_name, "cpu", 0, np.float32, list(action.shape), action.ctypes.data)
    except Exception:
        return None
    c_session, c_binding = getattr(session, "_sess", None), getattr(binding, "_iobinding", None)
    capture = getattr(c_session, "is_webgpu_graph_capture_enabled", None)
    if c_binding is not None and hasattr(c_session, "run_with_iobinding") and not (capture and capture()):
        run_c = c_session.run_with_iobinding

        def infer_c(binding: Any = binding, action: np.ndarray = action) -> np.ndarray:
            run_c(c_binding, None)
            return action

        return infer_c
    run_bound = session.run_with_iobinding

    def infer(binding: Any = binding, action: np.ndarray = action) -> np.ndarray:
        run_bound(binding)
        return action

    return infer


def make_infer(session: Any, obs_buffer: np.ndarray, action_shape: tuple[int, ...] | None = None) -> Policy:
    """``bind_session`` without the how; ``action_shape`` defaults to the model's declared output width."""
    if action_shape is None:
        width = session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            return bind_session(session, obs_buffer, (0,))[0]  # dynamic width: session.run it is
        action_shape = (width,)
    return bind_session(session, obs_buffer, action_shape)[0]


def _check_action(action: np.ndarray, expected: tuple[int, ...]) -> None:
    if action.shape != expected:
        raise WorkerError(
            f"the model returned actions of shape {list(action.shape)}, expected {list(expected)}"
        )
    if not np.isfinite(action).all():
        raise WorkerError("the model returned a non-finite action (NaN or inf)")


def warm_up(env: Any, infer: Policy, obs_buffer: np.ndarray, n_calls: int, seed: int) -> None:
    """Step a throw-away episode so caches, allocators and clocks settle before we time anything."""
    obs, _ = env.reset(seed=seed)
    for _ in range(n_calls):
        obs_buffer[0] = obs
        action = infer()
        obs, _, terminated, truncated, _ = env.step(action[0])
        if terminated or truncated:
            obs, _ = env.reset()


def run_episode(
    env: Any, infer: Policy, obs_buffer: np.ndarray, index: int, seed: int, keep_latencies: bool
) -> tuple[EpisodeOutcome, list[int], list[int]]:
    """One seeded episode; returns its outcome and the raw inference and env-step times (ns)."""
    clock = time.perf_counter_ns
    isfinite = math.isfinite
    inference_ns: list[int] = []
    step_ns: list[int] = []
    record_call = inference_ns.append
    record_step = step_ns.append
    expected = (1, *env.action_space.shape)
    total = 0.0
    terminated = truncated = False
    wall0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    while not (terminated or truncated):
        obs_buffer[0] = obs
        t0 = clock()
        action = infer()
        t1 = clock()
        row = action[0]
        # sum of a short Python list: ~0.5 µs, where numpy's reductions cost ~2 µs per step
        if action.shape != expected or not isfinite(sum(row.tolist())):
            _check_action(action, expected)
        obs, reward, terminated, truncated, _ = env.step(row)
        t2 = clock()
        record_call(t1 - t0)
        record_step(t2 - t1)
        total += float(reward)
    wall = time.perf_counter() - wall0  # the episode alone, before its statistics are computed
    outcome = EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=total,
        length=len(inference_ns),
        terminated=bool(terminated),
        inference=latency_summary(inference_ns),
        env_step=latency_summary(step_ns),
        wall_s=wall,
        inference_ns=inference_ns if keep_latencies else [],
    )
    return outcome, inference_ns, step_ns


def run_paced_episode(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    index: int,
    seed: int,
    keep_latencies: bool,
    period_ns: int,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[EpisodeOutcome, list[int], list[int]]:
    """``run_episode`` paced as a control loop: one tick per control period, as on a robot.

    Tick k is due at start + k x period. Its work (observation copy, inference, env step) must finish
    before tick k + 1 is due, or it is a deadline miss; the loop then starts the next tick at once and
    keeps the period from there (no burst of catch-up ticks). Between ticks it sleeps, as a robot's
    timer would, so the inference call meets whatever caches and clocks a spaced-out call meets.
    """
    clock = time.perf_counter_ns
    isfinite = math.isfinite
    inference_ns: list[int] = []
    step_ns: list[int] = []
    expected = (1, *env.action_space.shape)
    total = 0.0
    misses, worst = 0, 0
    terminated = truncated = False
    wall0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    tick = clock()
    while not (terminated or truncated):
        obs_buffer[0] = obs
        t0 = clock()
        action = infer()
        t1 = clock()
        row = action[0]
        if action.shape != expected or not isfinite(sum(row.tolist())):
            _check_action(action, expected)
        obs, reward, terminated, truncated, _ = env.step(row)
        t2 = clock()
        inference_ns.append(t1 - t0)
        step_ns.append(t2 - t1)
        total += float(reward)
        due = tick + period_ns
        if t2 > due:
            misses += 1
            worst = max(worst, t2 - due)
            tick = t2
        else:
            sleep((due - t2) / 1e9)
            tick = due
    wall = time.perf_counter() - wall0
    outcome = EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=total,
        length=len(inference_ns),
        terminated=bool(terminated),
        inference=latency_summary(inference_ns),
        env_step=latency_summary(step_ns),
        wall_s=wall,
        inference_ns=inference_ns if keep_latencies else [],
        deadline_misses=misses,
        max_overrun_ns=float(worst),
    )
    return outcome, inference_ns, step_ns


EMPTY_LATENCY = latency_summary([])
"""What a returns-only episode reports for its (unmeasured) inference and env-step times."""


def run_returns_episode(
    env: Any, infer: Policy, obs_buffer: np.ndarray, index: int, seed: int, worker: int
) -> EpisodeOutcome:
    """One seeded episode for its return only (parallel quality phase): the loop of ``run_episode`` without
    timers. The return is summed in the same order, so it equals the sequential run's to the bit."""
    isfinite = math.isfinite
    expected = (1, *env.action_space.shape)
    total = 0.0
    length = 0
    terminated = truncated = False
    wall0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    while not (terminated or truncated):
        obs_buffer[0] = obs
        action = infer()
        row = action[0]
        if action.shape != expected or not isfinite(sum(row.tolist())):
            _check_action(action, expected)
        obs, reward, terminated, truncated, _ = env.step(row)
        total += float(reward)
        length += 1
    return EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=total,
        length=length,
        terminated=bool(terminated),
        inference=EMPTY_LATENCY,
        env_step=EMPTY_LATENCY,
        wall_s=time.perf_counter() - wall0,
        returns_only=True,
        worker=worker,
    )


@dataclasses.dataclass
class LatencyPhase:
    """The latency phase's raw times and, in control-rate mode, its deadline misses."""

    calls_ns: list[int]
    steps_ns: list[int]
    wall_s: float
    seed: int
    deadline_misses: int = 0
    max_overrun_ns: float = 0.0
    partner_calls_ns: list[int] = dataclasses.field(default_factory=list)
    """A paired phase's other model's calls (``calls_ns`` are the job's own)."""


def latency_phase(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    n_calls: int,
    seed: int,
    period_ns: int | None,
    sleep: Callable[[float], None] = time.sleep,
    partner: Policy | None = None,
    block: int = PAIRED_BLOCK_CALLS,
) -> LatencyPhase:
    """``n_calls`` timed inference calls, each followed by a timed env step, exactly as inside an episode;
    throw-away episodes reset with seed, seed + 1, ... as they end. Paced like ``run_paced_episode`` when
    ``period_ns`` is set. Runs while the device is quiet (no helper is stepping).

    With a ``partner`` (paired latency), ``n_calls`` calls of each model, in blocks of ``block`` calls ordered
    ABBA (own, partner, partner, own, ...): both models step the same episodes, each env step taking the action
    of the call before it, so every call of either is an in-loop call, and whatever changes over the phase (the
    clock, another tenant of the CPU) falls on both alike."""
    clock = time.perf_counter_ns
    isfinite = math.isfinite
    calls_ns: list[int] = []
    partner_ns: list[int] = []
    steps_ns: list[int] = []
    record_step = steps_ns.append
    expected = (1, *env.action_space.shape)
    misses, worst = 0, 0
    episode = 0
    wall0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    tick = clock()
    total = n_calls if partner is None else 2 * n_calls
    for i in range(total):
        other = partner is not None and (i // block) % 4 in (1, 2)
        call = partner if other else infer
        obs_buffer[0] = obs
        t0 = clock()
        action = call()  # type: ignore[misc]
        t1 = clock()
        row = action[0]
        if action.shape != expected or not isfinite(sum(row.tolist())):
            _check_action(action, expected)
        obs, _, terminated, truncated, _ = env.step(row)
        t2 = clock()
        (partner_ns if other else calls_ns).append(t1 - t0)
        record_step(t2 - t1)
        if period_ns is not None:
            due = tick + period_ns
            if t2 > due:
                misses += 1
                worst = max(worst, t2 - due)
                tick = t2
            else:
                sleep((due - t2) / 1e9)
                tick = due
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            tick = clock()
    return LatencyPhase(
        calls_ns,
        steps_ns,
        time.perf_counter() - wall0,
        seed,
        misses,
        float(worst),
        partner_calls_ns=partner_ns,
    )


def control_period_ns(env: Any, env_id: str) -> int:
    dt = getattr(env.unwrapped, "dt", None)
    if not dt or dt <= 0:
        raise InvalidRequestError(
            f"control-rate mode needs the env's control period (dt), and {env_id} does not define one; "
            "run without control_rate"
        )
    return round(float(dt) * 1e9)


def record_observations(env: Any, infer: Policy, obs_buffer: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded rollout of the policy (untimed): the observations the inference-only phase replays."""
    recorded = np.empty((n, *obs_buffer.shape[1:]), dtype=np.float32)
    obs, _ = env.reset(seed=seed)
    for i in range(n):
        recorded[i] = obs
        obs_buffer[0] = obs
        action = infer()
        obs, _, terminated, truncated, _ = env.step(action[0])
        if terminated or truncated:
            obs, _ = env.reset()
    return recorded


def inference_phase(
    infer: Policy,
    obs_buffer: np.ndarray,
    observations: np.ndarray,
    min_s: float,
    energy: EnergyRecorder | None,
) -> InferencePhaseOutcome:
    """Replay ``observations`` through the model back-to-back, in whole passes, for at least ``min_s``.

    Only the pass loop is timed (one clock read per pass); the meters are read before and after it.
    """
    clock = time.perf_counter
    start = energy.mark() if energy else {}
    t0 = clock()
    calls = 0
    while True:
        for row in observations:
            obs_buffer[0] = row
            infer()
        calls += len(observations)
        if clock() - t0 >= min_s:
            break
    wall = clock() - t0
    end = energy.mark() if energy else {}
    figures = energy.figures(start, end, n_items=calls) if energy else []
    distinct = len(np.unique(observations, axis=0))
    return InferencePhaseOutcome(calls=calls, wall_s=wall, distinct_observations=distinct, energy=figures)


def inference_phase_length_s(settings: MeasurementSettings, energy: EnergyRecorder | None) -> float:
    """0 when the phase is skipped; else its minimum length (at least 10 updates of the slowest meter)."""
    has_meter = bool(energy and energy.meters)
    if settings.inference_phase_s == 0 or (settings.inference_phase_s is None and not has_meter):
        return 0.0
    wanted = INFERENCE_PHASE_DEFAULT_S if settings.inference_phase_s is None else settings.inference_phase_s
    return max(wanted, energy.min_window_s * 1.05 if energy else 0.0)


FLOOR_CALLS = 1000
"""Timed calls of the runtime floor (after a tenth as many untimed ones), as many as a latency phase: each is
followed by an env step, so they cost what the policy's calls cost; paced (control-rate mode): FLOOR_CALLS_PACED."""
FLOOR_CALLS_PACED = 200
"""A paced floor takes period x calls of wall time (200 x 50 ms = 10 s for HalfCheetah)."""


def open_floor_session(
    manifest: ArtifactManifest, settings: MeasurementSettings, trt_cache_dir: Path | None = None
) -> Any:
    """The same provider and options on a weightless graph of the policy's input and output shapes."""
    from device_agent.measure.floor import floor_model_bytes

    data = floor_model_bytes(manifest.observation_shape[0], manifest.action_shape[0])
    return open_session(data, settings, trt_cache_dir)


def measure_floor(
    env: Any,
    floor_session: Any,
    manifest: ArtifactManifest,
    seed: int,
    period_ns: int | None,
    n_calls: int | None = None,
) -> list[int]:
    """Time the floor session in the policy's own loop: each call followed by an env step, exactly as
    ``latency_phase`` times the policy (paced the same way in control-rate mode). Timed back-to-back instead,
    the same trivial graph reads about half as long (warm caches, no env step between calls), which would
    understate "the part no compression can remove". The env is stepped with the floor's output, which is the
    observation's first features: MuJoCo clamps a limited control to its range."""
    n = n_calls or (FLOOR_CALLS_PACED if period_ns is not None else FLOOR_CALLS)
    buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    infer = make_infer(floor_session, buffer, tuple(manifest.action_shape))
    warm_up(env, infer, buffer, max(1, n // 10), seed=seed)
    with gc_paused():
        return latency_phase(env, infer, buffer, n, seed, period_ns).calls_ns


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
    if provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return None
    from device_agent.energy.meters.nvml import process_device_memory_bytes

    return process_device_memory_bytes(os.getpid())


def runtime_facts(
    session: Any,
    settings: MeasurementSettings,
    env_id: str,
    cpus: list[int],
    binding: str = "",
    loaded: Loaded | None = None,
) -> RuntimeFacts:
    import onnxruntime as ort

    cpu_model, cpu_flags = cpu_model_and_flags()
    versions = cached_library_versions()
    return RuntimeFacts(
        execution_provider=session.get_providers()[0],
        session_providers=list(session.get_providers()),
        onnxruntime_version=ort.__version__,
        mujoco_version=versions.get("mujoco", ""),
        gymnasium_version=versions.get("gymnasium", ""),
        intra_op_threads=settings.intra_op_threads,
        env_id=env_id,
        cpu_model=cpu_model,
        cpu_flags=cpu_flags,
        worker_pid=os.getpid(),
        timer_overhead_ns=timer_overhead_ns(),
        cpu_affinity=cpus,
        inference_binding=binding,
        session_create_s=None if loaded is None else loaded.session_create_s,
        trt_engine_cache=""
        if loaded is None
        else engine_cache_outcome(session.get_providers()[0], settings, *loaded.engines),
    )


@dataclasses.dataclass
class EpisodesPhase:
    """What the episodes phase pooled: raw times, the whole phase's energy, control-rate totals."""

    calls_ns: list[int] = dataclasses.field(default_factory=list)
    steps_ns: list[int] = dataclasses.field(default_factory=list)
    energy: list[EnergyFigure] = dataclasses.field(default_factory=list)
    deadline_misses: int = 0
    max_overrun_ns: float = 0.0

    def control_rate(self, period_ns: int | None) -> ControlRateOutcome | None:
        if period_ns is None:
            return None
        return ControlRateOutcome(
            period_ns / 1e9, len(self.calls_ns), self.deadline_misses, self.max_overrun_ns
        )


def run_episodes(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    settings: MeasurementSettings,
    period_ns: int | None,
    energy: EnergyRecorder | None,
    emit: Emit,
) -> EpisodesPhase:
    """Every episode, each emitted as it ends; meters are read between episodes, never inside one."""
    phase = EpisodesPhase()
    first: Marks = {}
    before: Marks = {}
    after: Marks = {}
    for i in range(settings.n_episodes):
        if energy:
            before = energy.mark()
            first = first or before
        with gc_paused():
            if period_ns is None:
                outcome, calls_ns, steps_ns = run_episode(
                    env, infer, obs_buffer, i, settings.seed + i, settings.keep_latencies
                )
            else:
                outcome, calls_ns, steps_ns = run_paced_episode(
                    env, infer, obs_buffer, i, settings.seed + i, settings.keep_latencies, period_ns
                )
        if energy:
            after = energy.mark()
            outcome = dataclasses.replace(outcome, energy=energy.figures(before, after, n_items=1))
        phase.calls_ns += calls_ns
        phase.steps_ns += steps_ns
        phase.deadline_misses += outcome.deadline_misses or 0
        phase.max_overrun_ns = max(phase.max_overrun_ns, outcome.max_overrun_ns or 0.0)
        emit(outcome)
    if energy:
        phase.energy = energy.figures(first, after, n_items=settings.n_episodes)
    return phase


class Scheduler(Protocol):
    """How the measuring worker shares a job's episodes with its helper workers (quality_workers > 1)."""

    def wait_helpers(self, stage: str) -> None:
        """Block until every helper is "ready" (set up, idle) or "done" (exited): the device is quiet."""
        ...

    def claim(self) -> int | None:
        """The next episode index to run, or None when every episode is taken."""
        ...


class SoloScheduler:
    """No helpers: the measuring worker claims every episode itself (quality_workers > 1 in one process,
    which is how tests and tools exercise the parallel path without an agent)."""

    def __init__(self, n_episodes: int) -> None:
        self._next = 0
        self._n = n_episodes

    def wait_helpers(self, stage: str) -> None:
        return None

    def claim(self) -> int | None:
        if self._next >= self._n:
            return None
        self._next += 1
        return self._next - 1


def run_returns_episodes(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    settings: MeasurementSettings,
    scheduler: Scheduler,
    emit: Emit,
    worker: int = 0,
) -> None:
    """Claim episodes until none is left, run each for its return, emit each as it ends."""
    while (index := scheduler.claim()) is not None:
        emit(run_returns_episode(env, infer, obs_buffer, index, settings.seed + index, worker))


@dataclasses.dataclass
class Loaded:
    """The worker's resident memory around loading: before any session, after the floor session (the runtime's
    start-up: a weightless graph of the same I/O), after the model's session."""

    rss_before: int
    rss_after: int
    rss_runtime: int | None = None
    floor_session: Any = None
    session_create_s: float | None = None
    """Wall time of creating the model's session (a TensorRT engine build or load is in it)."""
    engines: tuple[set[str], set[str]] = (set(), set())
    """TensorRT's cached engine files before and after the model's session was made."""

    def facts(self, peak: int, model_bytes: int, gpu: int | None, n_params: int | None) -> MemoryFacts:
        startup = None if self.rss_runtime is None else self.rss_runtime - self.rss_before
        added = None if self.rss_runtime is None else self.rss_after - self.rss_runtime
        return MemoryFacts(self.rss_before, self.rss_after, peak, model_bytes, gpu, n_params, startup, added)


def setup(
    model_path: Path,
    manifest: ArtifactManifest,
    env_id: str,
    settings: MeasurementSettings,
    floor: bool = False,
    trt_cache_dir: Path | None = None,
) -> tuple[Any, Any, np.ndarray, Policy, str, list[int], Loaded]:
    """Affinity, env, shape check, session bound to its buffers: what every worker of a job does first.

    :param floor: open the floor session (a weightless graph of the same I/O) before the model's, so the
        memory the runtime takes to start is measured apart from what the model adds
    :return: env, session, obs_buffer, infer, how it is bound, the CPUs, the memory around loading
    """
    cpus = apply_affinity(settings.cpu_affinity)
    env = make_env(env_id, settings.max_steps_per_episode, manifest)
    check_spaces(env, manifest, env_id)
    obs_buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    loaded = Loaded(rss_bytes(), 0)
    if floor:
        loaded.floor_session = open_floor_session(manifest, settings, trt_cache_dir)
        loaded.rss_runtime = rss_bytes()
    engines_before = cached_engines(trt_cache_dir)
    t0 = time.perf_counter()
    session = open_session(model_path, settings, trt_cache_dir)
    loaded.session_create_s = time.perf_counter() - t0
    loaded.engines = (engines_before, cached_engines(trt_cache_dir))
    loaded.rss_after = rss_bytes()
    infer, binding = bind_session(session, obs_buffer, tuple(manifest.action_shape))
    return env, session, obs_buffer, infer, binding, cpus, loaded


def open_partner(
    reference_path: Path | None,
    obs_buffer: np.ndarray,
    manifest: ArtifactManifest,
    settings: MeasurementSettings,
    trt_cache_dir: Path | None,
) -> Policy:
    """The reference model of a paired latency phase, bound to the job's own input buffer."""
    if reference_path is None:
        raise InvalidRequestError(
            f"paired_with_sha256={settings.paired_with_sha256[:12]}... names no stored model; upload it first"
        )
    session = open_session(reference_path, settings, trt_cache_dir)
    shape = tuple(session.get_inputs()[0].shape[1:])
    if len(shape) != len(manifest.observation_shape) or any(
        isinstance(d, int) and d != want for d, want in zip(shape, manifest.observation_shape, strict=False)
    ):
        raise InvalidRequestError(
            f"the paired model takes observations of shape {list(shape)}, this job's model "
            f"{list(manifest.observation_shape)}: pair a variant only with its own baseline"
        )
    infer, _ = bind_session(session, obs_buffer, tuple(manifest.action_shape))
    return infer


def run_profile(
    model_path: Path,
    manifest: ArtifactManifest,
    env_id: str,
    settings: MeasurementSettings,
    emit: Emit,
    scheduler: Scheduler | None = None,
    probe: Probe | None = None,
    trt_cache_dir: Path | None = None,
    reference_path: Path | None = None,
) -> None:
    """Run one job in the measuring worker and emit JobStart, one EpisodeOutcome per episode it ran, then JobEnd.

    :param scheduler: with quality_workers > 1, who hands out episode indices (default: this worker alone)
    :param probe: where run-validity facts are read (tests point it at a recorded /proc)
    :param trt_cache_dir: the agent's TensorRT engine cache (used when the job asks for it)
    :param reference_path: the stored model ``settings.paired_with_sha256`` names (a paired latency phase)
    """
    wall0 = time.perf_counter()
    parallel = settings.quality_workers > 1
    only_latency = settings.latency_only
    scheduler = scheduler or SoloScheduler(settings.n_episodes)
    env, session, obs_buffer, infer, binding, cpus, loaded = setup(
        model_path, manifest, env_id, settings, floor=not only_latency, trt_cache_dir=trt_cache_dir
    )
    period_ns = control_period_ns(env, env_id) if settings.control_rate else None
    if parallel:
        scheduler.wait_helpers("ready")  # from here on the device is quiet until the first claim
    runtime = runtime_facts(session, settings, env_id, cpus, binding, loaded)
    model_bytes = model_path.stat().st_size
    gpu_bytes = device_memory_bytes(runtime.execution_provider)
    emit(JobStart(runtime, loaded.facts(peak_rss_bytes(), model_bytes, gpu_bytes, manifest.n_params)))
    # opened after the job's own memory facts were taken, so they stay the job's model's alone
    partner = (
        open_partner(reference_path, obs_buffer, manifest, settings, trt_cache_dir)
        if only_latency and settings.paired_with_sha256
        else None
    )
    latency: LatencyPhase | None = None
    timed = "latency phase" if parallel or only_latency else "episodes"
    with open_recorder(avoid_cpus=set(settings.cpu_affinity), enabled=not only_latency) as recorder:
        energy = recorder if recorder.meters else None
        idle = energy.measure_idle(settings.idle_s) if energy and settings.idle_s > 0 else []
        warm_up(env, infer, obs_buffer, settings.warmup_calls, seed=settings.seed + 1_000_003)
        if partner is not None:
            warm_up(env, partner, obs_buffer, settings.warmup_calls, seed=settings.seed + 1_000_003)
        if parallel or only_latency:
            with validity_window(timed, cpus, probe) as validity, gc_paused():
                latency = latency_phase(
                    env,
                    infer,
                    obs_buffer,
                    settings.latency_calls,
                    settings.seed + 3_000_003,
                    period_ns,
                    partner=partner,
                )
            if not only_latency:
                run_returns_episodes(env, infer, obs_buffer, settings, scheduler, emit)
                scheduler.wait_helpers("done")  # quiet again: the inference-only phase and the floor
            episodes = EpisodesPhase(
                latency.calls_ns, latency.steps_ns, [], latency.deadline_misses, latency.max_overrun_ns
            )
        else:
            with validity_window(timed, cpus, probe) as validity:
                episodes = run_episodes(env, infer, obs_buffer, settings, period_ns, energy, emit)
        replay = None
        if not only_latency and (replay_s := inference_phase_length_s(settings, energy)) > 0:
            observations = record_observations(
                env, infer, obs_buffer, settings.replay_observations, seed=settings.seed + 2_000_003
            )
            with gc_paused():
                replay = inference_phase(infer, obs_buffer, observations, replay_s, energy)
        meters = recorder.statuses
    gpu_end = device_memory_bytes(runtime.execution_provider)
    if gpu_end is not None:
        gpu_bytes = max(gpu_bytes or 0, gpu_end)
    floor = (
        None
        if loaded.floor_session is None
        else measure_floor(env, loaded.floor_session, manifest, settings.seed + 4_000_003, period_ns)
    )
    env.close()
    emit(
        JobEnd(
            memory=loaded.facts(peak_rss_bytes(), model_bytes, gpu_bytes, manifest.n_params),
            inference=latency_summary(episodes.calls_ns),
            env_step=latency_summary(episodes.steps_ns),
            total_steps=len(episodes.steps_ns),  # env steps: a paired phase steps for both models,
            wall_s=time.perf_counter() - wall0,
            runtime_floor=None if floor is None else latency_summary(floor),
            meters=meters,
            idle_energy=idle,
            energy=episodes.energy,
            inference_phase=replay,
            control_rate=episodes.control_rate(period_ns),
            latency_phase=None
            if latency is None
            else LatencyPhaseOutcome(
                calls=len(latency.calls_ns),
                seed=latency.seed,
                wall_s=latency.wall_s,
                inference_ns=latency.calls_ns if settings.keep_latencies else [],
            ),
            validity=validity,
            runtime_floor_in_loop=floor is not None,
            paired=None
            if partner is None or latency is None
            else PairedLatencyOutcome(
                reference_sha256=settings.paired_with_sha256,
                block_calls=PAIRED_BLOCK_CALLS,
                reference=latency_summary(latency.partner_calls_ns),
                reference_inference_ns=latency.partner_calls_ns if settings.keep_latencies else [],
            ),
        )
    )


def run_helper(
    model_path: Path,
    manifest: ArtifactManifest,
    env_id: str,
    settings: MeasurementSettings,
    emit: Emit,
    next_index: Callable[[], int | None],
    worker: int,
    ready: Callable[[], None],
    trt_cache_dir: Path | None = None,
) -> None:
    """A helper worker of the parallel quality phase: set up, say so, then run the episodes it is handed
    (returns only) until it is handed None. No warm-up: nothing it does is timed."""
    env, _session, obs_buffer, infer, _binding, _cpus, _rss = setup(
        model_path, manifest, env_id, settings, trt_cache_dir=trt_cache_dir
    )
    ready()
    while (index := next_index()) is not None:
        emit(run_returns_episode(env, infer, obs_buffer, index, settings.seed + index, worker))
    env.close()
