"""Turn an SB3 model (a checkpoint on disk, or one just trained) into drlc's baseline ONNX artifact.

``import_checkpoint`` is what ``drlc-host import`` calls; ``export_model`` is what training calls
right after ``learn()``. Both end in :func:`export_spec`, which builds the manifest and the graph
and, by default, checks the graph against ``model.predict`` before handing it back, so a wrong
export fails here and not as a bad return on a device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import host
from device_agent.contract.manifest import ArtifactManifest, ObsWrapper, sha256_bytes
from device_agent.contract.vocabulary import BASELINE
from host.errors import ExportError
from host.policies.algorithms import UnknownAlgorithmError, algorithm
from host.policies.env_choice import check_spaces, env_spaces
from host.policies.env_setup import EnvSetup
from host.policies.onnx_builder import build_onnx
from host.policies.reference import (
    PublishedReturn,
    ReferenceReturn,
    evaluate_checkpoint,
    find_published_returns,
    published_return,
)
from host.policies.sb3.actor import spec_from_model
from host.policies.sb3.loader import load_checkpoint
from host.policies.sb3.vecnormalize import load_vecnormalize_stats
from host.policies.spec import ObsNorm, PolicySpec

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecNormalize

#: Packages whose versions every manifest records (like SB3's system_info.txt); missing ones are skipped.
VERSIONED_PACKAGES = (
    "torch",
    "stable_baselines3",
    "sb3_contrib",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "gymnasium",
    "mujoco",
    "numpy",
)
#: Largest |ONNX action - SB3 action| accepted by the export check. float32 graphs agree to ~1e-6.
DEFAULT_TOLERANCE = 1e-4
#: Observations the export check compares on, from seeded random-action rollouts of the env.
N_CHECK_OBS = 256


@dataclass(frozen=True, eq=False)
class ExportedPolicy:
    """One exported policy variant: the ONNX bytes, their identity and their passport.

    :param onnx_bytes: the serialized model, manifest inside
    :param sha256: hex sha256 of ``onnx_bytes``: the variant's identity everywhere
    :param manifest: the manifest stored in the model's metadata_props
    :param spec: the actor the graph was built from (compression methods start from it)
    :param notes: things the user should know, e.g. that the env version was changed
    :param max_abs_action_error: largest |ONNX - SB3| action difference found by the export check,
        None when the check was skipped
    :param reference: the checkpoint's own deterministic return in the exported env, when asked for
    :param published: the return published for it (the zoo's benchmark), when one was found
    """

    onnx_bytes: bytes
    sha256: str
    manifest: ArtifactManifest
    spec: PolicySpec
    notes: tuple[str, ...] = ()
    max_abs_action_error: float | None = None
    reference: ReferenceReturn | None = None
    published: PublishedReturn | None = None

    def write(self, path: Path) -> Path:
        """Write the model to ``path`` (a file, or a folder that gets ``<sha256>.onnx``)."""
        target = path / f"{self.sha256}.onnx" if path.is_dir() else path
        target.write_bytes(self.onnx_bytes)
        return target


def package_versions() -> dict[str, str]:
    """Versions of drlc and of the packages that shape an export, for the manifest."""
    versions = {"drlc": host.__version__}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def import_checkpoint(
    path: Path,
    env_id: str | None = None,
    algo: str | None = None,
    *,
    verify: bool = True,
    env_options: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[str | ObsWrapper] | None = None,
    reference_episodes: int = 0,
    reference_seed: int = 0,
) -> ExportedPolicy:
    """Export an SB3 / RL Zoo checkpoint (and its ``vecnormalize.pkl``) as a baseline artifact.

    :param path: the model ``.zip``, or an RL Zoo run folder holding it
    :param env_id: the Gymnasium env to export for; None: the checkpoint's own env, or when that one
        cannot be built or does not fit, the newest registered version whose spaces fit the
        checkpoint (RL Zoo ``Ant-v3`` -> ``Ant-v4`` with contact forces; :func:`choose_env`; the
        returned ``notes`` say so)
    :param algo: the algorithm (``ppo``, ``sac``, ...) when it should not be detected
    :param verify: compare the graph's actions with ``model.predict`` before returning
    :param env_options: env options on top of the zoo folder's (``--env-option``)
    :param obs_wrappers: observation wrappers; None: those the zoo's config.yml names
    :param reference_episodes: evaluate the checkpoint's own ``predict`` for this many episodes
        (seeds ``reference_seed + i``, as a deploy with that seed) in the exported env; 0: skip
    :raises CheckpointError: the checkpoint cannot be read or its env built
    :raises SpaceMismatchError: the checkpoint does not fit the env
    :raises UnsupportedPolicyError: the policy is not a continuous MLP actor
    """
    loaded = load_checkpoint(
        path, env_id=env_id, algo=algo, env_options=env_options, obs_wrappers=obs_wrappers
    )
    source: dict[str, Any] = {
        "origin": "import",
        "checkpoint_name": loaded.checkpoint.name,
        "checkpoint_sha256": loaded.checkpoint_sha256,
    }
    if loaded.trained_env_id is not None:
        source["trained_env_id"] = loaded.trained_env_id
    if loaded.sb3_version is not None:
        source["sb3_version"] = loaded.sb3_version
    if loaded.vecnormalize is not None:
        source["vecnormalize_name"] = loaded.vecnormalize.name
        source["vecnormalize_sha256"] = loaded.vecnormalize_sha256
    spec = spec_from_model(loaded.model, loaded.obs_norm)
    exported = export_spec(
        spec,
        env=EnvSetup(loaded.env_id, dict(loaded.env_kwargs), loaded.obs_wrappers),
        algo=loaded.algo,
        source=source,
        training_seed=loaded.training_seed,
        model=loaded.model if verify else None,
        notes=loaded.notes,
    )
    published = None
    published_csv = find_published_returns(loaded.checkpoint)
    if published_csv is not None and loaded.trained_env_id is not None:
        published = published_return(published_csv, loaded.algo, loaded.trained_env_id)
    reference = (
        evaluate_checkpoint(loaded, reference_episodes, seed=reference_seed)
        if reference_episodes > 0
        else None
    )
    return dataclasses.replace(exported, reference=reference, published=published)


def export_model(
    model: BaseAlgorithm,
    obs_norm: ObsNorm | VecNormalize | None,
    env_id: str,
    algo: str | None = None,
    source: dict[str, Any] | None = None,
    training_seed: int | None = None,
    *,
    verify: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
) -> ExportedPolicy:
    """Export an in-memory SB3 model, e.g. right after training.

    :param model: the trained model
    :param obs_norm: the VecNormalize wrapper it was trained under (or its statistics); None: the
        model's own env's VecNormalize if it has one, else raw observations
    :param env_id: the Gymnasium env the policy acts in; its spaces must match the model's
    :param algo: lower-case algorithm name; None: from the model's class
    :param source: provenance for the manifest; default ``{"origin": "train"}``
    :param training_seed: the seed the model was trained with
    :param verify: compare the graph's actions with ``model.predict`` before returning
    :param env_kwargs: the env options it was trained with (recorded in the manifest)
    """
    from stable_baselines3.common.vec_env import VecNormalize  # SB3 (torch): loaded on use

    notes: tuple[str, ...] = ()
    if obs_norm is None and model.get_vec_normalize_env() is not None:
        # The policy was trained on normalised observations: a graph without them would be wrong.
        obs_norm = model.get_vec_normalize_env()
        notes = ("obs_norm was None but the model's env is a VecNormalize; its statistics are baked in",)
    stats = load_vecnormalize_stats(obs_norm) if isinstance(obs_norm, VecNormalize) else obs_norm
    name = (algo or type(model).__name__).lower()
    try:
        algorithm(name)
    except UnknownAlgorithmError as exc:
        raise ExportError(str(exc)) from None
    setup = EnvSetup(env_id, dict(env_kwargs or {}))
    env = env_spaces(setup)
    check_spaces(f"the {type(model).__name__} model", model.observation_space, model.action_space, env)
    return export_spec(
        spec_from_model(model, stats),
        env=setup,
        algo=name,
        source=source if source is not None else {"origin": "train"},
        training_seed=training_seed,
        model=model if verify else None,
        notes=notes,
    )


def baseline_manifest(
    spec: PolicySpec,
    *,
    env_id: str,
    algo: str,
    source: dict[str, Any],
    training_seed: int | None,
    env: EnvSetup | None = None,
) -> ArtifactManifest:
    """The manifest of a baseline (uncompressed) variant of ``spec``.

    :param env: the env options and observation wrappers, when the policy needs any
    """
    return ArtifactManifest(
        name=f"{algo}-{env_id}",
        algo=algo,
        env_id=env_id,
        env_kwargs=dict(env.env_kwargs) if env is not None else {},
        obs_wrappers=list(env.obs_wrappers) if env is not None else [],
        observation_shape=[spec.obs_dim],
        action_shape=[spec.act_dim],
        action_low=[float(x) for x in spec.action_low],
        action_high=[float(x) for x in spec.action_high],
        hidden_sizes=spec.hidden_sizes,
        activation=spec.activation,
        action_postprocess=spec.postprocess,
        obs_normalization=spec.obs_norm.to_manifest() if spec.obs_norm is not None else None,
        method=BASELINE,
        source=source,
        n_params=spec.n_params,
        training_seed=training_seed,
        versions=package_versions(),
    )


def export_spec(
    spec: PolicySpec,
    *,
    env: EnvSetup | str,
    algo: str,
    source: dict[str, Any],
    training_seed: int | None = None,
    model: BaseAlgorithm | None = None,
    notes: tuple[str, ...] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    check_obs: np.ndarray | None = None,
) -> ExportedPolicy:
    """Build the baseline artifact of ``spec`` and, given ``model``, check it against ``model.predict``.

    :param env: the env (id, options, wrappers) the policy runs in; the check samples it
    :param check_obs: raw observations to check on instead of sampling the env (e.g. logged states)
    :raises ExportError: when the graph's actions differ from the model's by more than ``tolerance``
    """
    setup = env if isinstance(env, EnvSetup) else EnvSetup(env)
    manifest = baseline_manifest(
        spec, env_id=setup.env_id, algo=algo, source=source, training_seed=training_seed, env=setup
    )
    onnx_bytes = build_onnx(spec, manifest)
    error = None
    if model is not None:
        obs = check_obs if check_obs is not None else sample_observations(setup, N_CHECK_OBS, seed=0)
        errors = action_errors(onnx_bytes, model, spec.obs_norm, obs)
        error = errors.graph
        if not error <= tolerance:
            raise ExportError(
                f"the exported graph's actions differ from {type(model).__name__}.predict by up to {error:.3g} "
                f"(tolerance {tolerance:g}); this is a drlc bug for this policy type, please report it"
            )
        if errors.float32_normalisation > tolerance:
            notes = (*notes, errors.float32_note())
    return ExportedPolicy(
        onnx_bytes=onnx_bytes,
        sha256=sha256_bytes(onnx_bytes),
        manifest=manifest,
        spec=spec,
        notes=notes,
        max_abs_action_error=error,
    )


def sample_observations(env_id: str | EnvSetup, n: int, seed: int = 0) -> np.ndarray:
    """``n`` raw observations from seeded uniform-random-action rollouts of the env, float32 ``[n, obs_dim]``.

    Random actions reach states a trained policy also reaches (falls, odd poses), which is what an
    export check needs; reproducible for a given seed. The env is built as the agent builds it
    (options, observation wrappers).
    """
    setup = env_id if isinstance(env_id, EnvSetup) else EnvSetup(env_id)
    env = setup.build()
    try:
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        rows = []
        for _ in range(n):
            rows.append(np.asarray(obs, dtype=np.float64).reshape(-1))
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                obs, _ = env.reset()
        return np.stack(rows).astype(np.float32)
    finally:
        env.close()


@dataclass(frozen=True)
class ActionErrors:
    """What an export check found, split by cause.

    :param graph: largest |ONNX action - SB3 action| when both see the same float32-normalised
        observations: the graph's own error, which must stay within the tolerance
    :param float32_normalisation: largest |SB3 action on float32-normalised - on float64-normalised
        observations|: what normalising in float32 (as the graph, and any float32 runtime, does)
        costs this policy; zero without a normaliser
    :param smallest_std: the smallest running std among the normalised features (None without one)
    """

    graph: float
    float32_normalisation: float
    smallest_std: float | None

    def float32_note(self) -> str:
        return (
            f"float32 observation normalisation moves this policy's actions by up to "
            f"{self.float32_normalisation:.2g} against SB3's float64 normalisation (smallest feature std "
            f"{self.smallest_std:.2g}); the graph itself matches the network to {self.graph:.2g}. Every "
            "float32 runtime sees this; the agent's measured return shows whether it matters"
        )


def action_errors(
    onnx_bytes: bytes, model: BaseAlgorithm, obs_norm: ObsNorm | None, obs: np.ndarray
) -> ActionErrors:
    """Compare the graph's actions with ``model.predict(deterministic=True)`` over raw ``obs``.

    The graph gets raw float32 observations. The model gets them normalised twice: in float32 as
    the graph does it (the difference is the graph's error) and in float64 as VecNormalize does it
    (the difference between the model's two answers is what float32 normalisation costs).
    """
    import onnxruntime as ort  # heavy: loaded only to check a graph, not when the CLI starts

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_actions = session.run(None, {session.get_inputs()[0].name: obs.astype(np.float32)})[0]
    if obs_norm is None:
        sb3_actions, _ = model.predict(obs, deterministic=True)
        return ActionErrors(float(np.max(np.abs(onnx_actions - sb3_actions))), 0.0, None)
    as_graph, _ = model.predict(obs_norm.normalize_float32(obs), deterministic=True)
    as_vecnormalize, _ = model.predict(obs_norm.normalize(obs.astype(np.float64)), deterministic=True)
    return ActionErrors(
        graph=float(np.max(np.abs(onnx_actions - as_graph))),
        float32_normalisation=float(np.max(np.abs(as_graph - as_vecnormalize))),
        smallest_std=float(np.sqrt(np.min(obs_norm.var))),
    )
