"""Figures that mean what they say: the floor timed in the policy's loop, memory split into the runtime's
start-up and the model, settings sent are settings used, and latency-only rounds; on a real agent over
loopback with real MuJoCo and ONNX Runtime."""

from __future__ import annotations

import grpc
import gymnasium as gym
import numpy as np
import pytest

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.measure.floor import FLOOR_CALLS, measure_floor, open_floor_session
from device_agent.measure.phases import latency_phase
from device_agent.contract.settings import (
    PAIRED_BLOCK_CALLS,
    MeasurementSettings,
    settings_from_proto,
    settings_to_proto,
)
from host.measure.agent_client import AgentClient
from host.measure.deploy import DeployConfig, profile_settings
from host.measure.profiles import MeasurementOverrides, TargetProfile
from host.policies.random_policies import random_policy


def run(
    client: AgentClient, job_id: str, sha: str, settings: pb.ProfileSettings
) -> tuple[list, pb.JobSummary]:
    episodes, summary = [], None
    for event in client.run_profile(pb.ProfileRequest(job_id=job_id, model_sha256=sha, settings=settings)):
        if event.HasField("episode"):
            episodes.append(event.episode)
        elif event.HasField("summary"):
            summary = event.summary
        elif event.HasField("failed"):
            pytest.fail(f"the job failed: {event.failed.message}")
    assert summary is not None
    return episodes, summary


def upload(client: AgentClient, **kw) -> str:
    data, sha, _ = random_policy(**kw)
    from tests.device_agent.service.test_server import upload_bytes

    upload_bytes(client, data, sha)
    return sha


def test_settings_sent_are_settings_used() -> None:
    defaults = MeasurementSettings()
    unset = settings_from_proto(pb.ProfileSettings(n_episodes=1), defaults)
    assert unset.intra_op_threads == defaults.intra_op_threads == 1 and unset.keep_latencies is True
    zero = settings_from_proto(pb.ProfileSettings(intra_op_threads=0, keep_latencies=False), defaults)
    assert zero.intra_op_threads == 0 and zero.keep_latencies is False
    back = settings_to_proto(zero)
    assert (
        back.HasField("intra_op_threads") and back.intra_op_threads == 0 and back.HasField("keep_latencies")
    )
    # the host sends what the profile says, and nothing where it says nothing
    plain = profile_settings(TargetProfile(name="t", address="x:1"), DeployConfig())
    assert not plain.HasField("intra_op_threads") and not plain.HasField("keep_latencies")
    chosen = profile_settings(
        TargetProfile(name="t", address="x:1", measurement=MeasurementOverrides(intra_op_threads=0)),
        DeployConfig(),
    )
    assert chosen.HasField("intra_op_threads") and chosen.intra_op_threads == 0


def test_threads_zero_reaches_the_runtime_and_latencies_come_back_by_default(client: AgentClient) -> None:
    sha = upload(client)
    settings = pb.ProfileSettings(n_episodes=1, warmup_calls=5, intra_op_threads=0, quality_workers=1)
    episodes, summary = run(client, "threads-zero", sha, settings)
    assert summary.effective.HasField("intra_op_threads") and summary.effective.intra_op_threads == 0
    assert summary.runtime.intra_op_threads == 0
    assert summary.effective.keep_latencies is True  # unset: the agent's default, not False
    assert len(episodes[0].inference_ns) == episodes[0].length > 0


def test_floor_in_loop_and_memory_split_are_reported_as_such(client: AgentClient) -> None:
    sha = upload(client, env_id="HalfCheetah-v5", hidden=(64, 64))
    settings = pb.ProfileSettings(n_episodes=1, warmup_calls=5, quality_workers=1, max_steps_per_episode=50)
    _, summary = run(client, "figures", sha, settings)
    assert summary.runtime_floor_in_loop
    assert summary.runtime_floor.count == FLOOR_CALLS and summary.runtime_floor.p50_ns > 0
    memory = summary.memory
    assert memory.HasField("runtime_startup_bytes") and memory.HasField("model_added_bytes")
    assert memory.runtime_startup_bytes > 0 and memory.model_added_bytes >= 0
    assert (
        memory.runtime_startup_bytes + memory.model_added_bytes
        == memory.rss_after_load_bytes - memory.rss_before_load_bytes
    )
    assert summary.validity.window == "episodes" and summary.validity.window_s > 0


def test_a_latency_only_round_times_latency_calls_and_nothing_else(client: AgentClient) -> None:
    sha = upload(client)
    settings = pb.ProfileSettings(
        n_episodes=5, warmup_calls=5, latency_only=True, latency_calls=300, quality_workers=4
    )
    episodes, summary = run(client, "latency-only", sha, settings)
    assert episodes == [] and summary.n_episodes == 0
    assert summary.latency_phase.calls == 300 and len(summary.latency_phase.inference_ns) == 300
    assert summary.inference.count == 300 and summary.total_steps == 300
    assert summary.effective.quality_workers == 1  # no helpers for a latency round
    assert not summary.HasField("runtime_floor") and not summary.runtime_floor_in_loop
    assert summary.validity.window == "latency phase"


class CountingEnv(gym.Wrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def test_the_floor_steps_the_env_between_its_calls() -> None:
    _, _, manifest = random_policy(env_id="Hopper-v5")
    env = CountingEnv(gym.make("Hopper-v5"))
    session = open_floor_session(manifest, MeasurementSettings())
    samples = measure_floor(env, session, manifest, seed=3, period_ns=None, n_calls=200)
    assert len(samples) == 200 and all(s > 0 for s in samples)
    assert env.steps == 200 + 200 // 10  # one env step after every call, warm-up included
    assert np.isfinite(env.unwrapped.data.qpos).all()
    env.close()


class ActionLog(gym.Wrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[float] = []

    def step(self, action):
        self.actions.append(float(action[0]))
        return self.env.step(action)


def test_a_paired_phase_alternates_abba_and_steps_with_the_action_just_computed() -> None:
    env = ActionLog(gym.make("InvertedPendulum-v5"))
    obs_buffer = np.zeros((1, 4), dtype=np.float32)
    calls: list[str] = []

    def policy(name: str, value: float):
        out = np.full((1, 1), value, dtype=np.float32)

        def infer() -> np.ndarray:
            calls.append(name)
            return out

        return infer

    phase = latency_phase(
        env, policy("own", 0.1), obs_buffer, 20, seed=0, period_ns=None, partner=policy("ref", -0.2), block=5
    )
    assert len(phase.calls_ns) == len(phase.partner_calls_ns) == 20 and len(phase.steps_ns) == 40
    blocks = [calls[i] for i in range(0, 40, 5)]
    assert blocks == ["own", "ref", "ref", "own", "own", "ref", "ref", "own"]
    assert all(calls[i] == calls[i - i % 5] for i in range(40))  # whole blocks
    expected = [0.1 if c == "own" else -0.2 for c in calls]
    assert env.actions == pytest.approx(expected)
    alone = latency_phase(env, policy("own", 0.1), obs_buffer, 7, seed=0, period_ns=None)
    assert len(alone.calls_ns) == 7 and alone.partner_calls_ns == []
    env.close()


def test_a_paired_round_times_both_models_in_one_worker(client: AgentClient) -> None:
    small = upload(client, env_id="HalfCheetah-v5", hidden=(8,))
    large = upload(client, env_id="HalfCheetah-v5", hidden=(1024, 1024))
    settings = pb.ProfileSettings(
        n_episodes=1, warmup_calls=5, latency_only=True, latency_calls=200, paired_with_sha256=small
    )
    episodes, summary = run(client, "paired", large, settings)
    assert episodes == [] and summary.effective.paired_with_sha256 == small
    assert summary.inference.count == 200 and summary.paired.reference.count == 200
    assert summary.paired.reference_sha256 == small and summary.paired.block_calls == PAIRED_BLOCK_CALLS
    assert len(summary.paired.reference_inference_ns) == 200 and summary.total_steps == 400
    # a planted effect of compute, not of this machine's speed: ~10^6 multiply-adds per call against ~10^2
    assert summary.inference.p50_ns > 1.5 * summary.paired.reference.p50_ns
    unpaired = settings.__class__()
    unpaired.CopyFrom(settings)
    unpaired.ClearField("paired_with_sha256")
    _, alone = run(client, "unpaired", large, unpaired)
    assert not alone.HasField("paired")


def test_a_paired_round_is_refused_unless_it_can_mean_something(client: AgentClient) -> None:
    cheetah = upload(client, env_id="HalfCheetah-v5", hidden=(8,))
    hopper = upload(client, env_id="Hopper-v5", hidden=(8,))
    cases = {
        "not-latency-only": (pb.ProfileSettings(n_episodes=1, paired_with_sha256=cheetah), "latency_only"),
        "other-shapes": (
            pb.ProfileSettings(n_episodes=1, latency_only=True, paired_with_sha256=hopper),
            "its own baseline",
        ),
        "not-a-sha": (pb.ProfileSettings(n_episodes=1, latency_only=True, paired_with_sha256="ab"), "sha256"),
    }
    for job_id, (settings, words) in cases.items():
        with pytest.raises(grpc.RpcError) as err:
            run(client, job_id, cheetah, settings)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details(), job_id
    missing = pb.ProfileSettings(n_episodes=1, latency_only=True, paired_with_sha256="0" * 64)
    with pytest.raises(grpc.RpcError) as err:
        run(client, "missing", cheetah, missing)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND and "upload it first" in err.value.details()
    assert (
        run(client, "still-serving", cheetah, pb.ProfileSettings(n_episodes=1, warmup_calls=1))[1].n_episodes
        == 1
    )
