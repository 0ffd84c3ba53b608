"""docs/study/paper-grid.toml is a study the loader accepts and covers the paper's whole grid."""

from __future__ import annotations

import pytest

from host.study.file import load_study
from host.study.plan import train_budget
from host.study.recipes import baseline_recipe, train_config
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


@pytest.mark.zoo
def test_study_entries_take_env_options_and_key_them(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    if ZOO_DIR is None:
        pytest.skip("needs the shared RL Zoo agents: ../shared/zoo or DRLC_ZOO_DIR")
    monkeypatch.setenv("DRLC_ZOO_DIR", str(ZOO_DIR))
    study_file = tmp_path / "s.toml"
    study_file.write_text(
        'name = "s"\n'
        '[[policy]]\nimport = "zoo:ppo/Hopper-v3"\n'
        '[[policy]]\nimport = "zoo:ppo/Hopper-v3"\nenv_options = {reset_noise_scale = 0.01}\n'
        '[[policy]]\ntrain = "ppo"\nenv = "Ant-v4"\nenv_options = {use_contact_forces = true}\n'
    )
    plain, varied, trained = load_study(study_file).policies
    assert varied.env_options == {"reset_noise_scale": 0.01} and plain.env_options == {}
    assert baseline_recipe(plain) != baseline_recipe(varied)

    assert train_config(trained).env_kwargs == {"use_contact_forces": True}


@pytest.mark.zoo
def test_the_dry_run_counts_each_training_cells_own_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zoo's n_timesteps for the env (PPO Humanoid 1e7, TD3 Humanoid 2e6), not 1e6 for every cell."""
    if ZOO_DIR is None:
        pytest.skip("needs the shared RL Zoo agents: ../shared/zoo or DRLC_ZOO_DIR")
    monkeypatch.setenv("DRLC_ZOO_DIR", str(ZOO_DIR))
    study = load_study(ROOT / "docs" / "study" / "paper-grid.toml")
    budgets = {(p.algo, p.env_id): train_budget(p) for p in study.policies if p.kind == "train"}
    assert budgets[("ppo", "Humanoid-v5")] == 10_000_000
    assert budgets[("td3", "Humanoid-v5")] == 2_000_000
    assert budgets[("trpo", "Hopper-v5")] == 1_000_000


def test_the_trained_grid_cells_are_a_study_of_registered_baselines_of_grid_cells() -> None:
    """docs/study/paper-grid-ran.toml measures the grid cells trained on this host: each entry names a
    registered baseline (``model =``) of a (algorithm, env) cell of the paper's grid, each cell at most once."""
    study = load_study(ROOT / "docs" / "study" / "paper-grid-ran.toml")
    assert study.policies and all(p.kind == "model" for p in study.policies)
    cells = [tuple(p.selector.split("-")[:2]) for p in study.policies]  # type: ignore[union-attr]
    assert len(set(cells)) == len(cells)
    for algo, env in cells:
        assert algo in ALGOS and env in ENVS, (algo, env)
