"""Who may talk to the agent: a bearer token in gRPC metadata, and TLS on the wire.

The token comes from the environment (``DRLC_AGENT_TOKEN``) or a file, never from the
command line (process lists are world-readable). It is compared in constant time. The
standard health service stays open so load balancers and `drlc-host targets` can probe
liveness without a secret; it reveals nothing else.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from device_agent.contract.errors import AgentError

TOKEN_ENV = "DRLC_AGENT_TOKEN"
METADATA_KEY = "authorization"
OPEN_METHODS_PREFIX = "/grpc.health.v1.Health/"


class SecurityError(AgentError):
    """The agent's security settings are incomplete or unreadable."""


@dataclass(frozen=True)
class SecurityConfig:
    token: str | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    client_ca: bytes | None = None
    """With a client CA, clients must present a certificate it signed (mutual TLS)."""

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def load(
        cls,
        token_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        client_ca: Path | None = None,
        environ: dict[str, str] | None = None,
    ) -> SecurityConfig:
        env = os.environ if environ is None else environ
        token = None
        if token_file is not None:
            token = _read(token_file, "token file").decode().strip()
        elif env.get(TOKEN_ENV):
            token = env[TOKEN_ENV].strip()
        if token is not None and len(token) < 16:
            raise SecurityError(
                "the agent token must be at least 16 characters (e.g. `openssl rand -hex 32`)"
            )
        if (tls_cert is None) != (tls_key is None):
            raise SecurityError("TLS needs both --tls-cert and --tls-key")
        if client_ca is not None and tls_cert is None:
            raise SecurityError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key too")
        return cls(
            token=token,
            tls_cert=_read(tls_cert, "TLS certificate") if tls_cert else None,
            tls_key=_read(tls_key, "TLS key") if tls_key else None,
            client_ca=_read(client_ca, "client CA") if client_ca else None,
        )

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls:
            return None
        assert self.tls_key is not None and self.tls_cert is not None  # for mypy: checked in load()
        return grpc.ssl_server_credentials(
            [(self.tls_key, self.tls_cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read the {what} {path}: {exc}") from exc


def _refuse(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    kinds: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    return kinds[(handler.request_streaming, handler.response_streaming)](abort)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call but health checks unless it carries ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHODS_PREFIX):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = metadata.get(METADATA_KEY, "")
        given_bytes = given.encode() if isinstance(given, str) else given
        if hmac.compare_digest(given_bytes, self._expected):
            return handler
        return _refuse(handler, "missing or wrong agent token (send 'authorization: Bearer <token>')")
