"""Import policies from outside SB3: ONNX actors exported by other tools, and CleanRL actors.

Both become ordinary drlc baselines (the same hand-built graph, the same manifest), so every
compression works on them, and both are checked before they are stored: the drlc graph's actions
against the original's (the source ONNX file run by ONNX Runtime, then the declared
post-processing; or CleanRL's own forward pass) on observations sampled from the env.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.contract.manifest import ObsWrapper, sha256_bytes, sha256_file
from host.errors import ExportError, SpaceMismatchError
from host.policies.cleanrl import cleanrl_actions, read_cleanrl
from host.policies.env_choice import EnvSpaces, env_spaces
from host.policies.env_setup import EnvSetup, wrapper_by_name
from host.policies.foreign_onnx import ActionSquash, foreign_spec, read_foreign_actor, run_original, squashed
from host.policies.importer import N_CHECK_OBS, ExportedPolicy, export_spec, sample_observations
from host.policies.spec import PolicySpec

#: Largest |drlc - original| action difference accepted, relative to the actions' magnitude (>= 1).
PARITY_TOLERANCE = 1e-4


def _env(
    env_id: str, env_options: Mapping[str, Any] | None, obs_wrappers: Sequence[str | ObsWrapper] | None
) -> tuple[EnvSetup, EnvSpaces]:
    wrappers = tuple(
        w if isinstance(w, ObsWrapper) else wrapper_by_name(w, env_id) for w in obs_wrappers or ()
    )
    setup = EnvSetup(env_id, dict(env_options or {}), wrappers)
    return setup, env_spaces(setup)


def _check_dims(where: str, spec_obs: int, spec_act: int, env: EnvSpaces) -> None:
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    if (spec_obs,) != obs_shape or (spec_act,) != act_shape:
        raise SpaceMismatchError(
            f"{where} maps {spec_obs} observations to {spec_act} actions, but {env.describe()} has observation "
            f"{obs_shape} and action {act_shape}; pass --env (and --env-option) for the env it was trained on"
        )


def _parity(where: str, spec: PolicySpec, onnx_bytes: bytes, expected: np.ndarray, obs: np.ndarray) -> float:
    import onnxruntime as ort  # heavy: loaded only to check a graph, not when the CLI starts

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: obs.astype(np.float32)})[0]
    error = float(np.max(np.abs(got - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not error <= PARITY_TOLERANCE * scale:
        raise ExportError(
            f"drlc's graph of {where} differs from the original by up to {error:.3g} (tolerance "
            f"{PARITY_TOLERANCE * scale:.3g}); the file's post-processing may not be --action-squash {spec.postprocess}"
        )
    return error


def _finish(exported: ExportedPolicy, error: float, notes: Sequence[str]) -> ExportedPolicy:
    return dataclasses.replace(exported, max_abs_action_error=error, notes=(*exported.notes, *notes))


def import_onnx_actor(
    path: Path,
    env_id: str,
    squash: ActionSquash,
    *,
    algo: str | None = None,
    output: str | None = None,
    env_options: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[str | ObsWrapper] | None = None,
) -> ExportedPolicy:
    """An ONNX MLP actor exported by another tool, as a drlc baseline checked against the original file.

    :param squash: what the tool did with the graph's output (``tanh``, ``clip``, ``none``)
    :param algo: the algorithm that trained it, for reports; default ``onnx``
    :param output: the graph output that is the action; default the first
    """
    data = Path(path).read_bytes()
    actor = read_foreign_actor(data, output)
    setup, env = _env(env_id, env_options, obs_wrappers)
    _check_dims(path.name, actor.obs_dim, actor.act_dim, env)
    spec = foreign_spec(actor, squash, env.action_space.low, env.action_space.high)  # type: ignore[attr-defined]
    source = {
        "origin": "onnx-import",
        "file_name": path.name,
        "file_sha256": sha256_bytes(data),
        "action_output": actor.output_name,
        "action_squash": squash,
    }
    exported = export_spec(spec, env=setup, algo=(algo or "onnx").lower(), source=source)
    obs = sample_observations(setup, N_CHECK_OBS, seed=0)
    expected = squashed(run_original(data, actor, obs), actor, spec)
    error = _parity(path.name, spec, exported.onnx_bytes, expected, obs)
    notes = []
    if actor.obs_norm is not None:
        notes.append(f"{path.name} normalises observations in its graph: kept in front of the actor")
    if actor.trailing:
        notes.append(
            f"{path.name} ends with {' -> '.join(op for op, _ in actor.trailing)}, read as the action squash"
        )
    return _finish(exported, error, notes)


def import_cleanrl(
    path: Path,
    env_id: str,
    *,
    algo: str | None = None,
    env_options: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[str | ObsWrapper] | None = None,
) -> ExportedPolicy:
    """A CleanRL ``*.cleanrl_model`` actor, as a drlc baseline checked against the script's forward pass."""
    setup, env = _env(env_id, env_options, obs_wrappers)
    low, high = env.action_space.low, env.action_space.high  # type: ignore[attr-defined]
    actor = read_cleanrl(Path(path), low, high, algo=algo.lower() if algo else None)
    _check_dims(path.name, actor.spec.obs_dim, actor.spec.act_dim, env)
    source = {
        "origin": "cleanrl-import",
        "file_name": path.name,
        "file_sha256": sha256_file(Path(path)),
        "script": actor.script,
    }
    exported = export_spec(actor.spec, env=setup, algo=actor.algo, source=source)
    obs = sample_observations(setup, N_CHECK_OBS, seed=0)
    error = _parity(path.name, actor.spec, exported.onnx_bytes, cleanrl_actions(actor, obs), obs)
    return _finish(exported, error, [f"read as CleanRL's {actor.script} actor", *actor.notes])
