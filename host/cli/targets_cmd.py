"""`drlc-host targets`: every target profile, and whether its agent answers (and what it can measure)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from device_agent._proto import agent_pb2 as pb
from host.measure.agent_client import AgentClient, AgentUnreachableError
from host.cli.common import HomeOption, ProfilesDirOption, console, user_errors
from host.errors import DrlcError
from host.measure.local_agent import local_agent
from host.measure.profiles import TargetProfile, list_profiles, load_profile
from host.workspace import Workspace


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


def _meters_text(info: pb.DeviceInfo | None) -> str:
    if info is None:
        return ""
    working = [m.name for m in info.energy_meters if m.available]
    return ", ".join(working) if working else "none"


def targets_command(
    profiles_dir: ProfilesDirOption = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="seconds to wait for each agent to answer", min=0.1)
    ] = 3.0,
    spawn_local: Annotated[
        bool,
        typer.Option(
            "--spawn-local/--no-spawn-local",
            help="start the agent of spawn_local targets (as a deploy would) to ping it",
        ),
    ] = True,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="also say why each unavailable energy meter is unavailable"),
    ] = False,
    home: HomeOption = None,
) -> None:
    """List the target profiles and ping each one's agent: device, providers and working energy meters."""
    with user_errors():
        workspace = Workspace.resolve(home)
        paths = list_profiles(profiles_dir)
        if not paths:
            console.print("no target profiles found (profiles/NAME.toml)")
            return
        table = Table(title="targets", title_justify="left")
        for header in ("target", "address", "agent", "device", "providers", "energy meters", "description"):
            table.add_column(header)
        notes: list[str] = []
        loaded: list[tuple[Path, TargetProfile | DrlcError]] = []
        for path in paths:
            try:
                loaded.append((path, load_profile(path)))
            except DrlcError as exc:
                loaded.append((path, exc))
        # every agent at once: the command takes one --timeout however many devices are down
        with ThreadPoolExecutor(max_workers=max(1, len(loaded))) as pool:
            pings = {
                path: pool.submit(ping, profile, workspace, timeout_s, spawn_local)
                for path, profile in loaded
                if isinstance(profile, TargetProfile)
            }
        for path, profile in loaded:
            if isinstance(profile, DrlcError):
                table.add_row(
                    escape(path.stem), "", "[red]invalid profile[/]", "", "", "", escape(str(profile))
                )
                continue
            result = pings[path].result()
            info = result.info
            device = f"{info.hostname} ({info.machine}, {info.cpu_model})" if info else ""
            address = "spawned here" if profile.spawn_local else profile.address
            status = f"[green]{escape(result.detail)}[/]" if result.up else f"[red]{escape(result.detail)}[/]"
            providers = (
                ", ".join(p.replace("ExecutionProvider", "") for p in info.execution_providers)
                if info
                else ""
            )
            table.add_row(
                escape(profile.name),
                escape(address),
                status,
                escape(device),
                escape(providers),
                escape(_meters_text(info)),
                escape(profile.description),
            )
            if result.error:
                notes.append(f"[red]{escape(profile.name)}[/]: {escape(result.error)}")
            if result.missing_meters:
                notes.append(
                    f"[yellow]{escape(profile.name)}[/]: the profile expects {', '.join(result.missing_meters)} "
                    "but the agent has no working meter of that kind"
                )
            if info and (verbose or result.missing_meters):
                for meter in info.energy_meters:
                    if not meter.available:
                        notes.append(escape(f"  {profile.name} {meter.name}: {meter.reason}"))
        console.print(table)
        for note in notes:
            console.print(note, soft_wrap=True)
