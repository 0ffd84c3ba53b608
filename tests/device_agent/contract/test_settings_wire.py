"""Settings <-> wire: one declared mapping, so every setting sent is the setting used."""

from __future__ import annotations

import dataclasses

import pytest

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.settings import (
    NOT_ON_THE_WIRE,
    MeasurementSettings,
    settings_from_proto,
    settings_request,
    settings_to_proto,
)

NON_DEFAULT = dict(
    n_episodes=3,
    seed=7,
    warmup_calls=9,
    max_steps_per_episode=50,
    execution_providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
    intra_op_threads=0,
    keep_latencies=False,
    cpu_affinity=(0, 1),
    control_rate=True,
    idle_s=0.0,
    inference_phase_s=0.0,
    quality_workers=0,
    latency_calls=300,
    latency_only=True,
    paired_with_sha256="ab" * 32,
    op_profile_calls=10,
    trt_engine_cache=True,
    trt_fp16=True,
    trt_int8=True,
)


def test_every_setting_on_the_wire_survives_the_round_trip() -> None:
    names = {f.name for f in dataclasses.fields(MeasurementSettings)} - NOT_ON_THE_WIRE
    assert names == set(NON_DEFAULT), "a new setting needs a non-default value in this test"
    sent = MeasurementSettings(**NON_DEFAULT)
    for name, value in NON_DEFAULT.items():
        assert getattr(MeasurementSettings(), name) != value, name
    assert settings_from_proto(settings_to_proto(sent), MeasurementSettings()) == sent


def test_unset_fields_take_the_defaults_given() -> None:
    defaults = MeasurementSettings(n_episodes=4, warmup_calls=7, idle_s=1.5, replay_observations=33)
    got = settings_from_proto(pb.ProfileSettings(), defaults)
    assert got == dataclasses.replace(defaults, seed=0, max_steps_per_episode=0, control_rate=False)
    assert got.replay_observations == 33  # no field on the wire: always the agent's own


def test_a_request_names_only_what_it_sets() -> None:
    msg = settings_request(n_episodes=2, intra_op_threads=None, cpu_affinity=None, idle_s=0.0)
    assert msg.n_episodes == 2 and msg.HasField("idle_s") and msg.idle_s == 0.0
    assert not msg.HasField("intra_op_threads") and list(msg.cpu_affinity) == []
    with pytest.raises(TypeError, match="n_episode"):
        settings_request(n_episode=2)
    with pytest.raises(TypeError, match="replay_observations"):
        settings_request(replay_observations=2)
