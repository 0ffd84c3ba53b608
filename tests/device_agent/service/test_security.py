"""Strangers stay out: token and TLS on a real agent over loopback."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from device_agent.contract.errors import AgentError
from device_agent.service.security import SecurityConfig, SecurityError
from device_agent.service.server import create_server
from host.measure.agent_client import AgentClient, ClientSecurity
from host.errors import DeviceError

TOKEN = "s3cret-token-for-tests-0123456789"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, sans=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("drlc test CA", ca_key, _name("drlc test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = _cert("localhost", ca_key, ca.subject, server_key, ca=False, sans=sans)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("drlc host", ca_key, ca.subject, client_key, ca=False)
    return {
        "ca": pem(ca),
        "server_cert": pem(server),
        "server_key": pem(server_key),
        "client_cert": pem(client),
        "client_key": pem(client_key),
    }


def write(tmp_path: Path, pki: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for name, data in pki.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture
def secure_agent(tmp_path: Path, pki):
    files = write(tmp_path, pki)
    (tmp_path / "token").write_text(TOKEN + "\n")
    security = SecurityConfig.load(tmp_path / "token", files["server_cert"], files["server_key"])
    agent = create_server("127.0.0.1:0", tmp_path / "agent", security=security)
    yield agent
    agent.stop(grace_s=0)


def test_right_token_over_tls_is_served(secure_agent, pki) -> None:
    with AgentClient(
        f"localhost:{secure_agent.port}", security=ClientSecurity(token=TOKEN, tls_ca=pki["ca"])
    ) as c:
        c.wait_ready(timeout_s=10)
        assert c.device_info().fingerprint


@pytest.mark.parametrize("token", [None, "wrong-token-wrong-token-wrong"])
def test_missing_or_wrong_token_is_refused(secure_agent, pki, token) -> None:
    with AgentClient(
        f"localhost:{secure_agent.port}", security=ClientSecurity(token=token, tls_ca=pki["ca"])
    ) as c:
        c.wait_ready(timeout_s=10)  # the health service answers without a token
        with pytest.raises(DeviceError, match="UNAUTHENTICATED"):
            c.device_info()
        with pytest.raises(DeviceError, match="UNAUTHENTICATED"):
            c.has_models(["0" * 64])


def test_plain_text_to_a_tls_port_is_refused(secure_agent) -> None:
    with AgentClient(
        f"127.0.0.1:{secure_agent.port}", timeout_s=30, security=ClientSecurity(token=TOKEN)
    ) as c:
        with pytest.raises(DeviceError, match="UNAVAILABLE"):
            c.device_info()


def test_tls_with_an_unknown_ca_is_refused(secure_agent) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = pem(_cert("someone else", other_key, _name("someone else"), other_key, ca=True))
    with AgentClient(
        f"localhost:{secure_agent.port}", timeout_s=30, security=ClientSecurity(token=TOKEN, tls_ca=other_ca)
    ) as c:
        with pytest.raises(DeviceError, match="UNAVAILABLE"):
            c.device_info()


def test_mutual_tls_requires_a_client_certificate(tmp_path: Path, pki) -> None:
    files = write(tmp_path, pki)
    security = SecurityConfig.load(
        None, files["server_cert"], files["server_key"], files["ca"], environ={"DRLC_AGENT_TOKEN": TOKEN}
    )
    agent = create_server("127.0.0.1:0", tmp_path / "agent", security=security)
    try:
        with AgentClient(
            f"localhost:{agent.port}", timeout_s=30, security=ClientSecurity(token=TOKEN, tls_ca=pki["ca"])
        ) as c:
            with pytest.raises(DeviceError, match="UNAVAILABLE"):
                c.device_info()
        full = ClientSecurity(
            token=TOKEN,
            tls_ca=pki["ca"],
            tls_client_cert=pki["client_cert"],
            tls_client_key=pki["client_key"],
        )
        with AgentClient(f"localhost:{agent.port}", security=full) as c:
            assert c.device_info().fingerprint
    finally:
        agent.stop(grace_s=0)


def test_token_without_tls_on_loopback_still_checks_the_token(tmp_path: Path) -> None:
    agent = create_server("127.0.0.1:0", tmp_path / "agent", security=SecurityConfig(token=TOKEN))
    try:
        with AgentClient(f"127.0.0.1:{agent.port}", security=ClientSecurity(token=TOKEN)) as c:
            assert c.device_info().fingerprint
        with AgentClient(f"127.0.0.1:{agent.port}") as c:
            with pytest.raises(DeviceError, match="UNAUTHENTICATED"):
                c.device_info()
            health = health_pb2_grpc.HealthStub(c.channel)
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=60).status
                == health_pb2.HealthCheckResponse.SERVING
            )
    finally:
        agent.stop(grace_s=0)


def test_non_loopback_needs_token_and_tls(tmp_path: Path, pki) -> None:
    with pytest.raises(AgentError, match="without a token and TLS"):
        create_server("0.0.0.0:0", tmp_path / "a")
    with pytest.raises(AgentError, match="without TLS"):
        create_server("0.0.0.0:0", tmp_path / "b", security=SecurityConfig(token=TOKEN))


def test_security_config_rejects_weak_or_partial_settings(tmp_path: Path, pki) -> None:
    files = write(tmp_path, pki)
    with pytest.raises(SecurityError, match="at least 16"):
        SecurityConfig.load(environ={"DRLC_AGENT_TOKEN": "short"})
    with pytest.raises(SecurityError, match="both --tls-cert and --tls-key"):
        SecurityConfig.load(tls_cert=files["server_cert"], environ={})
    with pytest.raises(SecurityError, match="cannot read"):
        SecurityConfig.load(token_file=tmp_path / "missing", environ={})
    assert SecurityConfig.load(environ={"DRLC_AGENT_TOKEN": TOKEN}).token == TOKEN
