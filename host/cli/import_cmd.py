"""`drlc-host import`: turn an SB3 / RL Zoo checkpoint into a drlc ONNX artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from device_agent.contract.envs import describe_env
from device_agent.contract.vocabulary import ALGORITHMS
from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.errors import CheckpointError
from host.policies.cleanrl import CLEANRL_SUFFIX
from host.policies.env_setup import parse_env_options
from host.policies.foreign import import_cleanrl, import_onnx_actor
from host.policies.foreign_onnx import ACTION_SQUASHES
from host.policies.importer import ExportedPolicy, import_checkpoint
from host.policies.reference import write_reference
from host.policies.sb3.files import resolve_checkpoint_path
from host.store.artifacts import store_artifact


def import_command(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            resolve_path=True,
            help="SB3 .zip, an RL Zoo folder holding <Env>.zip, an ONNX actor (.onnx) or a CleanRL "
            "actor (.cleanrl_model)",
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
        typer.Option("--algo", help=f"override the detected algorithm ({', '.join(ALGORITHMS)})"),
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
    action_squash: Annotated[
        str | None,
        typer.Option(
            "--action-squash",
            help="for an .onnx actor: what its tool did with the graph's output: tanh (rescaled to the "
            "env's bounds), clip (to the bounds) or none",
        ),
    ] = None,
    onnx_output: Annotated[
        str | None, typer.Option("--onnx-output", help="for an .onnx actor: the output that is the action")
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
        exported = _import(
            path, env, algo, env_option or [], obs_wrapper, action_squash, onnx_output, reference
        )
        for note in exported.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
        row = store_artifact(
            workspace,
            db,
            exported.onnx_bytes,
            exported.manifest,
            checkpoint=resolve_checkpoint_path(path) if _is_sb3(path) else None,
        )
        m = exported.manifest
        console.print(
            f"imported [bold]{escape(m.name)}[/] ({m.algo}, {escape(describe_env(m.env_id, m.env_kwargs, m.obs_wrappers))}, hidden {m.hidden_sizes}, {m.n_params} params, "
            f"obs normalisation {'in graph' if m.obs_normalization else 'none'})"
        )
        console.print(f"sha256 {row.sha256}\n{row.path}")
        if exported.reference is not None:
            console.print(f"reference return: {escape(exported.reference.describe())}")
            write_reference(Path(row.path), exported.reference, exported.published)
        if exported.published is not None:
            p = exported.published
            console.print(
                f"published return: {p.mean:.1f} ± {p.std:.1f} on {p.env_id} ({escape(p.source)}); "
                f"compare a deploy with the reference, which ran in the same env"
            )


def _is_sb3(path: Path) -> bool:
    return path.suffix not in (".onnx", CLEANRL_SUFFIX)


def _import(
    path: Path,
    env: str | None,
    algo: str | None,
    env_option: list[str],
    obs_wrapper: list[str] | None,
    action_squash: str | None,
    onnx_output: str | None,
    reference: int,
) -> ExportedPolicy:
    """Dispatch on the file kind; options that do not apply to it are refused, not ignored."""
    options = parse_env_options(env_option)
    if _is_sb3(path):
        if action_squash or onnx_output:
            raise CheckpointError(
                "--action-squash and --onnx-output are for .onnx actors, not SB3 checkpoints"
            )
        return import_checkpoint(
            path,
            env_id=env,
            algo=algo,
            env_options=options,
            obs_wrappers=obs_wrapper or None,
            reference_episodes=reference,
        )
    kind = "an ONNX actor" if path.suffix == ".onnx" else "a CleanRL actor"
    if env is None:
        raise CheckpointError(
            f"{path.name} is {kind}, which does not say its env: pass --env, e.g. Hopper-v5"
        )
    if path.suffix == ".onnx":
        if action_squash not in ACTION_SQUASHES:
            raise CheckpointError(
                f"{path.name} is an ONNX actor: pass --action-squash tanh|clip|none, what its tool did with the "
                f"graph's output (SAC/TD3: tanh, PPO: clip)"
            )
        return import_onnx_actor(
            path,
            env,
            action_squash,  # type: ignore[arg-type]
            algo=algo,
            output=onnx_output,
            env_options=options,
            obs_wrappers=obs_wrapper,
        )
    if action_squash or onnx_output:
        raise CheckpointError("--action-squash and --onnx-output are for .onnx actors, not CleanRL actors")
    return import_cleanrl(path, env, algo=algo, env_options=options, obs_wrappers=obs_wrapper)
