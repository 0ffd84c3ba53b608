"""Whether each target's agent answers, and what it can measure: what ``drlc-host targets`` shows."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from device_agent.contract.proto import agent_pb2 as pb
from host.errors import DrlcError
from host.measure.agent_client import AgentClient, AgentUnreachableError
from host.measure.local_agent import local_agent
from host.measure.profiles import TargetProfile
from host.store.workspace import Workspace


@dataclass
class Ping:
    """What one target's agent said, or why it said nothing."""

    up: bool
    detail: str
    """What the table says: "up, 3 ms", "down", ..."""
    error: str = ""
    """Why it is down, in full (printed under the table)."""
    round_trip_ms: float = 0.0
    info: pb.DeviceInfo | None = None
    missing_meters: list[str] = field(default_factory=list)
    """Meter kinds the profile expects that the agent has no working meter of."""


@contextmanager
def _address(profile: TargetProfile, workspace: Workspace, spawn_local: bool) -> Iterator[str | None]:
    if not profile.spawn_local:
        yield profile.address
    elif spawn_local:
        with local_agent(workspace.local_agent_dir, profile.address) as agent:
            yield agent.address
    else:
        yield None


def ping(profile: TargetProfile, workspace: Workspace, timeout_s: float, spawn_local: bool) -> Ping:
    """Ask one target's agent for its device info (starting a ``spawn_local`` target's agent if allowed)."""
    try:
        with _address(profile, workspace, spawn_local) as address:
            if address is None:
                return Ping(False, "started on demand (not pinged: --no-spawn-local)")
            with AgentClient(address, timeout_s=timeout_s, security=profile.client_security()) as client:
                client.wait_ready(timeout_s=timeout_s)
                t0 = time.perf_counter()
                info = client.device_info()
                round_trip_ms = (time.perf_counter() - t0) * 1e3
    except AgentUnreachableError as exc:
        return Ping(False, "down", error=profile.unreachable(exc.address, suggest_targets=False))
    except DrlcError as exc:
        return Ping(False, "down", error=str(exc))
    working = {m.name.split(":")[0] for m in info.energy_meters if m.available}
    missing = [kind for kind in profile.meters if kind not in working]
    return Ping(
        True, f"up, {round_trip_ms:.0f} ms", round_trip_ms=round_trip_ms, info=info, missing_meters=missing
    )


def ping_all(
    profiles: Sequence[TargetProfile], workspace: Workspace, timeout_s: float, spawn_local: bool
) -> list[Ping]:
    """Every agent at once, in the order of ``profiles``: one ``timeout_s`` bounds them all, however many
    devices are down."""
    if not profiles:
        return []
    with ThreadPoolExecutor(max_workers=len(profiles)) as pool:
        futures = [pool.submit(ping, p, workspace, timeout_s, spawn_local) for p in profiles]
    return [f.result() for f in futures]
