"""A profile taken by hand, to check the report's why line against: ONNX Runtime's profiler on a plain session.

No drlc machinery: one session per model (1 intra-op thread, sequential), profiling on, ``--runs``
back-to-back ``session.run`` calls on seeded random observations after ``--warmup`` unprofiled-in-the-sums
ones, then the ``*_kernel_time`` events of the last ``--runs`` ``model_run`` windows summed per op type.
Prints mean and median µs per call of each op type, and their sum.

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


def profile(path: Path, runs: int, warmup: int) -> dict[str, tuple[float, float]]:
    """{op type: (mean µs per call, median µs per call)} over the last ``runs`` calls."""
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
    return {op: (float(v.mean()), float(np.median(v))) for op, v in per_call.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    for path in args.models:
        ops = profile(path, args.runs, args.warmup)
        print(f"{path.name} ({args.runs} runs, 1 thread):")
        for op, (mean, median) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
            print(f"  {op:24s} mean {mean:6.1f} µs  median {median:6.1f} µs")
        total = sum(m for m, _ in ops.values()), sum(m for _, m in ops.values())
        print(f"  {'kernels':24s} mean {total[0]:6.1f} µs  median {total[1]:6.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
