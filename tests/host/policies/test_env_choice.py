"""Which env a checkpoint runs in, with which options and observation wrappers, and the whole path
from a zoo-style folder to a measured return that agrees with the checkpoint's own predict.

The zoo-style folder is made here: a PPO trained briefly inside sb3_contrib's TimeFeatureWrapper
under VecNormalize, with env options, saved in the RL Zoo layout (config.yml's env_wrapper,
env_kwargs.yml) under a -v3 name Gymnasium can no longer build.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from sb3_contrib.common.wrappers import TimeFeatureWrapper
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from typer.testing import CliRunner

from device_agent.contract.manifest import ObsWrapper
from host.cli.main import app
from host.errors import CheckpointError, SpaceMismatchError, UnsupportedPolicyError
from host.policies.env_choice import SpaceInfo, choose_env
from host.policies.env_setup import parse_env_options, wrappers_from_zoo
from host.policies.reference import ReferenceReturn, within_noise
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace

runner = CliRunner()


def box(*shape: int, bound: float | None = None) -> SpaceInfo:
    low = np.full(shape, -bound, np.float32) if bound is not None else None
    high = np.full(shape, bound, np.float32) if bound is not None else None
    return SpaceInfo("Box", shape, low, high)


def test_old_humanoid_runs_in_the_newest_version_that_fits() -> None:
    choice = choose_env("humanoid.zip", box(376), box(17, bound=0.4), trained_env_id="Humanoid-v3")
    assert choice.spaces.env_id == "Humanoid-v4" and dict(choice.spaces.setup.env_kwargs) == {}
    assert "trained on Humanoid-v3, which cannot be built here; it runs in Humanoid-v4" in choice.notes[0]
    assert "Humanoid-v5 has observation (348,)" in choice.notes[1]


def test_old_ant_gets_its_contact_forces_back() -> None:
    choice = choose_env("ant.zip", box(111), box(8, bound=1.0), trained_env_id="Ant-v3")
    assert choice.spaces.describe() == "Ant-v4(use_contact_forces=True)"
    assert "use_contact_forces=True gives back the observation" in choice.notes[0]
    assert (
        "Ant-v5 has observation (105,)" in choice.notes[1]
        and "Ant-v4 has observation (27,)" in choice.notes[1]
    )
    # the user's --env keeps its version; the option that makes it fit is added and said
    explicit = choose_env("ant.zip", box(111), box(8), trained_env_id="Ant-v3", env_id="Ant-v4")
    assert explicit.spaces.describe() == "Ant-v4(use_contact_forces=True)"
    assert explicit.notes == (
        "running in Ant-v4(use_contact_forces=True): use_contact_forces=True gives back "
        "the observation older versions of Ant had",
    )
    with pytest.raises(SpaceMismatchError, match=r"expects observation shape \(111,\), but Ant-v5 has"):
        choose_env("ant.zip", box(111), box(8), trained_env_id="Ant-v3", env_id="Ant-v5")
    # a current checkpoint needs nothing
    plain = choose_env("ant.zip", box(105), box(8), trained_env_id="Ant-v5")
    assert (plain.spaces.describe(), plain.notes) == ("Ant-v5", ())


def test_time_feature_checkpoints_are_recognised_and_refused_without_the_wrapper() -> None:
    with pytest.raises(
        SpaceMismatchError, match=r"one entry more than Walker2d-v5's.*--obs-wrapper time_feature"
    ):
        choose_env("walker.zip", box(18), box(6), trained_env_id="Walker2d-v3")
    tf = (ObsWrapper(name="time_feature", params={"max_steps": 1000}),)
    choice = choose_env("walker.zip", box(18), box(6), trained_env_id="Walker2d-v3", obs_wrappers=tf)
    assert choice.spaces.describe() == "Walker2d-v5 + time_feature(max_steps=1000)"


def test_nothing_fits_names_every_candidate_and_what_to_pass() -> None:
    with pytest.raises(SpaceMismatchError) as err:
        choose_env("odd.zip", box(5), box(3), trained_env_id="Hopper-v3")
    message = str(err.value)
    assert "odd.zip expects observation (5,), action (3,) and no env fits it" in message
    assert "Hopper-v5 has observation (11,)" in message and "Hopper-v4 has observation (11,)" in message
    assert message.endswith("pass --env ID (and --env-option KEY=VALUE) for the env it was trained on")
    with pytest.raises(CheckpointError, match="cannot tell which env"):
        choose_env("odd.zip", box(5), box(3), trained_env_id=None)


def test_env_options_and_zoo_wrappers_are_parsed() -> None:
    assert parse_env_options(
        ["use_contact_forces=true", "ctrl_cost_weight=0.1", "healthy_z_range=[0.2, 1.0]"]
    ) == {
        "use_contact_forces": True,
        "ctrl_cost_weight": 0.1,
        "healthy_z_range": [0.2, 1.0],
    }
    with pytest.raises(CheckpointError, match="not KEY=VALUE"):
        parse_env_options(["use_contact_forces"])
    path = "sb3_contrib.common.wrappers.TimeFeatureWrapper"
    assert wrappers_from_zoo(path, "Walker2d-v3") == (
        ObsWrapper(name="time_feature", params={"max_steps": 1000}),
    )
    assert wrappers_from_zoo([{path: {"test_mode": True}}], "Walker2d-v3")[0].params == {
        "max_steps": 1000,
        "test_mode": True,
    }
    with pytest.raises(
        UnsupportedPolicyError, match=r"rl_zoo3\.wrappers\.HistoryWrapper, which the device agent"
    ):
        wrappers_from_zoo([{"rl_zoo3.wrappers.HistoryWrapper": {"horizon": 2}}], "Walker2d-v3")


ENV_KWARGS = {"ctrl_cost_weight": 0.002}


@pytest.fixture(scope="module")
def time_feature_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO trained 512 steps inside TimeFeatureWrapper + VecNormalize, saved in the RL Zoo layout."""
    root = tmp_path_factory.mktemp("zoo") / "ppo" / "Walker2d-v3"
    (root / "Walker2d-v3").mkdir(parents=True)
    venv = VecNormalize(
        DummyVecEnv([lambda: TimeFeatureWrapper(gym.make("Walker2d-v5", **ENV_KWARGS))]), norm_reward=False
    )
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=256,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32]},
    )
    model.learn(512)
    model.save(root / "Walker2d-v3.zip")
    venv.save(root / "Walker2d-v3" / "vecnormalize.pkl")
    config = {
        "env_wrapper": "sb3_contrib.common.wrappers.TimeFeatureWrapper",
        "normalize": True,
        "policy": "MlpPolicy",
    }
    (root / "Walker2d-v3" / "config.yml").write_text(yaml.safe_dump(config))
    (root / "Walker2d-v3" / "env_kwargs.yml").write_text(yaml.safe_dump(ENV_KWARGS))
    return root


def test_a_time_feature_zoo_agent_imports_compresses_and_matches_its_reference(
    time_feature_zoo: Path, drlc_home: Path
) -> None:
    imported = runner.invoke(app, ["import", str(time_feature_zoo), "--reference", "4"])
    assert imported.exit_code == 0, imported.output
    assert "Walker2d-v5(ctrl_cost_weight=0.002) + time_feature(max_steps=1000)" in imported.output
    assert "trained inside sb3_contrib.common.wrappers.TimeFeatureWrapper" in imported.output
    with ResultsDB(Workspace.resolve().db_path) as db:
        (row,) = db.models()
        manifest = db.manifest(row.sha256)
    assert manifest is not None and manifest.observation_shape == [18]
    assert manifest.env_kwargs == ENV_KWARGS and manifest.obs_wrappers[0].name == "time_feature"
    reference_file = Path(row.path).with_name(Path(row.path).name + ".reference.json")
    assert reference_file.is_file()
    # calibration rollouts step the same env: PTSQ needs its observations to have 18 entries
    made = runner.invoke(app, ["compress", row.sha256[:12], "--method", "ptsq"])
    assert made.exit_code == 0, made.output
    # the baseline and its PTSQ variant both run on the agent, in the env their manifests name
    deployed = runner.invoke(app, ["deploy", "--target", "local", "--episodes", "4"])
    assert deployed.exit_code == 0, deployed.output

    ref = json.loads(reference_file.read_text())["reference"]
    reference = ReferenceReturn(ref["env"], tuple(ref["seeds"]), tuple(ref["returns"]), ref["library"])
    with ResultsDB(Workspace.resolve().db_path) as db:
        jobs = db.succeeded_jobs()
        measured = [db.episode_returns(j["job_id"]) for j in jobs if j["model_sha256"] == row.sha256]
        assert len(jobs) == 2 and len(db.models()) == 2
    assert len(measured) == 1 and len(measured[0]) == 4
    assert within_noise(measured[0], reference), (measured[0], reference.returns)
    # the report names the env as the device built it
    report = runner.invoke(app, ["report", "--format", "csv"])
    assert "Walker2d-v5(ctrl_cost_weight=0.002) + time_feature(max_steps=1000)" in report.output
    # and the comparison can fail: the same policy without its time feature sees other observations
    assert not within_noise([r + 10 * max(reference.std, 1.0) + 100 for r in measured[0]], reference)
