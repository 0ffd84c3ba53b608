"""Figures that mean what they say: the floor timed in the policy's loop, memory split into the runtime's
start-up and the model, settings sent are settings used, and latency-only rounds; on a real agent over
loopback with real MuJoCo and ONNX Runtime."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from device_agent import convert
from device_agent._proto import agent_pb2 as pb
from device_agent.runner import FLOOR_CALLS, measure_floor, open_floor_session
from device_agent.settings import MeasurementSettings
from host.measure.agent_client import AgentClient
from host.measure.deploy import DeployConfig, profile_settings
from host.measure.profiles import MeasurementOverrides, TargetProfile
from tests.policies import random_policy


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
    from tests.device_agent.test_server import upload_bytes

    upload_bytes(client, data, sha)
    return sha


def test_settings_sent_are_settings_used() -> None:
    defaults = MeasurementSettings()
    unset = convert.settings_from_proto(pb.ProfileSettings(n_episodes=1), defaults)
    assert unset.intra_op_threads == defaults.intra_op_threads == 1 and unset.keep_latencies is True
    zero = convert.settings_from_proto(pb.ProfileSettings(intra_op_threads=0, keep_latencies=False), defaults)
    assert zero.intra_op_threads == 0 and zero.keep_latencies is False
    back = convert.settings_to_proto(zero)
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
