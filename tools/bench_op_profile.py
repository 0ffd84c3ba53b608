"""Benchmark: does the operator profile phase change the timed figures? The same job with and without it.

A real agent on loopback runs jobs of one model in pairs, ``--pairs`` times: a plain job (A) and the same job
with ``op_profile_calls`` (B), the order alternating between pairs so drift hits both alike. Each job's timed
figure is its p50 inference latency (episodes timed in the measuring worker, as a deploy's round 0). The
profile runs after the timed phases in a worker of its own, so B / A should be 1 within noise.

Noise is shown the same way: the ratio of consecutive plain jobs (A_i+1 / A_i) is what two identical jobs
differ by on this machine. Reported: the median of the B / A ratios with its range, beside the median and range
of the A / A ratios, and the wall time each kind of job took (the profile phase does cost wall time).

    python tools/bench_op_profile.py [--pairs 6] [--model PATH.onnx] [--calls 1000] [--max-steps 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENV_ID = "HalfCheetah-v5"


def model_bytes(path: Path | None) -> tuple[bytes, str]:
    if path is not None:
        return path.read_bytes(), path.name
    from host.policies.random_policies import random_policy

    data, _, _ = random_policy(ENV_ID, hidden=(256, 256), name="random-256")
    return data, "a random 256x256 HalfCheetah MLP"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument(
        "--model", type=Path, default=None, help="an .onnx made by drlc (default: random MLP)"
    )
    parser.add_argument("--calls", type=int, default=1000, help="op_profile_calls of the profiled job")
    parser.add_argument("--max-steps", type=int, default=1000, help="steps of each job's one timed episode")
    args = parser.parse_args()

    from device_agent.contract.proto import agent_pb2 as pb
    from device_agent.contract.manifest import sha256_bytes
    from device_agent.service.server import create_server
    from host.measure.agent_client import AgentClient

    data, what = model_bytes(args.model)
    sha = sha256_bytes(data)
    p50: dict[str, list[float]] = {"plain": [], "profiled": []}
    wall: dict[str, list[float]] = {"plain": [], "profiled": []}
    with tempfile.TemporaryDirectory(prefix="drlc-bench-op-") as tmp:
        agent = create_server("127.0.0.1:0", Path(tmp))
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as client:
                client.wait_ready()
                model = Path(tmp) / "upload.onnx"
                model.write_bytes(data)
                client.upload(model, sha)
                for i in range(args.pairs):
                    order = ("plain", "profiled") if i % 2 == 0 else ("profiled", "plain")
                    for kind in order:
                        settings = pb.ProfileSettings(
                            n_episodes=1,
                            seed=7,
                            warmup_calls=100,
                            max_steps_per_episode=args.max_steps,
                            quality_workers=1,
                            idle_s=0,
                            inference_phase_s=0,
                            keep_latencies=False,
                        )
                        if kind == "profiled":
                            settings.op_profile_calls = args.calls
                        request = pb.ProfileRequest(
                            job_id=f"bench-{kind}-{i}", model_sha256=sha, env_id=ENV_ID, settings=settings
                        )
                        t0 = time.perf_counter()
                        summary = list(client.run_profile(request))[-1].summary
                        wall[kind].append(time.perf_counter() - t0)
                        p50[kind].append(summary.inference.p50_ns / 1e3)
                        if kind == "profiled" and summary.op_profile.error:
                            print(f"profile failed: {summary.op_profile.error}")
                            return 1
        finally:
            agent.stop(grace_s=0)

    ratios = [b / a for a, b in zip(p50["plain"], p50["profiled"], strict=True)]
    noise = [b / a for a, b in zip(p50["plain"], p50["plain"][1:], strict=False)]
    print(f"model: {what}; {args.pairs} pairs, {args.max_steps} timed in-loop calls per job")
    print(f"p50 µs, plain:    {', '.join(f'{v:.1f}' for v in p50['plain'])}")
    print(f"p50 µs, profiled: {', '.join(f'{v:.1f}' for v in p50['profiled'])}")
    print(
        f"profiled / plain p50: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}..{max(ratios):.3f})"
    )
    print(
        f"noise, plain / previous plain p50: median {statistics.median(noise):.3f} "
        f"(range {min(noise):.3f}..{max(noise):.3f})"
    )
    print(
        f"job wall s: plain {statistics.median(wall['plain']):.2f}, "
        f"profiled {statistics.median(wall['profiled']):.2f} (the profile phase's cost, outside every timed figure)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
