"""Which listening or dialled addresses stay on this machine (loopback), shared by the agent and the host."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str) -> bool:
    """``host:port`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
