"""Fuzz the agent over real gRPC with random and mutated requests and model bytes; it must stay healthy.

Bounded: a fixed number of examples per strategy (hypothesis, no shrinking database), each
followed by a health check. Accepted mutated models are run for a few steps, so a model
that crashes or misleads ONNX Runtime reaches a real worker process.
"""

from __future__ import annotations

import collections
import hashlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agent.contract.proto import agent_pb2 as pb
from host.policies.random_policies import random_policy

COUNTS: collections.Counter[str] = collections.Counter()
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SEED_MODEL, _, _ = random_policy("Hopper-v5", hidden=(8,))
ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def assert_healthy(client) -> None:
    reply = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=60)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    client.stub.HasModels(pb.HasModelsRequest(sha256=["0" * 64]), timeout=60)


def upload(client, messages: list[pb.UploadModelRequest]) -> pb.UploadModelResponse | None:
    try:
        return client.stub.UploadModel(iter(messages), timeout=300)
    except grpc.RpcError as exc:
        assert exc.code() in ACCEPTABLE, (exc.code(), exc.details())
        return None


def run_briefly(client, sha: str, job_id: str) -> None:
    request = pb.ProfileRequest(
        job_id=job_id,
        model_sha256=sha,
        settings=pb.ProfileSettings(n_episodes=1, warmup_calls=1, max_steps_per_episode=5),
    )
    try:
        events = list(client.stub.RunProfile(request, timeout=120))
    except grpc.RpcError as exc:
        assert exc.code() in ACCEPTABLE, (exc.code(), exc.details())
        return
    assert events[-1].WhichOneof("event") in ("summary", "failed")
    COUNTS["jobs " + events[-1].WhichOneof("event")] += 1


sha_text = st.one_of(st.text(max_size=70), st.binary(min_size=32, max_size=32).map(lambda b: b.hex()))
chunks = st.lists(st.binary(max_size=4096), max_size=4)


@pytest.mark.parametrize("strategy", ["raw uploads", "mutated models", "profile requests"])
def test_agent_survives_fuzzing(client, strategy: str) -> None:
    if strategy == "raw uploads":

        @FUZZ
        @given(sha=sha_text, size=st.integers(-5, 1 << 40), body=chunks, header_first=st.booleans())
        def fuzz(sha: str, size: int, body: list[bytes], header_first: bool) -> None:
            header = pb.UploadModelRequest(header=pb.UploadHeader(sha256=sha, size_bytes=size))
            data = [pb.UploadModelRequest(chunk=c) for c in body]
            upload(client, [header, *data] if header_first else [*data, header])
            COUNTS["raw uploads"] += 1
            assert_healthy(client)

    elif strategy == "mutated models":

        @FUZZ
        @given(
            flips=st.lists(
                st.tuples(st.integers(0, len(SEED_MODEL) - 1), st.integers(0, 255)), min_size=1, max_size=8
            ),
            cut=st.integers(0, 64),
        )
        def fuzz(flips: list[tuple[int, int]], cut: int) -> None:
            data = bytearray(SEED_MODEL)
            for index, value in flips:
                data[index] = value
            data = bytes(data[: len(data) - cut])
            sha = hashlib.sha256(data).hexdigest()
            messages = [pb.UploadModelRequest(header=pb.UploadHeader(sha256=sha, size_bytes=len(data)))]
            messages += [pb.UploadModelRequest(chunk=data)] if data else []
            if upload(client, messages) is not None:
                COUNTS["mutated models accepted"] += 1
                run_briefly(client, sha, f"fuzz-{sha[:16]}")
            COUNTS["mutated models"] += 1
            assert_healthy(client)

    else:
        upload(
            client,
            [
                pb.UploadModelRequest(
                    header=pb.UploadHeader(
                        sha256=hashlib.sha256(SEED_MODEL).hexdigest(), size_bytes=len(SEED_MODEL)
                    )
                ),
                pb.UploadModelRequest(chunk=SEED_MODEL),
            ],
        )

        @FUZZ
        @given(
            job_id=st.one_of(st.from_regex(r"[a-z0-9]{1,24}", fullmatch=True), st.text(max_size=140)),
            sha=st.one_of(st.just(hashlib.sha256(SEED_MODEL).hexdigest()), sha_text),
            env_id=st.one_of(
                st.just(""),
                st.sampled_from(["Hopper-v5", "CartPole-v1", "../x", "HalfCheetah-v5"]),
                st.text(max_size=30),
            ),
            n=st.one_of(st.integers(-2, 2), st.integers(-(2**31), 2**31 - 1)),
            steps=st.one_of(st.integers(-2, 8), st.integers(-(2**31), 2**31 - 1)),
            threads=st.one_of(st.integers(-1, 2), st.integers(-(2**31), 2**31 - 1)),
            providers=st.one_of(st.just([]), st.lists(st.text(max_size=30), max_size=3)),
        )
        def fuzz(
            job_id: str, sha: str, env_id: str, n: int, steps: int, threads: int, providers: list[str]
        ) -> None:
            request = pb.ProfileRequest(
                job_id=job_id,
                model_sha256=sha,
                env_id=env_id,
                settings=pb.ProfileSettings(
                    n_episodes=n,
                    max_steps_per_episode=steps,
                    intra_op_threads=threads,
                    execution_providers=providers,
                    warmup_calls=1,
                ),
            )
            try:
                events = list(client.stub.RunProfile(request, timeout=120))
                assert events[-1].WhichOneof("event") in ("summary", "failed")
                COUNTS["profile requests run"] += 1
            except grpc.RpcError as exc:
                assert exc.code() in ACCEPTABLE, (exc.code(), exc.details())
            COUNTS["profile requests"] += 1
            assert_healthy(client)

    fuzz()
    print(f"fuzz {strategy}: {dict(COUNTS)}")
