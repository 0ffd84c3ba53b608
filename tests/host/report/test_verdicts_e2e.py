"""The verdicts on a real local agent: real gRPC, real MuJoCo, real ONNX Runtime workers, real SQLite.

What no simulation can show: that the protocol (paired rounds in one session, the noise threshold, Holm, the
validity rule) keeps a real machine's noise out of the verdicts. Nothing here asserts a duration: only what the
protocol decides. The sizes are the smallest that still mean something: a 256-wide random HalfCheetah actor
(the zoo's SAC is 256-256), episodes cut to a few dozen steps (the return verdict needs seeds, not length),
the default rounds (host.measure.protocol.ROUNDS_DEFAULT).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_agent.contract.validity import ValidityRule
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.decision import Change, Keep
from host.measure.deploy import DeployConfig, deploy
from host.measure.profiles import find_profile, load_profile
from host.report.rows import collect_rows
from host.report.stats import Comparison, compare_all
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

runner = CliRunner()
ENV_ID = "HalfCheetah-v5"
NOT_A_DIFFERENCE = (Change.within_noise, Change.undecided)


def baseline(workspace: Workspace, db: ResultsDB, seed: int = 0) -> ModelRow:
    data, _, manifest = random_policy(ENV_ID, hidden=(256, 256), seed=seed, name=f"random-256-{seed}")
    return store_artifact(workspace, db, data, manifest)


def compress(base: ModelRow, *args: str) -> ModelRow:
    """A real variant, made by the CLI (Torch-Pruning / ONNX Runtime quantisation), found by its name."""
    result = runner.invoke(app, ["compress", base.sha256[:12], *args])
    assert result.exit_code == 0, result.output
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        return max(db.variants_of(base.sha256), key=lambda m: m.path.stat().st_mtime_ns)


def session_verdicts(db: ResultsDB, session_id: str) -> dict[str, Comparison]:
    """label -> comparison of every variant measured in that session (the report's own code)."""
    return {c.label: c for c in compare_all(collect_rows(db, session_id)) if not c.is_baseline}


def run_session(models: list[ModelRow], cfg: DeployConfig) -> str:
    workspace = Workspace.resolve()
    profile = load_profile(find_profile("local", None))
    with ResultsDB(workspace.db_path) as db:
        outcome = deploy(models, profile, workspace, db, cfg)
    assert not outcome.failed, outcome.failed
    return outcome.session_id


# The validity rule off: every round is a sample, however busy this machine is (the rule spoils every round on a
# shared 2-core VM, and a test whose rounds are all left out would pass by saying "undecided"). What keeps a
# null variant from being called faster or slower is then the protocol's pairing, threshold and test alone.
CFG = DeployConfig(
    n_episodes=4,
    max_steps_per_episode=40,
    warmup_calls=50,
    force=True,
    round_latency_calls=300,
    validity_rule=ValidityRule.never(),
)


def test_a_near_null_variant_is_never_called_faster_or_slower(drlc_home: Path) -> None:
    """L2 pruning of one neuron per 256-wide layer (ratio 0.004): < 1 % fewer FLOPs. In each of three sessions
    its latency verdict is "within noise" or "undecided", never faster or slower; its return stays ~100 %."""
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        base = baseline(workspace, db)
    near_null = compress(base, "--method", "l2", "--ratio", "0.004")
    assert near_null.n_params < base.n_params  # one neuron per hidden layer is gone
    assert near_null.n_params > 0.98 * base.n_params
    assert near_null.name.endswith("-l2-0p4")  # not "-l2-00": a near-null ratio keeps its tenth
    seen = []
    for _ in range(3):
        session = run_session([base, near_null], CFG)
        with ResultsDB(workspace.db_path) as db:
            ((label, comparison),) = session_verdicts(db, session).items()
        assert label == "l2 0.4%"
        seen.append((comparison.latency.change, comparison.latency.why))
        # every later round timed the pair in one worker: the verdict rests on those rounds alone
        assert comparison.latency.n == CFG.rounds - 1, seen
        assert [r[1] for r in comparison.row.round_paired] == [base.sha256] * (CFG.rounds - 1)
        assert comparison.latency.change in NOT_A_DIFFERENCE, seen
        assert comparison.keep.verdict is not Keep.falls_short, comparison.keep.reason


def sweep(workspace: Workspace, base: ModelRow) -> list[ModelRow]:
    return [
        base,
        compress(base, "--method", "l2", "--ratio", "0.004"),
        compress(base, "--method", "l1", "--ratio", "0.3"),
        compress(base, "--method", "l2", "--ratio", "0.7"),
        compress(base, "--method", "ptdq"),
    ]


def agreement(first: dict[str, Comparison], second: dict[str, Comparison]) -> tuple[float, list[str]]:
    """Share of variants with the same (return, latency) verdict in both sessions, and any opposite verdicts."""
    assert first.keys() == second.keys()
    same = sum(
        (a.keep.verdict, a.latency.change) == (second[k].keep.verdict, second[k].latency.change)
        for k, a in first.items()
    )
    opposite = [
        k
        for k, a in first.items()
        if {a.latency.change, second[k].latency.change} == {Change.lower, Change.higher}
        or {a.keep.verdict, second[k].keep.verdict} == {Keep.keeps, Keep.falls_short}
    ]
    return same / len(first), opposite


def test_the_same_small_sweep_deployed_twice_never_gives_opposite_verdicts(drlc_home: Path) -> None:
    """Two sessions of a small sweep: seeded returns give identical return verdicts; latency verdicts are never
    opposite (faster in one, slower in the other)."""
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        base = baseline(workspace, db)
    models = sweep(workspace, base)
    sessions = [run_session(models, CFG) for _ in range(2)]
    with ResultsDB(workspace.db_path) as db:
        first, second = (session_verdicts(db, s) for s in sessions)
    share, opposite = agreement(first, second)
    assert opposite == []
    assert all(c.latency.n == CFG.rounds - 1 for c in [*first.values(), *second.values()])
    for label, a in first.items():
        assert a.keep.verdict is second[label].keep.verdict, label  # seeded MuJoCo: the same returns
        assert a.row.returns == second[label].row.returns, label
    # the near-null variant is never a difference in either session
    near_null = next(k for k, c in first.items() if c.row.method == "l2" and c.row.ratio < 0.01)
    assert first[near_null].latency.change in NOT_A_DIFFERENCE
    assert second[near_null].latency.change in NOT_A_DIFFERENCE
    print(f"agreement {share:.0%}")


@pytest.mark.slow
def test_the_same_sweep_deployed_twice_never_flips(drlc_home: Path) -> None:
    """The issue's criterion on a real sweep (both pruning methods at the study's ratios and the int8 methods),
    in the part that holds on any machine: two sessions never give opposite verdicts, and their return verdicts
    are identical. The share of identical (return, latency) verdicts is printed, not asserted: "undecided" in one
    session and "faster" in the other is what a noisy machine honestly gives (41.9 % identical on the shared
    2-core VM this was written on, with the validity rule off), and a threshold on it would test the machine.
    Minutes on 2 cores."""
    workspace = Workspace.resolve()
    with ResultsDB(workspace.db_path) as db:
        base = baseline(workspace, db)
    result = runner.invoke(app, ["compress", base.sha256[:12], "--sweep", "--no-fp32-first-layer-variants"])
    assert result.exit_code == 0, result.output
    with ResultsDB(workspace.db_path) as db:
        models = [base, *db.variants_of(base.sha256)]
    sessions = [run_session(models, CFG) for _ in range(2)]
    with ResultsDB(workspace.db_path) as db:
        first, second = (session_verdicts(db, s) for s in sessions)
    share, opposite = agreement(first, second)
    assert opposite == []
    assert all(a.keep.verdict is second[k].keep.verdict for k, a in first.items())
    print(f"agreement {share:.1%} of {len(first)} variants")
