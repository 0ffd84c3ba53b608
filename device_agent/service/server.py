"""Build the agent's gRPC server, then serve it (as in the gRPC examples)."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from device_agent.contract.proto import agent_pb2_grpc
from device_agent.contract.addresses import is_loopback
from device_agent.service.device_info import agent_fingerprint, available_providers
from device_agent.contract.errors import AgentError
from device_agent.jobs.manager import JobManager
from device_agent.service.security import TOKEN_ENV, SecurityConfig, TokenInterceptor
from device_agent.service.servicer import AgentServicer
from device_agent.limits import AgentLimits
from device_agent.contract.wire import CHUNK_BYTES, SERVICE_NAME
from device_agent.store.storage import ModelStore

log = logging.getLogger(__name__)

SHORT_CALL_THREADS = 8
"""Server threads no upload or job stream can take: health, device info, HasModels, GetJob always answer."""
MAX_RPCS_PER_THREAD = 4
"""Calls admitted per server thread (running or queued for a thread); more are refused by gRPC itself."""


@dataclass
class RunningAgent:
    server: grpc.Server
    port: int
    jobs: JobManager
    health: health.HealthServicer

    def stop(self, grace_s: float = 1.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.jobs.stop()


def check_address(address: str) -> None:
    """Refuse a listen address gRPC would misread: no port, or one outside 0..65535 (gRPC wraps 99999 to a
    random port instead of failing)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AgentError(
            f"bad address {address!r}: give HOST:PORT with a port in 0..65535 (0: any free port)"
        )


def create_server(
    address: str,
    data_dir: Path,
    limits: AgentLimits | None = None,
    insecure: bool = False,
    security: SecurityConfig | None = None,
    trt_cache_dir: Path | None = None,
) -> RunningAgent:
    """Bind ``address`` (port 0 picks a free one) and start serving; returns the bound port.

    :param trt_cache_dir: where TensorRT engines are cached for jobs that ask for the cache; default
        ``data_dir/trt_engines``

    Off this machine the agent needs both a token and TLS, unless ``insecure`` says otherwise.
    """
    security = security or SecurityConfig()
    check_address(address)
    if not is_loopback(address) and not insecure and not (security.token and security.tls):
        missing = " and ".join(n for n, ok in (("a token", security.token), ("TLS", security.tls)) if not ok)
        raise AgentError(
            f"refusing to listen on non-loopback address {address!r} without {missing}: set {TOKEN_ENV} "
            "(or --token-file) and --tls-cert/--tls-key, or pass --insecure to accept unauthenticated "
            "plain-text access from the network"
        )
    limits = limits or AgentLimits()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgentError(
            f"cannot use the data dir {data_dir}: {exc.strerror or exc} (choose one with --data-dir)"
        ) from None
    providers = available_providers()
    store = ModelStore(data_dir, limits.max_model_bytes, limits.max_stored_models, limits.max_store_bytes)
    jobs = JobManager(
        data_dir, store, limits, providers, agent_fingerprint(data_dir), trt_cache_dir=trt_cache_dir
    )
    # Long calls (uploads, job streams) are capped by the servicer below the pool size, so SHORT_CALL_THREADS
    # threads are always left for health checks, device info and the other short calls.
    threads = limits.max_concurrent_uploads + limits.max_streams + SHORT_CALL_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drlc-rpc"),
        interceptors=[TokenInterceptor(security.token)] if security.token else [],
        options=[
            ("grpc.max_receive_message_length", 4 * CHUNK_BYTES),
            ("grpc.max_send_message_length", 64 << 20),
            # a dead peer (a host that lost power, a cut cable) is noticed and its streams freed
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),  # hosts ping every 30 s
        ],
        # beyond this, calls are refused by gRPC itself (RESOURCE_EXHAUSTED) instead of queueing without end
        maximum_concurrent_rpcs=MAX_RPCS_PER_THREAD * threads,
    )
    agent_pb2_grpc.add_AgentServicer_to_server(
        AgentServicer(data_dir, store, jobs, limits, providers), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    credentials = security.server_credentials()
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        jobs.stop()
        raise AgentError(f"could not bind {address!r} (in use, or not an address of this machine)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("drlc agent serving on %s (port %d), data in %s", address, port, data_dir)
    return RunningAgent(server, port, jobs, health_servicer)
