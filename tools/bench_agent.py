"""Benchmark: the agent's in-the-loop episode speed against a bare env.step + session.run loop.

Both run the same ONNX model, the same env and the same seeded episodes in the same run,
interleaved round by round so machine noise hits both alike. The agent side is the real
thing: a gRPC server on loopback, a spawned worker, the measuring loop with its timers;
its speed is the episode steps divided by the episode wall times the agent reports.

    python tools/bench_agent.py                      # random 256-256 actor on HalfCheetah-v5
    python tools/bench_agent.py --model m.onnx       # any drlc artifact

Prints a table and one summary line: ``bench_agent: ratio agent/bare = 0.97 (goal >= 0.95)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_loop(model_path: Path, env_id: str, seeds: list[int]) -> tuple[int, float]:
    """The floor: reset, then session.run and env.step until the episode ends. Nothing else."""
    import gymnasium as gym
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    env = gym.make(env_id)
    steps, wall = 0, 0.0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        t0 = time.perf_counter()
        while not done:
            action = session.run(None, {"obs": obs[None].astype(np.float32)})[0]
            obs, _, terminated, truncated, _ = env.step(action[0])
            done = terminated or truncated
            steps += 1
        wall += time.perf_counter() - t0
    env.close()
    return steps, wall


def agent_loop(client, sha: str, seeds: list[int], job_id: str) -> tuple[int, float]:
    from device_agent._proto import agent_pb2 as pb

    request = pb.ProfileRequest(
        job_id=job_id,
        model_sha256=sha,
        settings=pb.ProfileSettings(
            n_episodes=len(seeds), seed=seeds[0], warmup_calls=100, intra_op_threads=1, keep_latencies=True
        ),
    )
    episodes = [e.episode for e in client.run_profile(request) if e.HasField("episode")]
    if len(episodes) != len(seeds):
        raise SystemExit(f"agent job {job_id} did not finish: {client.get_job(job_id)}")
    return sum(e.length for e in episodes), sum(e.wall_s for e in episodes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a drlc .onnx artifact (default: random 256-256 actor)")
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from device_agent.manifest import sha256_file
    from device_agent.server import create_server
    from host.agent_client import AgentClient

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from tests.policies import random_policy

            data, _, _ = random_policy(args.env, hidden=(256, 256))
            args.model = Path(tmp) / "policy.onnx"
            args.model.write_bytes(data)
        sha = sha256_file(args.model)
        agent = create_server("127.0.0.1:0", Path(tmp) / "agent")
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as client:
                client.wait_ready()
                client.upload(args.model, sha)
                seeds = list(range(args.episodes))
                bare_rates, agent_rates = [], []
                for r in range(args.rounds):
                    steps, wall = bare_loop(args.model, args.env, seeds)
                    bare_rates.append(steps / wall)
                    steps, wall = agent_loop(client, sha, seeds, f"bench-{r}")
                    agent_rates.append(steps / wall)
        finally:
            agent.stop(grace_s=0)
    bare, inloop = statistics.median(bare_rates), statistics.median(agent_rates)
    # each round pairs the two sides back to back; the median of the paired ratios resists machine noise
    ratio = statistics.median(a / b for a, b in zip(agent_rates, bare_rates, strict=True))
    print(f"{'round':>5} {'bare steps/s':>13} {'agent steps/s':>14}")
    for i, (b, a) in enumerate(zip(bare_rates, agent_rates, strict=True)):
        print(f"{i:>5} {b:>13.0f} {a:>14.0f}")
    print(
        f"bench_agent: {args.env}, {args.episodes} episodes x {args.rounds} rounds, median bare {bare:.0f} steps/s, "
        f"agent {inloop:.0f} steps/s, median paired ratio agent/bare = {ratio:.3f} (goal >= 0.95)"
    )


if __name__ == "__main__":
    main()
