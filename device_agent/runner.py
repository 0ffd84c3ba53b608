"""The measuring loop: one policy, one MuJoCo env, seeded episodes, timed inference calls.

Runs inside a job's worker process. Between ``env.step`` and the inference call it does
only what the measurement needs: copy the observation into a preallocated float32 buffer,
read the clock, call the runtime, read the clock. Statistics are computed per episode,
after the episode, outside the timed region.

A job's phases: idle window (where an energy meter works), warm-up, the episodes (paced at
the env's control period in control-rate mode), the inference-only phase (observations
recorded in the env, replayed back-to-back: what energy per inference is measured on), the
runtime floor. Energy meters are read only between phases and between episodes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device_agent.energy.recorder import EnergyRecorder, Marks, open_recorder
from device_agent.errors import EnvUnavailableError, InvalidModelError, InvalidRequestError, WorkerError
from device_agent.manifest import ArtifactManifest
from device_agent.platform_facts import cpu_model_and_flags, library_versions
from device_agent.results import (
    ControlRateOutcome,
    EnergyFigure,
    EpisodeOutcome,
    InferencePhaseOutcome,
    JobEnd,
    JobStart,
    MemoryFacts,
    RuntimeFacts,
)
from device_agent.settings import INFERENCE_PHASE_DEFAULT_S, MeasurementSettings
from device_agent.stats import latency_summary

Emit = Callable[[object], None]


class Policy(Protocol):
    """Anything that maps a (1, obs_dim) float32 buffer to a (1, act_dim) action array."""

    def __call__(self) -> np.ndarray: ...


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """The worker's high-water resident set (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def timer_overhead_ns(n: int = 20_000) -> float:
    """Median cost of one back-to-back perf_counter_ns pair: the floor of every latency we report."""
    clock = time.perf_counter_ns
    samples = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        samples[i] = clock() - t0
    return float(np.median(samples))


def make_env(env_id: str, max_steps: int) -> Any:
    import gymnasium as gym

    try:
        kwargs = {"max_episode_steps": max_steps} if max_steps > 0 else {}
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise EnvUnavailableError(f"cannot build env {env_id!r} on this device: {exc}") from exc
    except Exception as exc:  # MuJoCo or a missing extra fails in its own ways
        raise EnvUnavailableError(
            f"cannot build env {env_id!r} on this device: {type(exc).__name__}: {exc}"
        ) from exc


def check_spaces(env: Any, manifest: ArtifactManifest, env_id: str) -> None:
    obs_shape = list(env.observation_space.shape or ())
    act_shape = list(getattr(env.action_space, "shape", None) or ())
    if obs_shape != manifest.observation_shape or act_shape != manifest.action_shape:
        raise InvalidModelError(
            f"the model maps observations {manifest.observation_shape} to actions {manifest.action_shape}, "
            f"but {env_id} has observations {obs_shape} and actions {act_shape}"
        )


def open_session(model_path: Path | bytes, settings: MeasurementSettings) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        source = model_path if isinstance(model_path, bytes) else str(model_path)
        return ort.InferenceSession(
            source, sess_options=options, providers=list(settings.execution_providers)
        )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise InvalidModelError(f"ONNX Runtime cannot load the model: {type(exc).__name__}: {exc}") from exc


def make_infer(session: Any, obs_buffer: np.ndarray) -> Policy:
    """Bind the session to one preallocated input buffer: the call allocates only its output."""
    run = session.run
    outputs = [session.get_outputs()[0].name]
    feeds = {session.get_inputs()[0].name: obs_buffer}

    def infer() -> np.ndarray:
        return run(outputs, feeds)[0]

    return infer


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
    outcome = EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=total,
        length=len(inference_ns),
        terminated=bool(terminated),
        inference=latency_summary(inference_ns),
        env_step=latency_summary(step_ns),
        wall_s=time.perf_counter() - wall0,
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
    outcome = EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=total,
        length=len(inference_ns),
        terminated=bool(terminated),
        inference=latency_summary(inference_ns),
        env_step=latency_summary(step_ns),
        wall_s=time.perf_counter() - wall0,
        inference_ns=inference_ns if keep_latencies else [],
        deadline_misses=misses,
        max_overrun_ns=float(worst),
    )
    return outcome, inference_ns, step_ns


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


def measure_floor(
    manifest: ArtifactManifest, settings: MeasurementSettings, n_calls: int = 2000
) -> list[int]:
    """Time the same provider and options on a trivial graph of the policy's shapes."""
    from device_agent.floor import floor_model_bytes

    buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    infer = make_infer(
        open_session(floor_model_bytes(buffer.shape[1], manifest.action_shape[0]), settings), buffer
    )
    clock = time.perf_counter_ns
    samples = []
    for i in range(n_calls + n_calls // 10):
        t0 = clock()
        infer()
        if i >= n_calls // 10:  # the first tenth warms up
            samples.append(clock() - t0)
    return samples


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
    from device_agent.energy.nvml import process_device_memory_bytes

    return process_device_memory_bytes(os.getpid())


def runtime_facts(session: Any, settings: MeasurementSettings, env_id: str, cpus: list[int]) -> RuntimeFacts:
    import onnxruntime as ort

    cpu_model, cpu_flags = cpu_model_and_flags()
    versions = library_versions()
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


def run_profile(
    model_path: Path, manifest: ArtifactManifest, env_id: str, settings: MeasurementSettings, emit: Emit
) -> None:
    """Run one job and emit JobStart, one EpisodeOutcome per episode, then JobEnd."""
    wall0 = time.perf_counter()
    cpus = apply_affinity(settings.cpu_affinity)
    env = make_env(env_id, settings.max_steps_per_episode)
    check_spaces(env, manifest, env_id)
    period_ns = control_period_ns(env, env_id) if settings.control_rate else None
    obs_buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    rss_before = rss_bytes()
    session = open_session(model_path, settings)
    rss_after = rss_bytes()
    infer = make_infer(session, obs_buffer)
    runtime = runtime_facts(session, settings, env_id, cpus)
    model_bytes = model_path.stat().st_size
    gpu_bytes = device_memory_bytes(runtime.execution_provider)
    emit(
        JobStart(
            runtime,
            MemoryFacts(rss_before, rss_after, peak_rss_bytes(), model_bytes, gpu_bytes, manifest.n_params),
        )
    )
    with open_recorder(avoid_cpus=set(settings.cpu_affinity)) as recorder:
        energy = recorder if recorder.meters else None
        idle = energy.measure_idle(settings.idle_s) if energy and settings.idle_s > 0 else []
        warm_up(env, infer, obs_buffer, settings.warmup_calls, seed=settings.seed + 1_000_003)
        episodes = run_episodes(env, infer, obs_buffer, settings, period_ns, energy, emit)
        replay = None
        if (replay_s := inference_phase_length_s(settings, energy)) > 0:
            observations = record_observations(
                env, infer, obs_buffer, settings.replay_observations, seed=settings.seed + 2_000_003
            )
            replay = inference_phase(infer, obs_buffer, observations, replay_s, energy)
        meters = recorder.statuses
    env.close()
    gpu_end = device_memory_bytes(runtime.execution_provider)
    if gpu_end is not None:
        gpu_bytes = max(gpu_bytes or 0, gpu_end)
    floor = measure_floor(manifest, settings)
    emit(
        JobEnd(
            memory=MemoryFacts(
                rss_before, rss_after, peak_rss_bytes(), model_bytes, gpu_bytes, manifest.n_params
            ),
            inference=latency_summary(episodes.calls_ns),
            env_step=latency_summary(episodes.steps_ns),
            total_steps=len(episodes.calls_ns),
            wall_s=time.perf_counter() - wall0,
            runtime_floor=latency_summary(floor),
            meters=meters,
            idle_energy=idle,
            energy=episodes.energy,
            inference_phase=replay,
            control_rate=episodes.control_rate(period_ns),
        )
    )
