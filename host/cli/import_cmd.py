"""`drlc-host import`: turn an SB3 / RL Zoo checkpoint into a drlc ONNX artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rich.markup import escape

from device_agent.envs import describe_env
from host.artifacts import store_artifact
from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.export.env_setup import parse_env_options
from host.export.sb3_loader import resolve_checkpoint_path
from host.importer import import_checkpoint
from host.reference import write_reference


def import_command(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, resolve_path=True, help="SB3 .zip, or an RL Zoo folder holding <Env>.zip"
        ),
    ],
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help="Gymnasium env id to run it in; default: the checkpoint's env, newest version"
        ),
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="override the detected algorithm (ppo, trpo, a2c, sac, td3, ddpg, tqc)"),
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            "--env-option",
            help="env option KEY=VALUE for gymnasium.make, repeatable (e.g. use_contact_forces=true); "
            "added to the zoo folder's env_kwargs.yml",
        ),
    ] = None,
    obs_wrapper: Annotated[
        list[str] | None,
        typer.Option(
            "--obs-wrapper",
            help="observation wrapper the policy was trained in, repeatable (time_feature); "
            "default: the zoo config.yml's env_wrapper",
        ),
    ] = None,
    reference: Annotated[
        int,
        typer.Option(
            "--reference",
            min=0,
            help="episodes of the checkpoint's own deterministic predict in the exported env "
            "(seeds 0..N-1, as deploy's default), its reference return; 0: skip",
        ),
    ] = 10,
    home: HomeOption = None,
) -> None:
    """Export a trained policy (with its VecNormalize statistics) as one self-describing ONNX file.

    With no --env, a checkpoint whose own env cannot be built here runs in the newest registered
    version whose spaces fit it (with the options that give back an old version's observation,
    e.g. Ant-v3 -> Ant-v4 with use_contact_forces=True); the choice and its reason are printed.
    """
    with user_errors(), open_workspace(home) as (workspace, db):
        exported = import_checkpoint(
            path,
            env_id=env,
            algo=algo,
            env_options=parse_env_options(env_option or []),
            obs_wrappers=obs_wrapper or None,
            reference_episodes=reference,
        )
        for note in exported.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
        row = store_artifact(
            workspace, db, exported.onnx_bytes, exported.manifest, checkpoint=resolve_checkpoint_path(path)
        )
        m = exported.manifest
        console.print(
            f"imported [bold]{m.name}[/] ({m.algo}, {escape(describe_env(m.env_id, m.env_kwargs, m.obs_wrappers))}, hidden {m.hidden_sizes}, {m.n_params} params, "
            f"obs normalisation {'in graph' if m.obs_normalization else 'none'})"
        )
        console.print(f"sha256 {row.sha256}\n{row.path}")
        if exported.reference is not None:
            console.print(f"reference return: {escape(exported.reference.describe())}")
            write_reference(row.path, exported.reference, exported.published)
        if exported.published is not None:
            p = exported.published
            console.print(
                f"published return: {p.mean:.1f} ± {p.std:.1f} on {p.env_id} ({escape(p.source)}); "
                f"compare a deploy with the reference, which ran in the same env"
            )
