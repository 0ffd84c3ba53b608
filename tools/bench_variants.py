"""Benchmark: batch-1 latency of every variant of one policy on this machine, in one run.

Next to the variants it times ONNX Runtime's floor (the same call on a trivial graph with
the policy's input and output shapes: what no compression can remove) and a bare numpy
forward pass of the baseline's weights. Every model is timed on the same real observations
(rolled out from the baseline in its env), one call per observation, 1 intra-op thread,
interleaved in rounds so machine noise spreads over all of them.

    drlc-host compress BASELINE --sweep            # make the variants first
    python tools/bench_variants.py BASELINE [--home DIR] [--calls 3000] [--rounds 3]

Prints a Markdown table and one summary line with the fp32 baseline's p50 against the floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ort_call(data: bytes) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    run = session.run
    return lambda x: run(None, {"obs": x})


def numpy_call(spec) -> Callable[[np.ndarray], object]:
    """The baseline's forward pass in plain numpy (relu/tanh actors), batch 1."""
    weights = [(np.ascontiguousarray(layer.weight.T), layer.bias) for layer in spec.layers]
    act = {"relu": lambda v: np.maximum(v, 0.0, out=v), "tanh": lambda v: np.tanh(v, out=v)}.get(
        spec.activation
    )
    if act is None:
        raise SystemExit(f"numpy reference supports relu and tanh actors, not {spec.activation}")
    norm = spec.obs_norm
    mean = None if norm is None else norm.mean.astype(np.float32)
    scale = None if norm is None else norm.scale.astype(np.float32)
    low, high = spec.action_low, spec.action_high
    half, mid = 0.5 * (high - low), 0.5 * (high + low)

    def forward(x: np.ndarray) -> np.ndarray:
        if norm is not None:
            x = np.clip((x - mean) * scale, -norm.clip_obs, norm.clip_obs)
        for w, b in weights[:-1]:
            x = act(x @ w + b)
        w, b = weights[-1]
        x = x @ w + b
        return np.tanh(x) * half + mid if spec.postprocess == "tanh_rescale" else np.clip(x, low, high)

    return forward


def time_calls(call: Callable[[np.ndarray], object], obs: np.ndarray) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(obs.shape[0], dtype=np.int64)
    rows = [obs[i : i + 1] for i in range(obs.shape[0])]
    for r in rows[:200]:  # warm-up
        call(r)
    for i, r in enumerate(rows):
        t0 = clock()
        call(r)
        out[i] = clock() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "baseline", help="baseline selector: sha256 prefix, name or .onnx path registered in the workspace"
    )
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per model and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()

    from device_agent.measure.floor import floor_model_bytes
    from device_agent.contract.platform_facts import cpu_model_and_flags
    from host.store.artifacts import select_models
    from host.compress.observations import collect_observations
    from host.report.rows import params_text
    from host.policies.onnx_reader import spec_from_onnx
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    workspace = Workspace.resolve(args.home)
    with ResultsDB(workspace.db_path) as db:
        base = next((m for m in select_models(db, [args.baseline]) if m.method == "baseline"), None)
        if base is None:
            raise SystemExit(f"no baseline matches {args.baseline!r}")
        variants = db.variants_of(base.sha256)
    base_bytes = base.path.read_bytes()
    spec, manifest = spec_from_onnx(base_bytes)
    episodes = max(1, args.calls // 1000 + 1)
    obs = collect_observations(base_bytes, manifest.env_id, episodes, seed=500_000).obs[: args.calls]

    candidates: dict[str, tuple[str, Callable[[np.ndarray], object]]] = {
        "ort floor (trivial graph)": ("floor", ort_call(floor_model_bytes(spec.obs_dim, spec.act_dim))),
        "numpy forward (baseline weights)": ("numpy", numpy_call(spec)),
        base.name: ("baseline", ort_call(base_bytes)),
    }
    for v in variants:
        params = params_text(v.method_params)
        candidates[v.name] = (f"{v.method} ({params})" if params else v.method, ort_call(v.path.read_bytes()))

    samples: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, (_, call) in candidates.items():
            samples[name].append(time_calls(call, obs))
    stats = {
        name: (float(np.percentile(np.concatenate(s), 50)), float(np.percentile(np.concatenate(s), 99)))
        for name, s in samples.items()
    }
    base_p50 = stats[base.name][0]
    cpu, flags = cpu_model_and_flags()
    lines = [
        f"batch-1 latency, {args.calls} real {manifest.env_id} observations x {args.rounds} rounds, 1 thread; {cpu} ({' '.join(flags)})",
        "",
        "| model | method | p50 µs | p99 µs | p50 / fp32 baseline |",
        "|---|---|---|---|---|",
    ]
    for name, (label, _) in candidates.items():
        p50, p99 = stats[name]
        lines.append(f"| {name} | {label} | {p50 / 1e3:.1f} | {p99 / 1e3:.1f} | {p50 / base_p50:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")
    floor_p50 = stats["ort floor (trivial graph)"][0]
    fastest = min((s[0], n) for n, s in stats.items() if candidates[n][0] not in ("floor", "numpy"))
    print(
        f"bench_variants: {len(variants)} variants of {base.name}; fp32 p50 {base_p50 / 1e3:.1f} µs, floor {floor_p50 / 1e3:.1f} µs "
        f"(floor/fp32 = {floor_p50 / base_p50:.2f}), numpy/fp32 = {stats['numpy forward (baseline weights)'][0] / base_p50:.2f}, "
        f"fastest variant {fastest[1]} at {fastest[0] / base_p50:.2f} x fp32"
    )


if __name__ == "__main__":
    main()
