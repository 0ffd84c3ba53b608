"""Between the worker's plain records (``device_agent.measure.results``) and the wire messages; nothing else
knows both. The settings' mapping is the contract's (``device_agent.contract.settings``): the host needs it too."""

from __future__ import annotations

from google.protobuf import json_format

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.energy.meters.base import MeterStatus
from device_agent.energy.recorder import EnergyFigure
from device_agent.measure.results import (
    ControlRateOutcome,
    EpisodeOutcome,
    InferencePhaseOutcome,
    JobEnd,
    LatencyPhaseOutcome,
    OpProfileOutcome,
    PairedLatencyOutcome,
    OpTime,
    MemoryFacts,
    RuntimeFacts,
)
from device_agent.contract.stats import LatencySummary, return_stats


def latency_to_proto(s: LatencySummary) -> pb.LatencyStats:
    return pb.LatencyStats(
        count=s.count,
        mean_ns=s.mean_ns,
        std_ns=s.std_ns,
        min_ns=s.min_ns,
        p50_ns=s.p50_ns,
        p90_ns=s.p90_ns,
        p99_ns=s.p99_ns,
        max_ns=s.max_ns,
        p999_ns=s.p999_ns,
        bucket_edges_ns=s.bucket_edges_ns,
        bucket_counts=s.bucket_counts,
    )


def memory_to_proto(m: MemoryFacts) -> pb.MemoryStats:
    msg = pb.MemoryStats(
        rss_before_load_bytes=m.rss_before_load_bytes,
        rss_after_load_bytes=m.rss_after_load_bytes,
        peak_rss_bytes=m.peak_rss_bytes,
        model_file_bytes=m.model_file_bytes,
    )
    if m.device_memory_bytes is not None:
        msg.device_memory_bytes = m.device_memory_bytes
    if m.model_parameters is not None:
        msg.model_parameters = m.model_parameters
    if m.runtime_startup_bytes is not None:
        msg.runtime_startup_bytes = m.runtime_startup_bytes
    if m.model_added_bytes is not None:
        msg.model_added_bytes = m.model_added_bytes
    return msg


def energy_to_proto(f: EnergyFigure) -> pb.EnergyReading:
    msg = pb.EnergyReading(
        meter=f.meter,
        gross_j=f.gross_j,
        window_s=f.window_s,
        below_resolution=f.below_resolution,
        n_items=f.n_items,
    )
    if f.net_j is not None:
        msg.net_j = f.net_j
    if f.idle_power_w is not None:
        msg.idle_power_w = f.idle_power_w
    if f.net_j_per_item is not None:
        msg.net_j_per_item = f.net_j_per_item
    return msg


def meter_to_proto(s: MeterStatus) -> pb.EnergyMeterInfo:
    return pb.EnergyMeterInfo(
        name=s.name,
        available=s.available,
        reason=s.reason,
        resolution_j=s.resolution_j,
        update_period_s=s.update_period_s,
        scope=s.scope,
    )


def inference_phase_to_proto(p: InferencePhaseOutcome) -> pb.InferencePhase:
    return pb.InferencePhase(
        calls=p.calls,
        wall_s=p.wall_s,
        mean_call_ns=p.wall_s * 1e9 / p.calls if p.calls else 0.0,
        distinct_observations=p.distinct_observations,
        energy=[energy_to_proto(f) for f in p.energy],
    )


def control_rate_to_proto(c: ControlRateOutcome) -> pb.ControlRate:
    return pb.ControlRate(
        period_s=c.period_s, ticks=c.ticks, deadline_misses=c.deadline_misses, max_overrun_ns=c.max_overrun_ns
    )


def runtime_to_proto(r: RuntimeFacts) -> pb.RuntimeInfo:
    return pb.RuntimeInfo(
        execution_provider=r.execution_provider,
        session_providers=r.session_providers,
        onnxruntime_version=r.onnxruntime_version,
        mujoco_version=r.mujoco_version,
        gymnasium_version=r.gymnasium_version,
        intra_op_threads=r.intra_op_threads,
        env_id=r.env_id,
        cpu_model=r.cpu_model,
        cpu_flags=r.cpu_flags,
        worker_pid=r.worker_pid,
        timer_overhead_ns=r.timer_overhead_ns,
        cpu_affinity=r.cpu_affinity,
        inference_binding=r.inference_binding,
        session_create_s=r.session_create_s,
        trt_engine_cache=r.trt_engine_cache,
    )


def episode_to_proto(e: EpisodeOutcome) -> pb.EpisodeResult:
    msg = pb.EpisodeResult(
        index=e.index,
        seed=e.seed,
        episode_return=e.episode_return,
        length=e.length,
        terminated=e.terminated,
        inference=latency_to_proto(e.inference),
        env_step=latency_to_proto(e.env_step),
        inference_ns=e.inference_ns,
        wall_s=e.wall_s,
        energy=[energy_to_proto(f) for f in e.energy],
        returns_only=e.returns_only,
        worker=e.worker,
    )
    if e.deadline_misses is not None:
        msg.deadline_misses = e.deadline_misses
    if e.max_overrun_ns is not None:
        msg.max_overrun_ns = e.max_overrun_ns
    return msg


def latency_phase_to_proto(p: LatencyPhaseOutcome) -> pb.LatencyPhase:
    return pb.LatencyPhase(calls=p.calls, seed=p.seed, wall_s=p.wall_s, inference_ns=p.inference_ns)


def paired_to_proto(p: PairedLatencyOutcome) -> pb.PairedLatency:
    return pb.PairedLatency(
        reference_sha256=p.reference_sha256,
        block_calls=p.block_calls,
        reference=latency_to_proto(p.reference),
        reference_inference_ns=p.reference_inference_ns,
    )


def summary_to_proto(
    end: JobEnd,
    episodes: list[pb.EpisodeResult],
    runtime: pb.RuntimeInfo,
    requested: pb.ProfileSettings,
    effective: pb.ProfileSettings,
) -> pb.JobSummary:
    stats = return_stats([e.episode_return for e in episodes])
    # with parallel episodes the measuring worker timed only the latency phase; the steps are the episodes'
    total_steps = (
        sum(e.length for e in episodes) if end.latency_phase is not None and episodes else end.total_steps
    )
    msg = pb.JobSummary(
        n_episodes=stats.n,
        return_mean=stats.mean,
        return_std=stats.std,
        return_ci95_low=stats.ci95_low,
        return_ci95_high=stats.ci95_high,
        total_steps=total_steps,
        inference=latency_to_proto(end.inference),
        env_step=latency_to_proto(end.env_step),
        memory=memory_to_proto(end.memory),
        runtime=runtime,
        requested=requested,
        effective=effective,
        wall_s=end.wall_s,
    )
    if end.runtime_floor is not None:
        msg.runtime_floor.CopyFrom(latency_to_proto(end.runtime_floor))
    msg.energy_meters.extend(meter_to_proto(m) for m in end.meters)
    msg.idle_energy.extend(energy_to_proto(f) for f in end.idle_energy)
    msg.energy.extend(energy_to_proto(f) for f in end.energy)
    if end.inference_phase is not None:
        msg.inference_phase.CopyFrom(inference_phase_to_proto(end.inference_phase))
    if end.control_rate is not None:
        msg.control_rate.CopyFrom(control_rate_to_proto(end.control_rate))
    if end.latency_phase is not None:
        msg.latency_phase.CopyFrom(latency_phase_to_proto(end.latency_phase))
    if end.paired is not None:
        msg.paired.CopyFrom(paired_to_proto(end.paired))
    if end.validity is not None:
        msg.validity.CopyFrom(json_format.ParseDict(end.validity, pb.RunValidity()))
    msg.runtime_floor_in_loop = end.runtime_floor_in_loop
    return msg


def op_profile_to_proto(p: OpProfileOutcome) -> pb.OpProfile:
    def rows(times: list[OpTime]) -> list[pb.OpTime]:
        return [
            pb.OpTime(
                name=t.name,
                op_type=t.op_type,
                mean_us=t.mean_us,
                share=t.share,
                provider=t.provider,
                trimmed_us=t.trimmed_us,
            )
            for t in times
        ]

    return pb.OpProfile(
        calls=p.calls,
        wall_per_call_us=p.wall_per_call_us,
        run_per_call_us=p.run_per_call_us,
        kernel_per_call_us=p.kernel_per_call_us,
        outside_kernels_us=p.outside_kernels_us,
        outside_kernels_share=p.outside_kernels_share,
        op_types=rows(p.op_types),
        nodes=rows(p.nodes),
        execution_provider=p.execution_provider,
        error=p.error,
        timed_call_us=p.timed_call_us,
        kernel_overhead_us=p.kernel_overhead_us,
    )
