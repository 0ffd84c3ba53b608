"""Benchmark: the idle agent's memory, and a job worker's memory for each of the paper's envs.

Idle agent: ``python -m device_agent serve`` on loopback, resident memory after start-up and again
after one job, with its worker server (the forkserver that holds the workers' imports, started in the
background at start-up) counted apart.

Workers: for HalfCheetah, HumanoidStandup, Ant, Humanoid and Hopper (v5) a random 256-256 actor runs
a short job (1 episode of 200 steps); the agent reports the worker's RSS before and after loading the
model and its peak. The baseline, in the same run: a fresh Python process that does the same work
with nothing else (imports numpy, onnxruntime, gymnasium; builds the env; opens the session; steps
200 times) and reports its own peak RSS. The ratio worker peak / bare peak shows what the agent's
worker carries beyond the policy stack itself.

    python tools/bench_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

ENVS = ("HalfCheetah-v5", "HumanoidStandup-v5", "Ant-v5", "Humanoid-v5", "Hopper-v5")
STEPS = 200

BARE = """
import json, resource, sys
import numpy as np, onnxruntime as ort, gymnasium as gym, psutil
rss = lambda: psutil.Process().memory_info().rss
env = gym.make(sys.argv[2], max_episode_steps=int(sys.argv[3]))
before = rss()
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
after = rss()
obs, _ = env.reset(seed=0)
for _ in range(int(sys.argv[3])):
    action = session.run(None, {"obs": obs[None].astype(np.float32)})[0]
    obs, _, terminated, truncated, _ = env.step(action[0])
    if terminated or truncated:
        obs, _ = env.reset()
print(json.dumps({"before": before, "after": after, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import psutil
    from bench_common import BenchResult, finish

    from device_agent.contract.proto import agent_pb2 as pb
    from host.measure.agent_client import AgentClient
    from host.measure.local_agent import local_agent
    from host.policies.random_policies import random_policy

    rows = []
    ratios: list[float] = []
    peaks: list[int] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with local_agent(tmp / "agent") as agent, AgentClient(agent.address) as client:
            client.wait_ready()
            time.sleep(5.0)  # let the worker server finish its imports
            proc = psutil.Process(agent.process.pid)  # type: ignore[union-attr]

            def rss_tree() -> tuple[int, int]:
                children = [c for c in proc.children() if "forkserver" in " ".join(c.cmdline())]
                return proc.memory_info().rss, sum(c.memory_info().rss for c in children)

            idle_agent, idle_server = rss_tree()
            for env_id in ENVS:
                data, sha, _ = random_policy(env_id, hidden=(256, 256))
                path = tmp / f"{env_id}.onnx"
                path.write_bytes(data)
                client.upload(path, sha)
                request = pb.ProfileRequest(
                    job_id=f"mem-{env_id}",
                    model_sha256=sha,
                    settings=pb.ProfileSettings(
                        n_episodes=1, max_steps_per_episode=STEPS, warmup_calls=10, quality_workers=1
                    ),
                )
                events = list(client.run_profile(request))
                if not events[-1].HasField("summary"):
                    raise SystemExit(f"job on {env_id} failed: {events[-1]}")
                mem = events[-1].summary.memory
                bare = json.loads(
                    subprocess.run(
                        [sys.executable, "-c", BARE, str(path), env_id, str(STEPS)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                ratios.append(mem.peak_rss_bytes / bare["peak"])
                peaks.append(int(mem.peak_rss_bytes / 2**20))
                rows.append(
                    {
                        "env": env_id,
                        "worker before load MiB": mib(mem.rss_before_load_bytes),
                        "worker after load MiB": mib(mem.rss_after_load_bytes),
                        "worker peak MiB": mib(mem.peak_rss_bytes),
                        "bare process peak MiB": mib(bare["peak"]),
                        "worker / bare": f"{ratios[-1]:.2f}",
                    }
                )
                print(rows[-1], flush=True)
            after_agent, after_server = rss_tree()
    rows.append(
        {
            "env": "idle agent (after start-up / after the jobs)",
            "worker before load MiB": f"{mib(idle_agent)} / {mib(after_agent)}",
            "worker after load MiB": "",
            "worker peak MiB": "",
            "bare process peak MiB": f"worker server {mib(idle_server)} / {mib(after_server)}",
            "worker / bare": "",
        }
    )
    summary = (
        f"bench_memory: idle agent {mib(idle_agent)} MiB RSS (+ worker server {mib(idle_server)} MiB, its pages shared "
        f"with every worker); worker peak RSS "
        + ", ".join(f"{r['env'].split('-')[0]} {r['worker peak MiB']}" for r in rows[:-1])
        + f" MiB; worker peak / bare process peak = {min(ratios):.2f}..{max(ratios):.2f} (report only)"
    )
    result = BenchResult("bench_memory", summary, max(ratios), "", None, rows)
    result.headline = (
        f"idle agent {mib(idle_agent)} MiB; worker peak {min(peaks)}..{max(peaks)} MiB = "
        f"{min(ratios):.2f}..{max(ratios):.2f} x bare"
    )
    finish(result, args.json)


if __name__ == "__main__":
    main()
