"""Hyperparameters from the RL Zoo's YAML: lookup order, the zoo's string syntax, refusals. No training."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import LinearSchedule

from host.training.hyperparams import (
    HyperparamError,
    eval_expression,
    load_zoo_file,
    lookup,
    nearest_version,
    parse_overrides,
    resolve,
)
from host.training.run import STUDY_ALGOS, STUDY_ENVS

# Where each study pair's hyperparameters come from with rl_zoo3 2.x: the zoo was tuned on the -v4
# MuJoCo envs (HumanoidStandup only for PPO, at -v2), so -v5 takes the nearest version.
EXPECTED_SOURCES = {
    **{(a, e): ("zoo-nearest", e.replace("-v5", "-v4")) for a in STUDY_ALGOS for e in STUDY_ENVS},
    ("ppo", "HumanoidStandup-v5"): ("zoo-nearest", "HumanoidStandup-v2"),
    **{(a, "HumanoidStandup-v5"): ("zoo-default", "default") for a in ("trpo", "ddpg", "td3", "sac")},
}


@pytest.mark.parametrize(("algo", "env_id"), sorted(EXPECTED_SOURCES))
def test_every_study_pair_resolves(algo: str, env_id: str) -> None:
    hp = resolve(algo, env_id)
    assert (hp.source.kind, hp.source.zoo_key) == EXPECTED_SOURCES[(algo, env_id)]
    assert hp.source.zoo_file == f"{algo}.yml" and hp.source.zoo_version
    assert hp.n_timesteps is not None and hp.n_timesteps >= 1_000_000
    assert hp.record()["source"]["kind"] == hp.source.kind
    if algo in ("td3", "ddpg"):
        assert hp.action_noise is not None and (hp.action_noise.kind, hp.action_noise.std) == ("normal", 0.1)


def test_zoo_extras_become_sb3_arguments() -> None:
    hp = resolve("ppo", "Hopper-v5")
    kwargs = hp.algo_kwargs
    assert kwargs["policy_kwargs"]["activation_fn"] is torch.nn.ReLU
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    assert not {"n_envs", "n_timesteps", "normalize", "policy"} & set(kwargs)
    assert hp.normalize and hp.normalize_kwargs == {"gamma": 0.999}  # the zoo discounts rewards with gamma

    td3 = resolve("td3", "Hopper-v5")
    assert td3.algo_kwargs["policy_kwargs"] == {"net_arch": [400, 300]}
    noise = td3.action_noise.build(3)
    assert isinstance(noise, NormalActionNoise) and noise._sigma.tolist() == [0.1, 0.1, 0.1]

    trpo = resolve("trpo", "HalfCheetah-v5")
    assert trpo.n_envs == 2 and trpo.algo_kwargs["target_kl"] == 0.04


def test_overrides_schedules_and_normalize() -> None:
    hp = resolve(
        "sac",
        "Hopper-v5",
        parse_overrides(
            [
                "learning_rate=lin_7.3e-4",
                'train_freq=[1, "episode"]',
                "normalize={'norm_obs': True, 'norm_reward': False}",
            ]
        ),
    )
    lr = hp.algo_kwargs["learning_rate"]
    assert isinstance(lr, LinearSchedule)
    assert lr(1.0) == pytest.approx(7.3e-4) and lr(0.5) == pytest.approx(3.65e-4) and lr(0.0) == 0.0
    assert hp.algo_kwargs["train_freq"] == (1, "episode")
    assert hp.normalize and hp.normalize_kwargs == {"norm_obs": True, "norm_reward": False}
    assert set(hp.overrides) == {"learning_rate", "train_freq", "normalize"}
    assert hp.record()["values"]["learning_rate"] == "lin_7.3e-4"  # the record keeps the zoo's own spelling

    assert not resolve("ppo", "Hopper-v5", normalize=False).normalize
    assert resolve("sac", "Hopper-v5", normalize=True).normalize


def test_sb3_defaults_without_the_zoo() -> None:
    hp = resolve("td3", "Hopper-v5", use_zoo=False)
    assert hp.source.kind == "sb3-defaults" and hp.algo_kwargs == {} and hp.action_noise is None
    assert hp.source.describe("Hopper-v5") == "SB3 defaults"


def test_lookup_order() -> None:
    assert lookup("ppo", "Pendulum-v1")[0].kind == "zoo"
    assert lookup("ppo", "InvertedPendulum-v5")[0].zoo_key == "InvertedPendulum-v2"
    assert lookup("sac", "NoSuchEnv-v3")[0].kind == "zoo-default"
    assert nearest_version("Hopper-v3", ["Hopper-v2", "Hopper-v4", "Ant-v3"]) == "Hopper-v4"  # a tie: newer
    assert nearest_version("Hopper-v5", ["HopperBulletEnv-v0", "atari"]) is None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"frame_stack": 4}, "frame stacking"),
        ({"env_wrapper": "sb3_contrib.common.wrappers.TimeFeatureWrapper"}, "env wrappers"),
        ({"policy": "CnnPolicy"}, "MlpPolicy"),
        ({"n_stepz": 64}, r"unknown hyperparameter\(s\) \['n_stepz'\]"),
        ({"noise_type": "pink"}, "noise_type"),
        ({"learning_rate": "cos_1e-3"}, "lin_<initial value>"),
        ({"policy_kwargs": "dict(activation_fn=nn.NoSuchLayer)"}, "no class"),
        ({"policy_kwargs": "__import__('os').system('true')"}, "not allowed"),
        ({"n_envs": 0}, "n_envs"),
    ],
)
def test_refusals_say_why(overrides: dict, match: str) -> None:
    with pytest.raises(HyperparamError, match=match):
        resolve("td3", "Hopper-v5", overrides)


def test_noise_only_for_off_policy() -> None:
    with pytest.raises(HyperparamError, match="off-policy"):
        resolve("ppo", "Hopper-v5", {"noise_type": "normal"})


def test_eval_expression_reads_the_zoo_syntax() -> None:
    got = eval_expression(
        "dict(log_std_init=-2, ortho_init=False, activation_fn=th.nn.Tanh, net_arch=[64, 64])", "k"
    )
    assert got == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": torch.nn.Tanh,
        "net_arch": [64, 64],
    }
    assert eval_expression("{'norm_obs': True}", "k") == {"norm_obs": True}


def test_parse_overrides() -> None:
    got = parse_overrides(["gamma=0.98", "net=[1, 2]", "ent_coef=auto", "use_sde=True", "x=lin_3e-4"])
    assert got == {"gamma": 0.98, "net": [1, 2], "ent_coef": "auto", "use_sde": True, "x": "lin_3e-4"}
    with pytest.raises(HyperparamError, match="key=value"):
        parse_overrides(["gamma"])


def test_every_zoo_mujoco_entry_resolves_or_is_refused_cleanly() -> None:
    """Whatever the zoo's MuJoCo entries hold, drlc either understands it or says why not."""
    for algo in STUDY_ALGOS:
        for key in load_zoo_file(algo) or {}:
            if key.split("-")[0] in (
                "Ant",
                "HalfCheetah",
                "Hopper",
                "Humanoid",
                "HumanoidStandup",
                "Swimmer",
                "Walker2d",
            ):
                try:
                    resolve(algo, key)
                except HyperparamError:
                    pass
