"""`drlc-host clean`: free a target device's storage (models it holds, records of old jobs)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from host.store.artifacts import select_models
from host.cli.common import (
    DEFAULT_TARGET,
    HomeOption,
    ModelsOption,
    ProfilesDirOption,
    TargetOption,
    console,
    open_workspace,
    user_errors,
)
from host.measure.deploy import connect
from host.errors import StoreError
from host.measure.profiles import find_profile, load_profile


def clean_command(
    target: TargetOption = DEFAULT_TARGET,
    models: ModelsOption = None,
    all_models: Annotated[
        bool, typer.Option("--all-models", help="remove every model of this workspace from the device")
    ] = False,
    jobs_older_than: Annotated[
        float | None,
        typer.Option(
            help="delete the device's records of finished jobs that ended more than this many days ago "
            "(0: every finished job); the results database here keeps its copy",
            min=0,
        ),
    ] = None,
    profiles_dir: ProfilesDirOption = None,
    home: HomeOption = None,
) -> None:
    """Remove models (--models, or --all-models) from a target's agent and prune its old job records; local
    results are kept."""
    with user_errors(), open_workspace(home, mujoco=False) as (workspace, db):
        if not models and not all_models and jobs_older_than is None:
            raise StoreError("nothing to clean: give --models NAME, --all-models or --jobs-older-than DAYS")
        profile = load_profile(find_profile(target, profiles_dir))
        chosen = select_models(db, models) if models or all_models else []
        with connect(profile, workspace) as client:
            removed = client.remove_models([m.sha256 for m in chosen]) if chosen else []
            pruned = client.prune_jobs(jobs_older_than) if jobs_older_than is not None else []
        names = {m.sha256: m.name for m in chosen}
        for sha in removed:
            console.print(f"removed {escape(names.get(sha, sha[:12]))} [{sha[:8]}]", highlight=False)
        console.print(
            f"target {escape(profile.name)}: {len(removed)} of {len(chosen)} models removed "
            f"(the rest were not there), {len(pruned)} job records deleted",
            highlight=False,
            soft_wrap=True,
        )
