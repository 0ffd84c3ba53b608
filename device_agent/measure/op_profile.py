"""The operator profile phase: where the time of one inference call goes, by op type and by node.

Runs in a worker process of its own, started after the job's timed phases have ended and their
worker has exited, so nothing here (the profiler's own cost, its file, a second session) can reach
a timed figure. The loop is the timed loop's: an env step between calls, the session bound to the
same preallocated buffers. ONNX Runtime's profiler (``SessionOptions.enable_profiling``) writes a
Chrome-trace JSON list of events when ``end_profiling()`` is called; what this module reads of it:

- ``cat == "Session"``, ``name == "model_run"``: one per ``Run``, ``ts`` and ``dur`` in µs;
- ``cat == "Node"``, ``name`` ending in ``_kernel_time``: one per kernel executed, with
  ``args.op_name`` (the op type, e.g. ``FusedGemm``) and ``args.provider``; the node name is
  ``name`` without the suffix. (GPU providers add ``_fence_before``/``_fence_after`` events: not kernels.)

The profiler's own cost per kernel is measured too: the runtime floor's graph (a Tile and a Slice that do no
arithmetic) is profiled the same way right after, and the mean of its kernels' trimmed means is what a kernel
that does no work reads (``kernel_overhead_us``). On a desktop CPU that is 2-3 µs, as much as a small layer's product:
a graph with more nodes reads slower under the profiler than it runs.

Kernels are assigned to the run whose window holds them; only the last ``calls`` runs count, so
the warm-up calls (and the check call ``bind_session`` makes) are left out. The profiler rounds each
duration down to a whole µs, so a kernel of a few µs reads up to 1 µs short: the shares are for
telling big from small, not for a third digit.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.contract.errors import WorkerError
from device_agent.measure.floor import floor_model_bytes
from device_agent.measure.loop import gc_paused
from device_agent.measure.phases import OP_PROFILE_SEED_OFFSET, latency_phase, warm_up
from device_agent.measure.process import apply_affinity
from device_agent.measure.session import bind_session, open_session, session_options
from device_agent.measure.setup import make_env
from device_agent.contract.manifest import ArtifactManifest
from device_agent.measure.results import OpProfileOutcome, OpTime
from device_agent.contract.settings import MeasurementSettings

KERNEL_SUFFIX = "_kernel_time"


TRIM = 0.1
"""Share of the profiled calls left out at each end of a trimmed mean (scipy.stats.trim_mean's proportiontocut)."""


def trimmed_mean(values: np.ndarray, cut: float = TRIM) -> float:
    """The mean of ``values`` without the lowest and highest ``cut`` of them (as scipy.stats.trim_mean)."""
    ordered = np.sort(values)
    k = int(cut * len(ordered))
    kept = ordered[k : len(ordered) - k] if len(ordered) > 2 * k else ordered
    return float(kept.mean()) if len(kept) else 0.0


def _run_windows(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    return sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in runs)


def reduce_events(events: list[dict[str, Any]], calls: int, wall_per_call_us: float) -> OpProfileOutcome:
    """Mean kernel time per call by op type and by node over the last ``calls`` runs of the trace.

    :param wall_per_call_us: the mean wall time of those calls as the loop timed them (profiler on); the part
        outside any kernel is this minus the kernels' sum, and every share is of it
    """
    windows = _run_windows(events)
    if len(windows) < calls:
        raise WorkerError(f"the profiler recorded {len(windows)} runs, fewer than the {calls} profiled calls")
    windows = windows[-calls:]
    starts = [w[0] for w in windows]
    by_node: dict[str, float] = defaultdict(float)
    per_call: dict[str, np.ndarray] = {}
    """Per node, its time in each counted call (0 where it did not run)."""
    node_type: dict[str, str] = {}
    node_provider: dict[str, str] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        ts = float(e["ts"])
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or ts > windows[i][1]:
            continue  # a warm-up call's kernel, or one outside every counted run
        node = name[: -len(KERNEL_SUFFIX)].strip() or "(unnamed)"
        args = e.get("args", {})
        by_node[node] += float(e["dur"])
        if node not in per_call:
            per_call[node] = np.zeros(calls)
        per_call[node][i] += float(e["dur"])
        node_type[node] = str(args.get("op_name", "?"))
        node_provider[node] = str(args.get("provider", ""))
    by_type: dict[str, float] = defaultdict(float)
    type_calls: dict[str, np.ndarray] = {}
    for node, total in by_node.items():
        by_type[node_type[node]] += total
        type_calls[node_type[node]] = type_calls.get(node_type[node], np.zeros(calls)) + per_call[node]
    run_per_call = float(np.mean([b - a for a, b in windows]))
    kernel = sum(by_node.values()) / calls
    wall = max(wall_per_call_us, 1e-9)

    def rows(totals: dict[str, float], types: dict[str, str] | None) -> list[OpTime]:
        each = per_call if types else type_calls
        out = [
            OpTime(
                name=key,
                op_type=types[key] if types else key,
                mean_us=total / calls,
                share=total / calls / wall,
                provider=node_provider.get(key, "") if types else "",
                trimmed_us=trimmed_mean(each[key]),
            )
            for key, total in totals.items()
        ]
        return sorted(out, key=lambda t: -t.mean_us)

    outside = wall_per_call_us - kernel
    return OpProfileOutcome(
        calls=calls,
        wall_per_call_us=wall_per_call_us,
        run_per_call_us=run_per_call,
        kernel_per_call_us=kernel,
        outside_kernels_us=outside,
        outside_kernels_share=outside / wall,
        op_types=rows(by_type, None),
        nodes=rows(by_node, node_type),
    )


def run_op_profile(
    model_path: Path,
    manifest: ArtifactManifest,
    env_id: str,
    settings: MeasurementSettings,
    trt_cache_dir: Path | None = None,
    timed_call_us: float | None = None,
) -> OpProfileOutcome:
    """Profile ``settings.op_profile_calls`` in-loop calls (after ``warmup_calls`` uncounted ones) and reduce them.

    :param timed_call_us: the job's own timed call (p50, profiler off), reported beside the profiled one
    """
    calls = settings.op_profile_calls
    apply_affinity(settings.cpu_affinity)
    env = make_env(env_id, settings.max_steps_per_episode, manifest)
    folder = Path(tempfile.mkdtemp(prefix="drlc-op-profile-"))
    seed = settings.seed + OP_PROFILE_SEED_OFFSET

    def profiled(model: Path | bytes, name: str) -> tuple[list[dict[str, Any]], float, str]:
        """Profile ``calls`` in-loop calls of ``model``: (trace events, mean wall µs per call, provider)."""
        options = session_options(settings)
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / name)
        session = open_session(model, settings, trt_cache_dir, options)
        obs_buffer = np.zeros((1, *manifest.observation_shape), dtype=np.float32)
        infer, _how = bind_session(session, obs_buffer, tuple(manifest.action_shape))
        warm_up(env, infer, obs_buffer, settings.warmup_calls, seed=seed)
        with gc_paused():
            phase = latency_phase(env, infer, obs_buffer, calls, seed + 1, None)
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text())
        if not isinstance(events, list):
            raise WorkerError(f"ONNX Runtime's profile {trace.name} is not a list of events")
        return events, float(np.mean(phase.calls_ns)) / 1e3, session.get_providers()[0]

    try:
        events, wall_us, provider = profiled(model_path, "model")
        outcome = reduce_events(events, calls, wall_us)
        floor_events, floor_wall_us, _ = profiled(
            floor_model_bytes(manifest.observation_shape[0], manifest.action_shape[0]), "floor"
        )
        floor = reduce_events(floor_events, calls, floor_wall_us)
    finally:
        env.close()
        shutil.rmtree(folder, ignore_errors=True)
    overhead = float(np.mean([n.trimmed_us for n in floor.nodes])) if floor.nodes else 0.0
    return dataclasses.replace(
        outcome, execution_provider=provider, timed_call_us=timed_call_us or 0.0, kernel_overhead_us=overhead
    )
