"""The measuring loop: one policy, one MuJoCo env, seeded episodes, timed inference calls.

Runs inside a job's worker process. Between ``env.step`` and the inference call it does
only what the measurement needs: copy the observation into a preallocated float32 buffer,
read the clock, call the runtime, read the clock. Statistics are computed per episode,
after the episode, outside the timed region.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device_agent.errors import EnvUnavailableError, InvalidModelError, WorkerError
from device_agent.manifest import ArtifactManifest
from device_agent.platform_facts import cpu_model_and_flags, library_versions
from device_agent.results import EpisodeOutcome, JobEnd, JobStart, MemoryFacts, RuntimeFacts
from device_agent.settings import MeasurementSettings
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


def run_profile(
    model_path: Path, manifest: ArtifactManifest, env_id: str, settings: MeasurementSettings, emit: Emit
) -> None:
    """Run one job and emit JobStart, one EpisodeOutcome per episode, then JobEnd."""
    import onnxruntime as ort

    wall0 = time.perf_counter()
    env = make_env(env_id, settings.max_steps_per_episode)
    check_spaces(env, manifest, env_id)
    obs_buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
    rss_before = rss_bytes()
    session = open_session(model_path, settings)
    rss_after = rss_bytes()
    infer = make_infer(session, obs_buffer)
    cpu_model, cpu_flags = cpu_model_and_flags()
    versions = library_versions()
    runtime = RuntimeFacts(
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
    )
    model_bytes = model_path.stat().st_size
    emit(JobStart(runtime, MemoryFacts(rss_before, rss_after, peak_rss_bytes(), model_bytes)))
    warm_up(env, infer, obs_buffer, settings.warmup_calls, seed=settings.seed + 1_000_003)
    all_calls: list[int] = []
    all_steps: list[int] = []
    for i in range(settings.n_episodes):
        outcome, calls_ns, steps_ns = run_episode(
            env, infer, obs_buffer, i, settings.seed + i, settings.keep_latencies
        )
        all_calls += calls_ns
        all_steps += steps_ns
        emit(outcome)
    env.close()
    floor = measure_floor(manifest, settings)
    emit(
        JobEnd(
            memory=MemoryFacts(rss_before, rss_after, peak_rss_bytes(), model_bytes),
            inference=latency_summary(all_calls),
            env_step=latency_summary(all_steps),
            total_steps=len(all_calls),
            wall_s=time.perf_counter() - wall0,
            runtime_floor=latency_summary(floor),
        )
    )
