"""`drlc-host targets`: every target profile, and whether its agent answers (and what it can measure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from device_agent.contract.proto import agent_pb2 as pb
from host.cli.common import HomeOption, ProfilesDirOption, console, user_errors
from host.errors import DrlcError
from host.measure.ping import ping_all
from host.measure.profiles import TargetProfile, list_profiles, load_profile
from host.store.workspace import Workspace


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
        valid = [(path, profile) for path, profile in loaded if isinstance(profile, TargetProfile)]
        answers = ping_all([profile for _, profile in valid], workspace, timeout_s, spawn_local)
        pings = {path: answer for (path, _), answer in zip(valid, answers, strict=True)}
        for path, profile in loaded:
            if isinstance(profile, DrlcError):
                table.add_row(
                    escape(path.stem), "", "[red]invalid profile[/]", "", "", "", escape(str(profile))
                )
                continue
            result = pings[path]
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
