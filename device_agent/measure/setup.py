"""What every worker of a job does first: pin itself, build the env, check the model fits it, open the session
and bind it to its buffers, noting the memory around loading; and the facts about the runtime it then reports."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from device_agent.contract.envs import build_env
from device_agent.contract.errors import InvalidModelError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.platform_facts import cpu_model_and_flags
from device_agent.contract.settings import MeasurementSettings
from device_agent.measure.floor import open_floor_session
from device_agent.measure.process import apply_affinity, cached_library_versions, rss_bytes, timer_overhead_ns
from device_agent.measure.providers import cached_engines, engine_cache_outcome
from device_agent.measure.results import MemoryFacts, RuntimeFacts
from device_agent.measure.session import Policy, bind_session, open_session


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


def runtime_facts(
    session: Any,
    settings: MeasurementSettings,
    env_id: str,
    cpus: list[int],
    binding: str = "",
    loaded: Loaded | None = None,
) -> RuntimeFacts:
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
