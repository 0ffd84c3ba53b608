"""Benchmark: what the measurement protocol's rounds cost, against today's single pass, on the same models.

Each repeat deploys the same models to the local target twice, back to back (the order alternates between
repeats), both with ``--force`` so nothing is skipped:

- single pass: ``rounds = 1``, one job per model (the episodes, latency from them or the latency phase);
- protocol: ``rounds = N`` (default: the deploy default), round 0 as above, then N - 1 latency-only jobs
  per model, models shuffled per round.

The validity rule is switched off for both (a busy machine would otherwise add re-runs to the protocol
side only; the protocol's retries are a property of the device, not of the rounds). Goal: protocol time
<= 1.5 x single pass, as the median of the per-repeat ratios.

The models are the study's sweep of one HalfCheetah-v5 SAC policy (the shared RL Zoo's, 32 models, made
once in ``--home`` as tools/bench_sweep.py does), or ``--synthetic K`` random HalfCheetah policies of
different widths (no torch needed, for a quick run).

    python tools/bench_rounds.py [--repeats 2] [--rounds 5] [--synthetic 6] [--limit 35]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

ENV_ID = "HalfCheetah-v5"


def synthetic_models(home: Path, k: int) -> tuple[list, str]:
    """``k`` random tanh MLPs for HalfCheetah, widths 64..256: a sweep's spread of sizes without torch."""
    from host.store.artifacts import store_artifact
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace
    from host.policies.random_policies import random_policy

    workspace = Workspace.resolve(home)
    models = []
    with ResultsDB(workspace.db_path) as db:
        for i in range(k):
            width = 64 + (192 * i) // max(k - 1, 1)
            data, _, manifest = random_policy(
                ENV_ID, hidden=(width, width), seed=i, name=f"random-{width}-{i}"
            )
            models.append(store_artifact(workspace, db, data, manifest))
    return models, f"{k} random HalfCheetah MLPs (64..256 wide)"


def timed_deploy(
    models: list,
    home: Path,
    rounds: int,
    n_episodes: int,
    later_rounds: str | None = None,
    max_rounds: int = 0,
) -> tuple[float, float, dict[str, float]]:
    """One forced deploy; returns (wall seconds, wall seconds of its round 0, seconds the measuring workers
    spent per kind of job). Round 0 ends with the last progress report of a round-0 job (every model runs
    round 0 before any runs round 1). ``max_rounds``: the unsettled variants' extra rounds, as the CLI runs
    them (their cost is part of the protocol's)."""
    from device_agent.contract.validity import ValidityRule
    from host.measure.deploy import DeployConfig, deploy
    from host.measure.profiles import find_profile, load_profile
    from host.report.stats import session_unsettled
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    workspace = Workspace.resolve(home)
    profile = load_profile(find_profile("local", None))
    cfg = DeployConfig(
        n_episodes=n_episodes,
        force=True,
        rounds=rounds,
        max_rounds=max_rounds,
        validity_rule=ValidityRule.never(),
    )
    if later_rounds is not None:
        cfg = dataclasses.replace(cfg, later_rounds=later_rounds)
    round0_end = [0.0]

    def progress(_model: object, done: int, _total: int) -> None:
        if done <= n_episodes:
            round0_end[0] = time.perf_counter()

    with ResultsDB(workspace.db_path) as db:
        t0 = time.perf_counter()
        outcome = deploy(
            models, profile, workspace, db, cfg, progress, unsettled=lambda sid: session_unsettled(db, sid)
        )
        wall = time.perf_counter() - t0
        round0 = round0_end[0] - t0
        if outcome.failed:
            raise SystemExit(f"deploy with {rounds} rounds failed: {outcome.failed}")
        in_jobs = {"round 0": 0.0, "later rounds": 0.0, "later jobs": 0.0}
        rows = db.conn.execute(
            "SELECT round, summary FROM jobs WHERE session_id=? AND state='succeeded'", (outcome.session_id,)
        )
        for r, summary in rows:
            in_jobs["round 0" if not r else "later rounds"] += float(json.loads(summary).get("wall_s", 0.0))
            in_jobs["later jobs"] += 1 if r else 0
    return wall, round0, in_jobs


def main() -> None:
    from host.measure.protocol import MAX_ROUNDS_DEFAULT, ROUNDS_DEFAULT

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=ROOT / ".drlc-bench")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=MAX_ROUNDS_DEFAULT,
        help="unsettled variants' rounds in all (0: off)",
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--synthetic", type=int, default=0, help="K random policies instead of the zoo sweep")
    parser.add_argument("--limit", type=int, default=0, help="only the first N models of the sweep")
    parser.add_argument("--random", action="store_true", help="the sweep of a random 256-256 baseline")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--later-rounds",
        default=None,
        help="which models the later rounds time (default: the deploy's default)",
    )
    args = parser.parse_args()

    from bench_common import BenchResult, finish, paired_ratio, spread

    home = args.home.resolve()
    if args.synthetic:
        home = home / "synthetic"
        models, origin = synthetic_models(home, args.synthetic)
    else:
        from bench_sweep import prepare_sweep

        models, origin = prepare_sweep(home, args.random)
    if args.limit:
        models = models[: args.limit]
    print(
        f"{len(models)} models ({origin}); rounds {args.rounds} (unsettled: up to {args.max_rounds}); "
        f"{args.episodes} episodes",
        flush=True,
    )
    times: dict[str, list[float]] = {"single": [], "protocol": []}
    later_s: list[float] = []
    per_job: list[float] = []
    within: list[float] = []
    for rep in range(args.repeats):
        sides = ["single", "protocol"] if rep % 2 == 0 else ["protocol", "single"]
        for side in sides:
            wall, round0, in_jobs = timed_deploy(
                models,
                home,
                1 if side == "single" else args.rounds,
                args.episodes,
                args.later_rounds,
                args.max_rounds,
            )
            times[side].append(wall)
            if side == "protocol":
                later_s.append(in_jobs["later rounds"])
                per_job.append(in_jobs["later rounds"] / max(in_jobs["later jobs"], 1))
                within.append(wall / round0)
            print(
                f"repeat {rep}: {side:>8} {wall:7.1f} s (inside the workers: round 0 {in_jobs['round 0']:.1f} s, "
                f"later rounds {in_jobs['later rounds']:.1f} s)",
                flush=True,
            )
    ratio = paired_ratio(times["protocol"], times["single"])
    # per job actually run: the later rounds time only the candidates, and the unsettled get more
    per_round_job = statistics.median(per_job)
    rows = [
        {"repeat": i, "single s": f"{s:.1f}", "protocol s": f"{p:.1f}", "protocol / single": f"{p / s:.2f}"}
        for i, (s, p) in enumerate(zip(times["single"], times["protocol"], strict=True))
    ]
    summary = (
        f"bench_rounds: {len(models)} models ({origin}) x {args.episodes} episodes; single pass median "
        f"{statistics.median(times['single']):.1f} s, {args.rounds} rounds median "
        f"{statistics.median(times['protocol']):.1f} s; median paired ratio protocol/single = {ratio:.2f} "
        f"(goal <= 1.5; repeats {spread([p / s for p, s in zip(times['protocol'], times['single'], strict=True)])}); "
        f"a latency-only round's job spends {per_round_job:.2f} s in its worker; within each protocol run, "
        f"whole / its round 0 = {statistics.median(within):.2f} (repeats {spread(within)}: the same ratio, "
        "both parts taken minutes apart instead of in separate runs)"
    )
    result = BenchResult("bench_rounds", summary, ratio, "<= 1.5", ratio <= 1.5, rows)
    finish(result, args.json)


if __name__ == "__main__":
    main()
