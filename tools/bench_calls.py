"""Micro-benchmark: what each piece of the measuring loop's per-step work costs, and each way of calling ORT.

Back-to-back costs (median of 7 repeats of timeit, ns per operation) of the pieces the loop does between
``env.step`` and the inference call, and of the ways to call ONNX Runtime on the same 256-256 actor:
``session.run`` with a fresh float32 copy, ``session.run`` on a preallocated input, the public
``run_with_iobinding`` on buffers bound once, and the C++ session's ``run_with_iobinding`` the agent
calls directly. These are the figures behind the loop's design (docs/performance.md); the ratios that
count are measured in the loop by bench_loop and bench_inference.

    python tools/bench_calls.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def cost_ns(stmt: str, env: dict, number: int) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=7)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import gymnasium as gym
    import numpy as np
    import onnxruntime as ort
    from bench_common import BenchResult, finish

    from device_agent.measure.session import bind_session, open_session
    from device_agent.contract.settings import MeasurementSettings
    from host.policies.random_policies import random_policy

    data, _, _ = random_policy("HalfCheetah-v5", hidden=(256, 256))
    session = open_session(data, MeasurementSettings(execution_providers=("CPUExecutionProvider",)))
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=0)
    buffer = np.zeros((1, 17), dtype=np.float32)
    bound, how = bind_session(session, buffer, (6,))
    action = np.zeros((1, 6), dtype=np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("obs", buffer)
    binding.bind_output("action", "cpu", 0, np.float32, [1, 6], action.ctypes.data)
    latencies: list[int] = []
    env_globals = {
        "np": np,
        "obs": obs,
        "buffer": buffer,
        "row": bound()[0],
        "clock": time.perf_counter_ns,
        "isfinite": math.isfinite,
        "record": latencies.append,
        "session": session,
        "binding": binding,
        "bound": bound,
        "feeds": {"obs": buffer},
        "outputs": ["action"],
        "ort": ort,
    }
    pieces = [
        ("clock read (perf_counter_ns)", "clock()", 200_000),
        (
            "timed pair stored (t0 = clock(); record(clock() - t0))",
            "t0 = clock(); record(clock() - t0)",
            200_000,
        ),
        ("observation into the float32 buffer (buffer[0] = obs)", "buffer[0] = obs", 200_000),
        ("finite check (isfinite(sum(row.tolist())))", "isfinite(sum(row.tolist()))", 200_000),
        ("finite check with numpy (np.isfinite(row).all())", "np.isfinite(row).all()", 200_000),
        (
            "session.run, fresh float32 copy",
            "session.run(None, {'obs': obs[None].astype(np.float32)})",
            5_000,
        ),
        ("session.run, preallocated input", "session.run(outputs, feeds)", 5_000),
        ("run_with_iobinding (public method)", "session.run_with_iobinding(binding)", 5_000),
        (f"the agent's call ({how}, C++ run_with_iobinding)", "bound()", 5_000),
    ]
    rows = []
    for name, stmt, number in pieces:
        figure = statistics.median(cost_ns(stmt, env_globals, number) for _ in range(3))
        rows.append({"operation": name, "ns": f"{figure:.0f}"})
        print(f"{name:60} {figure:9.0f} ns", flush=True)
    by_name = {r["operation"]: float(r["ns"]) for r in rows}
    agent = by_name[pieces[-1][0]]
    plain = by_name["session.run, preallocated input"]
    summary = (
        f"bench_calls: back-to-back, 256-256 actor: session.run {plain / 1e3:.1f} µs, the agent's call "
        f"{agent / 1e3:.1f} µs (ratio {agent / plain:.2f}); clock read {by_name[pieces[0][0]]:.0f} ns, "
        f"observation copy {by_name[pieces[2][0]]:.0f} ns, finite check {by_name[pieces[3][0]]:.0f} ns"
    )
    result = BenchResult("bench_calls", summary, agent / plain, "", None, rows)
    result.headline = f"agent's call {agent / 1e3:.1f} µs = {agent / plain:.2f} x session.run (back to back)"
    finish(result, args.json)


if __name__ == "__main__":
    main()
