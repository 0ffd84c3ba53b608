"""A policy's env options and observation wrappers: checked, built the same on agent and host, run on the agent.

The time feature is compared with sb3_contrib's own TimeFeatureWrapper observation by observation,
because the agent reimplements it without torch and a policy trained inside it must see exactly
what it saw in training.
"""

from __future__ import annotations

import grpc
import numpy as np
import onnx
import pytest
from sb3_contrib.common.wrappers import TimeFeatureWrapper

from device_agent.contract.envs import build_env, check_env_options, describe_env
from device_agent.contract.errors import InvalidModelError
from device_agent.contract.manifest import MANIFEST_KEY, ArtifactManifest, ObsWrapper, sha256_bytes
from host.measure.agent_client import AgentClient
from tests.device_agent.service.test_server import profile_request, upload_bytes
from host.policies.random_policies import random_policy


def _rollout(env, n_steps: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for _ in range(n_steps):
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        seen.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            seen.append(obs)
    return seen


@pytest.mark.parametrize("test_mode", [False, True])
def test_time_feature_matches_sb3_contrib_exactly(test_mode: bool) -> None:
    import gymnasium as gym

    # 40-step episodes so the rollout crosses truncations and resets
    theirs = TimeFeatureWrapper(gym.make("Walker2d-v5", max_episode_steps=40), test_mode=test_mode)
    ours = build_env(
        "Walker2d-v5",
        obs_wrappers=[ObsWrapper(name="time_feature", params={"max_steps": 40, "test_mode": test_mode})],
        max_episode_steps=40,
    )
    assert ours.observation_space == theirs.observation_space
    a, b = _rollout(theirs, 130, seed=3), _rollout(ours, 130, seed=3)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    features = {float(x[-1]) for x in b}
    assert features == {1.0} if test_mode else len(features) > 30


def test_time_feature_keeps_its_training_horizon_on_other_episode_lengths() -> None:
    env = build_env(
        "Hopper-v5",
        obs_wrappers=[ObsWrapper(name="time_feature", params={"max_steps": 1000})],
        max_episode_steps=5,
    )
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(3))
    assert obs[-1] == pytest.approx(1 - 1 / 1000)  # not 1 - 1/5: the feature the policy was trained on


def test_env_options_reach_the_env_and_bad_ones_are_refused() -> None:
    assert build_env("Ant-v4").observation_space.shape == (27,)
    assert build_env("Ant-v4", {"use_contact_forces": True}).observation_space.shape == (111,)
    with pytest.raises(
        InvalidModelError, match=r"Ant-v5 takes no option 'use_contact_forces'; it takes: .*include_cfrc"
    ):
        check_env_options("Ant-v5", {"use_contact_forces": True})
    with pytest.raises(InvalidModelError, match=r"xml_file.*names a file on the device"):
        check_env_options("Ant-v4", {"xml_file": "/etc/passwd"})
    with pytest.raises(InvalidModelError, match="wrong type"):
        check_env_options("Ant-v4", {"use_contact_forces": "yes"})
    with pytest.raises(InvalidModelError, match=r"does not implement.*it runs: time_feature"):
        build_env("Hopper-v5", obs_wrappers=[ObsWrapper(name="frame_stack", params={"n": 4})])
    with pytest.raises(InvalidModelError, match="max_steps, a positive integer"):
        build_env("Hopper-v5", obs_wrappers=[ObsWrapper(name="time_feature")])
    assert (
        describe_env(
            "Ant-v4",
            {"use_contact_forces": True},
            [ObsWrapper(name="time_feature", params={"max_steps": 1000})],
        )
        == "Ant-v4(use_contact_forces=True) + time_feature(max_steps=1000)"
    )


def test_manifest_without_env_setup_keeps_its_old_json() -> None:
    _, _, manifest = random_policy()
    text = manifest.to_json()
    assert "env_kwargs" not in text and "obs_wrappers" not in text  # same bytes as before these fields
    _, _, with_setup = random_policy("Ant-v4", env_kwargs={"use_contact_forces": True})
    again = ArtifactManifest.from_json(with_setup.to_json())
    assert again.env_kwargs == {"use_contact_forces": True} and again.observation_shape == [111]


def _with_manifest(data: bytes, manifest: ArtifactManifest) -> bytes:
    model = onnx.load_from_string(data)
    onnx.helper.set_model_props(model, {MANIFEST_KEY: manifest.to_json()})
    return model.SerializeToString()


def test_agent_runs_a_policy_in_its_env_setup_and_refuses_what_it_cannot_build(client: AgentClient) -> None:
    wrappers = [ObsWrapper(name="time_feature", params={"max_steps": 1000})]
    data, sha, manifest = random_policy(
        "Ant-v4", env_kwargs={"use_contact_forces": True}, obs_wrappers=wrappers
    )
    assert manifest.observation_shape == [112]
    upload_bytes(client, data, sha)
    events = list(
        client.run_profile(profile_request("ant-options", sha, episodes=1, max_steps_per_episode=20))
    )
    assert events[-1].HasField("summary"), events[-1]
    # a manifest naming an option this env does not take: refused before the job is queued
    data, _, plain = random_policy("Ant-v4")
    data = _with_manifest(data, plain.model_copy(update={"env_kwargs": {"no_such_option": 1}}))
    sha = sha256_bytes(data)
    upload_bytes(client, data, sha)
    with pytest.raises(grpc.RpcError) as err:
        list(client.run_profile(profile_request("bad-option", sha, episodes=1)))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Ant-v4 takes no option 'no_such_option'" in err.value.details()
