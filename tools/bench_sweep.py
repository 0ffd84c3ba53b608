"""Benchmark: a whole sweep profiled on the local target, against the bare env + inference time of its steps.

The sweep is the study's grid for one HalfCheetah-v5 SAC policy: the baseline, 3 int8 variants
(PTDQ, PTSQ, QAT, all-int8) and 28 pruned ones (L1 and L2 at 5 %..70 %), 32 models, 10 episodes
each. The policy is the shared RL Zoo's SAC HalfCheetah (real episode lengths and actions), or a
random 256-256 actor when the zoo is absent. The sweep is made once and kept in ``--home``
(default ``.drlc-bench/``), so later runs skip it.

Each round measures, back to back (the order rotates between rounds):

- bare: for every model, a fresh ``session.run`` + ``env.step`` loop over the same 10 seeded
  episodes, timed around the episodes alone (no session or env creation): the floor;
- ``deploy --target local --workers 1 --force``: the real path, agent start-up, 32 jobs each in
  fresh worker processes, every episode alone and timed, results stored in SQLite;
- the same with ``--workers 2``: returns in two worker processes at once, latency measured alone.

Goals: workers-1 time <= 1.3 x bare; workers-2 time <= 0.6 x workers-1 time.

    python tools/bench_sweep.py [--rounds 3] [--home .drlc-bench] [--random]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

ZOO_POLICY = ROOT.parent / "shared" / "zoo" / "sac" / "HalfCheetah-v3"
ENV_ID = "HalfCheetah-v5"


def cli(*args: str) -> str:
    """Run drlc-host in a child process (it imports torch; this process does not need it)."""
    done = subprocess.run(
        [sys.executable, "-m", "host.cli.main", *args], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"drlc-host {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_sweep(home: Path, use_random: bool) -> tuple[list, str]:
    """The baseline and its 31 variants, made once; returns (models, where the baseline came from)."""
    from host.store.artifacts import select_models, store_artifact
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    workspace = Workspace.resolve(home)
    with ResultsDB(workspace.db_path) as db:
        bases = [m for m in db.models() if m.method == "baseline"]
    if not bases:
        if ZOO_POLICY.is_dir() and not use_random:
            cli("import", str(ZOO_POLICY), "--env", ENV_ID, "--home", str(home))
        else:
            from host.policies.random_policies import random_policy

            data, _, manifest = random_policy(ENV_ID, hidden=(256, 256), name="random-256-256")
            with ResultsDB(workspace.db_path) as db:
                store_artifact(workspace, db, data, manifest)
        with ResultsDB(workspace.db_path) as db:
            bases = [m for m in db.models() if m.method == "baseline"]
    base = bases[0]
    print(f"sweep of {base.name} ({base.sha256[:12]}) in {home}: making any missing variants ...", flush=True)
    cli("compress", base.sha256[:12], "--sweep", "--no-fp32-first-layer-variants", "--home", str(home))
    with ResultsDB(workspace.db_path) as db:
        models = select_models(db, [f"sweep:{base.sha256[:12]}"])
    origin = "RL Zoo SAC HalfCheetah-v3, imported" if base.checkpoint is not None else base.name
    return models, origin


BURN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(8_000_000):\n    x += i\nprint(time.perf_counter() - t)"


def parallel_capacity() -> float:
    """CPUs' worth of work two CPU-bound processes get done at once here and now: 2.0 on two free cores,
    1.0 where the second core is taken (by other users, or a hypervisor that shares it). The workers-2 run
    can only be as fast as this allows, so it is measured in the same round."""

    def burn(n: int) -> float:
        procs = [
            subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        return max(float(p.communicate()[0]) for p in procs)

    alone = burn(1)
    together = burn(2)
    return 2 * alone / together


def bare_sweep(models: list, seeds: list[int]) -> tuple[float, int]:
    """Every model's episodes in a plain loop; only the episodes are timed. Returns (seconds, steps)."""
    import gymnasium as gym
    import numpy as np
    import onnxruntime as ort

    env = gym.make(ENV_ID)
    total, steps = 0.0, 0
    for model in models:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        run = session.run
        t0 = time.perf_counter()
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                action = run(None, {"obs": obs[None].astype(np.float32)})[0]
                obs, _, terminated, truncated, _ = env.step(action[0])
                done = terminated or truncated
                steps += 1
        total += time.perf_counter() - t0
    env.close()
    return total, steps


def deployed_sweep(models: list, home: Path, workers: int, n_episodes: int) -> tuple[float, int, float]:
    """``drlc-host deploy --target local --workers N --force`` on the sweep, timed from start to the last
    result stored. Returns (seconds, steps, seconds the workers spent in their jobs)."""
    import json

    from device_agent.contract.validity import ValidityRule
    from host.measure.deploy import DeployConfig, deploy
    from host.measure.profiles import find_profile, load_profile
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    workspace = Workspace.resolve(home)
    profile = load_profile(find_profile("local", None))
    # one round, validity rule off: this benchmark times the single pass (tools/bench_rounds.py times rounds)
    cfg = DeployConfig(
        n_episodes=n_episodes,
        force=True,
        quality_workers=workers,
        rounds=1,
        validity_rule=ValidityRule.never(),
    )
    with ResultsDB(workspace.db_path) as db:
        before = {row[0] for row in db.conn.execute("SELECT job_id FROM jobs")}
        t0 = time.perf_counter()
        outcome = deploy(models, profile, workspace, db, cfg)
        wall = time.perf_counter() - t0
        if outcome.failed:
            raise SystemExit(f"deploy with {workers} workers failed: {outcome.failed}")
        steps, worker_s = 0, 0.0
        for job_id, summary in db.conn.execute("SELECT job_id, summary FROM jobs WHERE state='succeeded'"):
            if job_id not in before:
                figures = json.loads(summary)
                steps += int(figures.get("total_steps", 0))
                worker_s += float(figures.get("wall_s", 0.0))
    return wall, steps, worker_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=ROOT / ".drlc-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument(
        "--random", action="store_true", help="a random 256-256 baseline instead of the zoo's"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from bench_common import BenchResult, finish, paired_ratio, spread

    models, origin = prepare_sweep(args.home.resolve(), args.random)
    counts: dict[str, int] = {}
    for m in models:
        counts[m.method] = counts.get(m.method, 0) + 1
    print(f"{len(models)} models: {counts}", flush=True)
    seeds = list(range(args.episodes))
    times: dict[str, list[float]] = {"bare": [], "w1": [], "w2": []}
    capacity: list[float] = []
    in_jobs: dict[str, list[float]] = {"w1": [], "w2": []}
    steps_seen: dict[str, set[int]] = {"bare": set(), "w1": set(), "w2": set()}
    for r in range(args.rounds):
        capacity.append(parallel_capacity())
        print(
            f"round {r}: two CPU-bound processes get {capacity[-1]:.2f} CPUs' worth of work done", flush=True
        )
        order = ["bare", "w1", "w2"]
        for side in order[r % 3 :] + order[: r % 3]:
            if side == "bare":
                seconds, steps = bare_sweep(models, seeds)
            else:
                seconds, steps, worker_s = deployed_sweep(
                    models, args.home.resolve(), int(side[1]), args.episodes
                )
                in_jobs[side].append(worker_s)
            times[side].append(seconds)
            steps_seen[side].add(steps)
            print(f"round {r}: {side:>4} {seconds:7.1f} s  ({steps} steps)", flush=True)
    if len(set().union(*steps_seen.values())) != 1:
        print(f"warning: the sides did not run the same steps: {steps_seen}")
    r1 = paired_ratio(times["w1"], times["bare"])
    r2 = paired_ratio(times["w2"], times["w1"])
    n = len(models)
    rows = [
        {
            "round": i,
            "bare s": f"{b:.1f}",
            "workers 1 s": f"{w1:.1f}",
            "workers 2 s": f"{w2:.1f}",
            "w1 / bare": f"{w1 / b:.2f}",
            "w2 / w1": f"{w2 / w1:.2f}",
            "w1 overhead per job s": f"{(w1 - b) / n:.2f}",
            "parallel capacity (CPUs)": f"{c:.2f}",
        }
        for i, (b, w1, w2, c) in enumerate(
            zip(times["bare"], times["w1"], times["w2"], capacity, strict=True)
        )
    ]
    for row in rows:
        print(row)
    steps = next(iter(steps_seen["bare"]))
    summary = (
        f"bench_sweep: {n} models ({origin}; {counts.get('baseline', 0)} baseline, "
        f"{sum(v for k, v in counts.items() if k in ('ptdq', 'ptsq', 'qat'))} int8, "
        f"{sum(v for k, v in counts.items() if k in ('l1', 'l2'))} pruned) x {args.episodes} episodes = {steps} steps, "
        f"{args.rounds} rounds; median bare {statistics.median(times['bare']):.1f} s, workers-1 "
        f"{statistics.median(times['w1']):.1f} s, workers-2 {statistics.median(times['w2']):.1f} s; median paired "
        f"ratio w1/bare = {r1:.2f} (goal <= 1.3; rounds {spread([t / b for t, b in zip(times['w1'], times['bare'], strict=True)])}), "
        f"w2/w1 = {r2:.2f} (goal <= 0.6; rounds {spread([t / b for t, b in zip(times['w2'], times['w1'], strict=True)])}; "
        f"two processes got {statistics.median(capacity):.2f} CPUs' worth of work here)"
    )
    notes = [
        f"time inside the measuring workers (job wall_s summed): workers-1 {statistics.median(in_jobs['w1']):.1f} s, "
        f"workers-2 {statistics.median(in_jobs['w2']):.1f} s"
    ]
    met = r1 <= 1.3 and r2 <= 0.6
    result = BenchResult("bench_sweep", summary, r1, "w1/bare <= 1.3; w2/w1 <= 0.6", met, rows, notes)
    result.headline = (
        f"w1/bare {r1:.2f}; w2/w1 {r2:.2f} (2 processes got {statistics.median(capacity):.2f} CPUs)"
    )
    finish(result, args.json)


if __name__ == "__main__":
    main()
