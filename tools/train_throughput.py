"""Training throughput (environment steps per second) of each algorithm on this machine.

    python tools/train_throughput.py [--env Hopper-v5] [--algos trpo,ppo,ddpg,td3,sac] [--steps 4000]

Each algorithm trains in this process, one after another, with the RL Zoo's hyperparameters for the
env (one torch thread, as `drlc-host train` uses), except that off-policy algorithms start learning
after ``--warmup`` steps instead of the zoo's 10 000, so the measured stretch is learning, not random
exploration. Steps/s is measured from the end of the warm-up to the end of training, from the progress
reports; evaluation and export are not counted. Prints one line per algorithm and the load average,
since a shared machine slows every number down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from host.training.run import STUDY_ALGOS, TrainConfig, TrainProgress, make_plan, train

OFF_POLICY = ("ddpg", "td3", "sac", "tqc")


def measure(algo: str, env_id: str, steps: int, warmup: int, runs_dir: Path) -> tuple[float, float, str]:
    overrides = {"learning_starts": warmup} if algo in OFF_POLICY else {}
    cfg = TrainConfig(
        algo=algo,
        env_id=env_id,
        total_steps=warmup + steps,
        hyperparams=overrides,
        eval_every_steps=0,
        checkpoint_every_steps=0,
        final_eval_episodes=1,
    )
    plan = make_plan(cfg)
    marks: list[tuple[float, int]] = []

    def on_progress(p: TrainProgress) -> None:
        if p.phase == "train" and p.steps >= warmup:
            marks.append((time.perf_counter(), p.steps))

    started = time.perf_counter()
    result = train(cfg, runs_dir, on_progress)
    overall = result.steps_done / (time.perf_counter() - started)
    (t0, s0), (t1, s1) = marks[0], marks[-1]
    learning = (s1 - s0) / (t1 - t0) if t1 > t0 else float("nan")
    hp = plan.hyperparams.entry
    shape = f"n_envs={plan.hyperparams.n_envs} policy_kwargs={hp.get('policy_kwargs', 'default')}"
    return learning, overall, shape


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--algos", default=",".join(STUDY_ALGOS))
    parser.add_argument("--steps", type=int, default=4000, help="measured steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=2048, help="steps before measuring (a TRPO rollout)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos.split(","):
            learning, overall, shape = measure(algo, args.env, args.steps, args.warmup, Path(tmp))
            print(
                f"{algo:5s} {args.env}: {learning:7.0f} steps/s while learning "
                f"({overall:.0f} overall, incl. warm-up, final eval and export); {shape}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
