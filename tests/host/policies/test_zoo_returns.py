"""End to end on real policies: every shared RL Zoo agent (../shared/zoo and ../shared/zoo-extra)
imported with no --env, deployed to the local agent, and its measured return compared with its
reference: the checkpoint's own deterministic ``predict`` in the env drlc chose, on the same seeds.

That comparison is what says drlc ran the policy right. The published figures were measured on
the -v3 envs (mujoco-py), which no longer build, and are not always reachable in the new envs
(the zoo's TQC Hopper published 3754 ± 8; its own predict gives about 3273 ± 499 in Hopper-v5).
For the ../shared/zoo agents, which do reach them, the reference is also checked against the
published figure (one published std or 2 %, whichever is wider): that catches a wrong env
choice, which would move drlc and the reference together.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import app
from host.policies.reference import ReferenceReturn, reference_path, within_noise
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from tests.conftest import ZOO_AGENTS, ZOO_EXTRA_AGENTS, ZOO_EXTRA_DIR

runner = CliRunner()
EPISODES = 10
#: What drlc must choose with no --env (the zoo-extra README's facts).
EXPECTED_ENV = {
    ("a2c", "Ant-v3"): "Ant-v4(use_contact_forces=True)",
    ("tqc", "Hopper-v3"): "Hopper-v5",
}


def _reference(artifact: Path) -> ReferenceReturn:
    ref = json.loads(reference_path(artifact).read_text())["reference"]
    return ReferenceReturn(ref["env"], tuple(ref["seeds"]), tuple(ref["returns"]), ref["library"])


@pytest.mark.zoo
def test_zoo_agents_reach_their_own_reference_on_the_local_agent(zoo_dir: Path, drlc_home: Path) -> None:
    published = {
        (r["algo"], r["env_id"]): r for r in csv.DictReader((zoo_dir / "reference_returns.csv").open())
    }
    agents = [(zoo_dir, a, f) for a, f in ZOO_AGENTS]
    agents += [(ZOO_EXTRA_DIR, a, f) for a, f in ZOO_EXTRA_AGENTS if ZOO_EXTRA_DIR is not None]
    for root, algo, folder in agents:
        result = runner.invoke(app, ["import", str(root / algo / folder), "--reference", str(EPISODES)])
        assert result.exit_code == 0, result.output
        assert "reference return:" in result.output and "published return:" in result.output
    result = runner.invoke(
        app,
        [
            "deploy",
            "--target",
            "local",
            "--episodes",
            str(EPISODES),
            "--rounds",
            "1",
            "--spoiled-retries",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    with ResultsDB(Workspace.resolve().db_path) as db:
        models = [(m, db.manifest(m.sha256)) for m in db.models()]
        returns = {j["model_sha256"]: db.episode_returns(j["job_id"]) for j in db.succeeded_jobs()}
    assert len(models) == len(agents)
    checked = 0
    for model, manifest in models:
        assert manifest is not None
        algo, trained = model.algo, manifest.source["trained_env_id"]
        reference = _reference(Path(model.path))
        measured = returns[model.sha256]
        assert len(measured) == EPISODES == len(reference.returns)
        assert reference.env == EXPECTED_ENV.get((algo, trained), trained.replace("-v3", "-v5"))
        ref = published[(algo, trained)]
        mean, std = float(ref["mean_return"]), float(ref["std_return"])
        assert within_noise(measured, reference), (
            f"{algo} {trained}: drlc measured {sum(measured) / len(measured):.1f} in {reference.env}, "
            f"its own predict {reference.describe()}; published {mean:.1f} ± {std:.1f}"
        )
        if (algo, trained) in set(ZOO_AGENTS):
            assert abs(reference.mean - mean) <= max(std, 0.02 * abs(mean)), (
                f"{algo} {trained}: reference {reference.describe()}, published {mean:.1f} ± {std:.1f}"
            )
        checked += 1
    assert checked == len(agents)
