"""A job's sequence in its measuring worker (``run_profile``) and in a helper worker (``run_helper``).

A job's phases: idle window (where an energy meter works), warm-up, the episodes (paced at the env's control
period in control-rate mode), the inference-only phase (observations recorded in the env, replayed
back-to-back: what energy per inference is measured on), the runtime floor (a weightless graph of the same I/O,
timed in the same loop: an env step between calls). Run-validity facts (``device_agent.measure.validity``) are
read just before and after the timed window. A latency-only job (a later round of a repeated deploy) is warm-up
and latency phase alone, optionally paired with the variant's baseline.

With ``quality_workers`` > 1 the episodes run for their returns only, shared with helper workers through a
``Scheduler``; before them the measuring worker times ``latency_calls`` in-loop calls alone (the latency phase),
and after them, alone again, the inference-only phase and the floor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.settings import PAIRED_BLOCK_CALLS, MeasurementSettings
from device_agent.contract.stats import latency_summary
from device_agent.energy.recorder import open_recorder
from device_agent.measure.floor import measure_floor
from device_agent.measure.loop import Stepped, gc_paused
from device_agent.measure.phases import (
    FLOOR_SEED_OFFSET,
    LATENCY_SEED_OFFSET,
    REPLAY_SEED_OFFSET,
    WARMUP_SEED_OFFSET,
    EpisodesPhase,
    Emit,
    Scheduler,
    SoloScheduler,
    control_period_ns,
    inference_phase,
    inference_phase_length_s,
    latency_phase,
    record_observations,
    run_episodes,
    run_returns_episode,
    run_returns_episodes,
    warm_up,
)
from device_agent.measure.process import device_memory_bytes, peak_rss_bytes
from device_agent.measure.results import (
    HelperStage,
    JobEnd,
    JobStart,
    LatencyPhaseOutcome,
    PairedLatencyOutcome,
)
from device_agent.measure.session import open_partner
from device_agent.measure.setup import runtime_facts, setup
from device_agent.measure.validity import Probe, validity_window


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
        scheduler.wait_helpers(HelperStage.READY)  # from here on the device is quiet until the first claim
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
    latency: Stepped | None = None
    timed = "latency phase" if parallel or only_latency else "episodes"
    with open_recorder(avoid_cpus=set(settings.cpu_affinity), enabled=not only_latency) as recorder:
        energy = recorder if recorder.meters else None
        idle = energy.measure_idle(settings.idle_s) if energy and settings.idle_s > 0 else []
        warm_up(env, infer, obs_buffer, settings.warmup_calls, seed=settings.seed + WARMUP_SEED_OFFSET)
        if partner is not None:
            warm_up(env, partner, obs_buffer, settings.warmup_calls, seed=settings.seed + WARMUP_SEED_OFFSET)
        if parallel or only_latency:
            with validity_window(timed, cpus, probe) as validity, gc_paused():
                latency = latency_phase(
                    env,
                    infer,
                    obs_buffer,
                    settings.latency_calls,
                    settings.seed + LATENCY_SEED_OFFSET,
                    period_ns,
                    partner=partner,
                )
            if not only_latency:
                run_returns_episodes(env, infer, obs_buffer, settings, scheduler, emit)
                # quiet again for the inference-only phase and the floor
                scheduler.wait_helpers(HelperStage.DONE)
            episodes = EpisodesPhase(
                latency.calls_ns, latency.steps_ns, [], latency.deadline_misses, latency.max_overrun_ns
            )
        else:
            with validity_window(timed, cpus, probe) as validity:
                episodes = run_episodes(env, infer, obs_buffer, settings, period_ns, energy, emit)
        replay = None
        if not only_latency and (replay_s := inference_phase_length_s(settings, energy)) > 0:
            observations = record_observations(
                env, infer, obs_buffer, settings.replay_observations, seed=settings.seed + REPLAY_SEED_OFFSET
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
        else measure_floor(env, loaded.floor_session, manifest, settings.seed + FLOOR_SEED_OFFSET, period_ns)
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
                reference_sha256=settings.paired_with_sha256 or "",
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
    env, _session, obs_buffer, infer, _binding, _cpus, _loaded = setup(
        model_path, manifest, env_id, settings, trt_cache_dir=trt_cache_dir
    )
    ready()
    while (index := next_index()) is not None:
        emit(run_returns_episode(env, infer, obs_buffer, index, settings.seed + index, worker))
    env.close()
