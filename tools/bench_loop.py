"""Benchmark: the agent's in-the-loop episode speed against a bare env.step + session.run loop.

Both run the same ONNX model, the same env and the same seeded episodes in the same run,
interleaved round by round so machine noise hits both alike. The agent side is the real
thing: a gRPC server on loopback, a forked worker, the measuring loop with its timers (every
episode alone, quality_workers = 1); its speed is the episode steps divided by the episode wall
times the agent reports (env.reset included, as in the bare loop).

Two bare loops run beside it: the plain one the goal is set against (``session.run`` on a fresh
float32 copy of the observation, as most RL code calls it) and one that calls the model exactly
as the agent does (IO binding on preallocated buffers) but without timers or bookkeeping: the
agent / bound ratio is what measuring itself costs.

    python tools/bench_loop.py                      # random 256-256 actor on HalfCheetah-v5
    python tools/bench_loop.py --model m.onnx       # any drlc artifact

Prints a table and one summary line: ``bench_loop: ... ratio agent/bare = 1.05 (goal >= 0.95)``.
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
sys.path.insert(0, str(ROOT / "tools"))


def bare_loop(model_path: Path, env_id: str, seeds: list[int], bound: bool) -> tuple[int, float]:
    """reset, then inference and env.step until the episode ends; nothing else. Wall time includes reset."""
    import gymnasium as gym
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    env = gym.make(env_id)
    if bound:
        from device_agent.measure.session import bind_session

        buffer = np.zeros((1, *env.observation_space.shape), dtype=np.float32)
        infer, _ = bind_session(session, buffer, env.action_space.shape)
    steps, wall = 0, 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            if bound:
                buffer[0] = obs
                action = infer()
            else:
                action = session.run(None, {"obs": obs[None].astype(np.float32)})[0]
            obs, _, terminated, truncated, _ = env.step(action[0])
            done = terminated or truncated
            steps += 1
        wall += time.perf_counter() - t0
    env.close()
    return steps, wall


def agent_loop(client, sha: str, seeds: list[int], job_id: str) -> tuple[int, float]:
    from device_agent.contract.proto import agent_pb2 as pb

    request = pb.ProfileRequest(
        job_id=job_id,
        model_sha256=sha,
        settings=pb.ProfileSettings(
            n_episodes=len(seeds),
            seed=seeds[0],
            warmup_calls=100,
            intra_op_threads=1,
            keep_latencies=True,
            quality_workers=1,
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
    parser.add_argument("--episodes", type=int, default=2, help="episodes per round and side")
    parser.add_argument("--rounds", type=int, default=15, help="short rounds pair the sides closely in time")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here (bench_all.py)")
    args = parser.parse_args()

    from bench_common import BenchResult, finish, paired_ratio, spread

    from device_agent.contract.manifest import sha256_file
    from device_agent.service.server import create_server
    from host.measure.agent_client import AgentClient

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from host.policies.random_policies import random_policy

            data, _, _ = random_policy(args.env, hidden=(256, 256))
            args.model = Path(tmp) / "policy.onnx"
            args.model.write_bytes(data)
        sha = sha256_file(args.model)
        agent = create_server("127.0.0.1:0", Path(tmp) / "agent")
        rates: dict[str, list[float]] = {"bare": [], "bound": [], "agent": []}
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as client:
                client.wait_ready()
                client.upload(args.model, sha)
                for r in range(args.rounds):
                    seeds = list(range(r * args.episodes, (r + 1) * args.episodes))
                    sides = ["bare", "bound", "agent"]
                    for side in sides[r % 3 :] + sides[: r % 3]:  # rotate who goes first
                        if side == "agent":
                            steps, wall = agent_loop(client, sha, seeds, f"bench-{r}")
                        else:
                            steps, wall = bare_loop(args.model, args.env, seeds, bound=side == "bound")
                        rates[side].append(steps / wall)
        finally:
            agent.stop(grace_s=0)
    ratio = paired_ratio(rates["agent"], rates["bare"])
    cost = paired_ratio(rates["agent"], rates["bound"])
    rows = [
        {
            "round": i,
            "bare steps/s": f"{b:.0f}",
            "bound steps/s": f"{o:.0f}",
            "agent steps/s": f"{a:.0f}",
            "agent/bare": f"{a / b:.3f}",
            "agent/bound": f"{a / o:.3f}",
        }
        for i, (b, o, a) in enumerate(zip(rates["bare"], rates["bound"], rates["agent"], strict=True))
    ]
    print(f"{'round':>5} {'bare':>8} {'bound':>8} {'agent':>8}   steps/s")
    for row in rows:
        print(
            f"{row['round']:>5} {row['bare steps/s']:>8} {row['bound steps/s']:>8} {row['agent steps/s']:>8}"
        )
    summary = (
        f"bench_loop: {args.env}, {args.episodes} episodes x {args.rounds} rounds, median agent "
        f"{statistics.median(rates['agent']):.0f} steps/s, bare {statistics.median(rates['bare']):.0f}, "
        f"bound-bare {statistics.median(rates['bound']):.0f}; median paired ratio agent/bare = {ratio:.3f} "
        f"(goal >= 0.95; rounds {spread([r['agent/bare'] and float(r['agent/bare']) for r in rows])}), "
        f"agent/bound-bare = {cost:.3f} (what the timers and bookkeeping cost)"
    )
    finish(BenchResult("bench_loop", summary, ratio, ">= 0.95", ratio >= 0.95, rows), args.json)


if __name__ == "__main__":
    main()
