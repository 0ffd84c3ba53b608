"""The host's side of the wire: a typed wrapper over the generated gRPC stub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.addresses import is_loopback
from device_agent.contract.wire import CHECK_WALL_S, CHUNK_BYTES, SERVICE_NAME
from device_agent.contract.proto import agent_pb2_grpc
from host.errors import DeviceError, ProfileError


class AgentUnavailableError(DeviceError):
    """The agent could not be reached (down, restarting, network): worth retrying, unlike a refusal."""


class AgentUnreachableError(AgentUnavailableError):
    """Nothing answered at the address within the wait (no agent, no tunnel, a firewall), as opposed to an
    agent that answered with an error. The CLI turns it into what to check on the target."""

    def __init__(self, message: str, address: str, detail: str) -> None:
        super().__init__(message)
        self.address = address
        self.detail = detail


UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Health-check outcomes that mean no agent answered at all."""

TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
    }
)


def device_error(exc: grpc.RpcError, address: str) -> DeviceError:
    code = exc.code() if hasattr(exc, "code") else None
    kind = AgentUnavailableError if code in TRANSIENT_CODES else DeviceError
    return kind(describe_rpc_error(exc, address))


def describe_rpc_error(exc: grpc.RpcError, address: str) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"agent at {address} answered {code.name if code else 'an error'}: {details}"


@dataclass(frozen=True)
class ClientSecurity:
    """How the host proves itself to an agent and checks the agent is the right one."""

    token: str | None = None
    tls_ca: bytes | None = None
    """PEM CA that signed the agent's certificate; with it the channel is TLS."""
    tls_client_cert: bytes | None = None
    tls_client_key: bytes | None = None
    tls_server_name: str | None = None
    """Expected name in the agent's certificate, when the address does not carry it."""
    allow_plaintext_token: bool = False
    """Send the token over a plain-text channel to a non-loopback address (off by default: anyone on the
    path could read it; tunnel over SSH to a loopback port, or give the profile a TLS CA)."""

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None


class _TokenAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


CHANNEL_OPTIONS: list[tuple[str, object]] = [
    ("grpc.max_receive_message_length", 64 << 20),
    # a vanished or frozen agent is noticed during a long job stream, instead of the host waiting for ever
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def open_channel(address: str, security: ClientSecurity) -> grpc.Channel:
    if (
        security.token
        and not security.tls
        and not security.allow_plaintext_token
        and not is_loopback(address)
    ):
        raise ProfileError(
            f"refusing to send the agent token in plain text to {address}: give the profile a [security] "
            "tls_ca, reach the agent through an SSH tunnel to a loopback port, or set "
            "allow_plaintext_token = true if the network is yours alone"
        )
    options = list(CHANNEL_OPTIONS)
    if security.tls:
        credentials = grpc.ssl_channel_credentials(
            security.tls_ca, security.tls_client_key, security.tls_client_cert
        )
        if security.token:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.metadata_call_credentials(_TokenAuth(security.token))
            )
        if security.tls_server_name:
            options.append(("grpc.ssl_target_name_override", security.tls_server_name))
        return grpc.secure_channel(address, credentials, options=options)
    channel = grpc.insecure_channel(address, options=options)
    if (
        security.token
    ):  # plain text with a token: only sensible on loopback; gRPC refuses call credentials here
        channel = grpc.intercept_channel(channel, _PlainTokenInterceptor(security.token))
    return channel


class _PlainTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._pair]
        return details._replace(metadata=metadata)  # type: ignore[attr-defined]

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request_iterator)


class AgentClient:
    """One connection to one agent. Every method raises DeviceError with the agent's reason."""

    def __init__(self, address: str, timeout_s: float = 30.0, security: ClientSecurity | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.channel = open_channel(address, security or ClientSecurity())
        self.stub = agent_pb2_grpc.AgentStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll the standard health service until the agent says SERVING."""
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout_s
        last = ""
        answered = False
        while time.monotonic() < deadline:
            try:
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                    timeout=max(0.1, min(2.0, deadline - time.monotonic())),
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last, answered = f"status {reply.status}", True
            except grpc.RpcError as exc:
                last = describe_rpc_error(exc, self.address)
                answered = answered or exc.code() not in UNREACHABLE_CODES
            time.sleep(0.1)
        message = f"agent at {self.address} did not become ready within {timeout_s:.0f} s ({last})"
        if not answered:
            raise AgentUnreachableError(message, self.address, last)
        raise AgentUnavailableError(message)

    def device_info(self) -> pb.DeviceInfo:
        try:
            return self.stub.GetDeviceInfo(pb.GetDeviceInfoRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def has_models(self, sha256s: list[str]) -> set[str]:
        try:
            return set(
                self.stub.HasModels(pb.HasModelsRequest(sha256=sha256s), timeout=self.timeout_s).present
            )
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def upload(self, path: Path, sha256: str) -> pb.UploadModelResponse:
        """Send one model file in chunks under the sha256 the workspace registered it by (computed once, when
        it was stored); the agent verifies the hash before storing it, so a file changed since is refused."""
        data = path.read_bytes()
        digest = sha256

        def messages() -> Iterator[pb.UploadModelRequest]:
            yield pb.UploadModelRequest(
                header=pb.UploadHeader(sha256=digest, size_bytes=len(data), filename=path.name)
            )
            for start in range(0, len(data), CHUNK_BYTES):
                yield pb.UploadModelRequest(chunk=data[start : start + CHUNK_BYTES])

        try:
            # sending, then the agent's check of the model in a process of its own (bounded by the agent)
            timeout = max(self.timeout_s, len(data) / 1e6) + CHECK_WALL_S
            return self.stub.UploadModel(messages(), timeout=timeout)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def run_profile(self, request: pb.ProfileRequest) -> Iterator[pb.ProfileEvent]:
        """Stream a job's events. The stream may break; the job goes on and can be fetched by id."""
        return self.stub.RunProfile(request)

    def watch_job(self, job_id: str) -> Iterator[pb.ProfileEvent]:
        return self.stub.WatchJob(pb.GetJobRequest(job_id=job_id))

    def get_job(self, job_id: str) -> pb.JobRecord:
        try:
            return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def cancel_job(self, job_id: str) -> pb.JobRecord:
        try:
            return self.stub.CancelJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def remove_models(self, sha256s: list[str]) -> list[str]:
        """Delete models from the device's store; returns the ones that were there."""
        try:
            request = pb.RemoveModelsRequest(sha256=sha256s)
            return list(self.stub.RemoveModels(request, timeout=self.timeout_s).removed)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc

    def prune_jobs(self, older_than_days: float) -> list[str]:
        """Delete the device's records of finished jobs that ended more than ``older_than_days`` ago."""
        try:
            request = pb.PruneJobsRequest(older_than_days=older_than_days)
            return list(self.stub.PruneJobs(request, timeout=self.timeout_s).removed)
        except grpc.RpcError as exc:
            raise device_error(exc, self.address) from exc
