"""Train policies with `drlc-host train`, then check that their exported artifacts beat a random policy.

    python tools/train_vs_random.py --algo td3,ddpg --env Hopper-v5 --steps 100000 [--seed 0] [--workers 2]

Runs the real command (one run per algorithm, over the local process pool), then plays every new
artifact with ONNX Runtime and a uniform-random policy on the same seeded episodes (episode i reset
with seed 1 000 000 + i, as held-out as the compression checks) and prints one line per algorithm:
the artifact's mean return, the random policy's, their ratio and the training wall time. Exits 1 when
an artifact does not beat random by ``--margin`` times. Long runs: use ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPISODE_SEED = 1_000_000


def play(env_id: str, act, episodes: int) -> list[float]:
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EPISODE_SEED + i)
        env.action_space.seed(EPISODE_SEED + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(env, obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def onnx_policy(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def act(env, obs):
        return session.run(None, {name: np.asarray(obs, dtype=np.float32)[None]})[0][0]

    return act


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", default="td3,ddpg")
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="runs at once (local process pool)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy")
    parser.add_argument("--margin", type=float, default=3.0, help="required return ratio over random")
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "drlc-train-check")
    parser.add_argument("--skip-train", action="store_true", help="only evaluate what --home holds")
    args = parser.parse_args()

    home = args.home.resolve()
    command = [
        str(Path(sys.executable).with_name("drlc-host")),
        "train",
        "--algo",
        args.algo,
        "--env",
        args.env,
        "--steps",
        str(args.steps),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--home",
        str(home),
    ]
    started = time.perf_counter()
    if not args.skip_train:
        print("$", " ".join(command), flush=True)
        code = subprocess.call(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if code != 0:
            return code
    total_s = time.perf_counter() - started

    from host.store.results_db import ResultsDB
    from host.training.records import training_runs

    with ResultsDB(home / "results.sqlite") as db:
        runs = [
            r
            for r in training_runs(db)
            if r["env_id"] == args.env and r["seed"] == args.seed and r["algo"] in args.algo.split(",")
        ]
        paths = {r["run_id"]: db.model(r["model_sha256"]).path for r in runs}

    random_returns = play(args.env, lambda env, obs: env.action_space.sample(), args.episodes)
    random_mean = float(np.mean(random_returns))
    print(
        f"random policy on {args.env}: {random_mean:.1f} ± {np.std(random_returns):.1f} ({args.episodes} episodes)"
    )
    ok = True
    summary = []
    for r in runs:
        returns = play(args.env, onnx_policy(paths[r["run_id"]]), args.episodes)
        mean = float(np.mean(returns))
        ratio = mean / random_mean if random_mean > 0 else float("inf")
        ok &= ratio >= args.margin
        line = {
            "algo": r["algo"],
            "env_id": r["env_id"],
            "steps": r["steps_done"],
            "onnx_return_mean": round(mean, 1),
            "onnx_return_std": round(float(np.std(returns)), 1),
            "sb3_final_eval_mean": round(r["final_return_mean"], 1),
            "random_return_mean": round(random_mean, 1),
            "ratio_over_random": round(ratio, 1),
            "train_wall_s": round(r["wall_s"]),
            "train_steps_per_s": round(r["train_steps_per_s"], 1),
            "model_sha256": r["model_sha256"][:12],
        }
        summary.append(line)
        print(
            f"{r['algo']} {r['env_id']} {r['steps_done']:,} steps: artifact return {mean:.1f} ± {np.std(returns):.1f} "
            f"vs random {random_mean:.1f} = {ratio:.1f}x; trained in {r['wall_s']:.0f} s "
            f"({r['train_steps_per_s']:.0f} steps/s); {'OK' if ratio >= args.margin else 'BELOW MARGIN'}"
        )
    print(f"wall time of the whole command: {total_s:.0f} s")
    (home / "train_vs_random.json").write_text(json.dumps(summary, indent=2))
    return 0 if ok and runs else 1


if __name__ == "__main__":
    sys.exit(main())
