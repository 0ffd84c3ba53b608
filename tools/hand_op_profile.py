"""A profile taken by hand, to check the report's why line against: ONNX Runtime's profiler on a plain session.

No drlc machinery: one session per model (1 intra-op thread, sequential), profiling on, ``--runs``
back-to-back ``session.run`` calls on seeded random observations after ``--warmup`` unprofiled-in-the-sums
ones, then the ``*_kernel_time`` events of the last ``--runs`` ``model_run`` windows summed per op type.
Prints mean, median and 10 %-trimmed mean (scipy.stats.trim_mean) µs per call of each op type, and their sums.

    python tools/hand_op_profile.py MODEL.onnx [MODEL.onnx ...] [--runs 3000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.stats import trim_mean


def profile(path: Path, runs: int, warmup: int) -> dict[str, tuple[float, float, float]]:
    """{op type: (mean, median, trimmed mean µs per call)} over the last ``runs`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "hand")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        obs = np.random.default_rng(0).normal(size=(warmup + runs, 1, feed.shape[-1])).astype(np.float32)
        for x in obs:
            session.run(None, {feed.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    windows = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e["name"] == "model_run"
    )[-runs:]
    starts = np.array([w[0] for w in windows])
    per_call: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(runs))
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i >= 0 and e["ts"] <= windows[i][1]:
            per_call[e["args"]["op_name"]][i] += e["dur"]
    return {
        op: (float(v.mean()), float(np.median(v)), float(trim_mean(v, 0.1))) for op, v in per_call.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    for path in args.models:
        ops = profile(path, args.runs, args.warmup)
        print(f"{path.name} ({args.runs} runs, 1 thread):")
        rows = [*sorted(ops.items(), key=lambda kv: -kv[1][0])]
        rows.append(("kernels", tuple(sum(v[i] for v in ops.values()) for i in range(3))))
        for op, (mean, median, trimmed) in rows:
            print(f"  {op:22s} mean {mean:5.1f}  median {median:5.1f}  trimmed {trimmed:5.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
