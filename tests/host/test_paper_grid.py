"""docs/study/paper-grid.toml is a study the loader accepts and covers the paper's whole grid."""

from __future__ import annotations

import pytest

from host.study import load_study
from tests.conftest import ROOT, ZOO_DIR

ALGOS = ("trpo", "ppo", "ddpg", "td3", "sac")
ENVS = ("HalfCheetah", "HumanoidStandup", "Ant", "Humanoid", "Hopper")


@pytest.mark.zoo
def test_paper_grid_parses_and_covers_every_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    if ZOO_DIR is None:
        pytest.skip("needs the shared RL Zoo agents: ../shared/zoo or DRLC_ZOO_DIR")
    monkeypatch.setenv("DRLC_ZOO_DIR", str(ZOO_DIR))
    study = load_study(ROOT / "docs" / "study" / "paper-grid.toml")
    cells = {}
    for policy in study.policies:
        if policy.kind == "import":
            algo, folder = policy.label.split("/")
            cells[(algo, folder.split("-")[0])] = policy
        else:
            assert policy.kind == "train" and policy.steps is None  # the zoo's full budget
            cells[(policy.algo, policy.env_id.split("-")[0])] = policy  # type: ignore[union-attr]
    assert set(cells) == {(a, e) for a in ALGOS for e in ENVS}
    assert len(study.policies) == len(ALGOS) * len(ENVS)
    imported = sorted(k for k, p in cells.items() if p.kind == "import")
    assert imported == [
        ("ppo", "HalfCheetah"),
        ("ppo", "Hopper"),
        ("sac", "HalfCheetah"),
        ("sac", "Hopper"),
        ("trpo", "HalfCheetah"),
    ]
