"""Load Stable-Baselines3 / RL Zoo checkpoints and describe their actor as a :class:`PolicySpec`.

Works on SB3 2.x with Gymnasium, including checkpoints saved by SB3 1.x under the old ``gym``
package (the RL Zoo's published agents), without needing ``gym`` installed:

- the model zip pickles old ``gym`` spaces and Python-3.7 lambdas (learning-rate and clip-range
  schedules). They are replaced on load through SB3's ``custom_objects``: the spaces come from the
  Gymnasium env, the schedules become constants (they only matter for training). Before that, the
  checkpoint's own spaces are read with a permissive unpickler, so a checkpoint for another env is
  refused with both shapes named instead of failing deep inside torch.
- ``vecnormalize.pkl`` pickles a whole ``VecNormalize`` with old ``gym`` classes inside. It is read
  with a restricted unpickler that builds inert stubs for every class but numpy arrays, and only
  the observation statistics are kept.

The RL Zoo layout is ``<algo>/<Env>/<Env>.zip`` with ``<algo>/<Env>/<Env>/{args.yml, config.yml,
vecnormalize.pkl}``; a bare ``.zip`` with a ``vecnormalize.pkl`` beside it works too.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import logging
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from device_agent.contract.manifest import ObsWrapper, sha256_file
from host.errors import CheckpointError, SpaceMismatchError, UnsupportedPolicyError
from host.export.env_choice import (
    EnvSpaces,
    SpaceInfo,
    choose_env,
)
from host.export.env_setup import wrapper_by_name, wrappers_from_zoo, zoo_env_options
from host.export.zoo_files import zoo_yaml
from host.export.policy_spec import ACTIVATIONS, ActionPostprocess, DenseLayer, ObsNorm, PolicySpec

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

logger = logging.getLogger(__name__)

#: Algorithms drlc exports, by their lower-case SB3 name, with the class that loads them.
ALGOS: Mapping[str, str] = {
    "a2c": "stable_baselines3:A2C",
    "ddpg": "stable_baselines3:DDPG",
    "ppo": "stable_baselines3:PPO",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    "tqc": "sb3_contrib:TQC",
    "trpo": "sb3_contrib:TRPO",
}

# Algorithms that share a policy class load each other's checkpoints; anything across families fails.
_FAMILIES: Mapping[str, str] = {
    "a2c": "actor_critic",
    "ppo": "actor_critic",
    "trpo": "actor_critic",
    "sac": "sac",
    "td3": "td3",
    "ddpg": "td3",
    "tqc": "tqc",
}

# Policy modules of algorithms drlc cannot export, with the reason a user gets.
_UNSUPPORTED_POLICY_MODULES: Mapping[str, str] = {
    "stable_baselines3.dqn": "DQN has a discrete action space",
    "sb3_contrib.qrdqn": "QR-DQN has a discrete action space",
    "sb3_contrib.ppo_mask": "MaskablePPO has a discrete action space",
    "sb3_contrib.ppo_recurrent": "RecurrentPPO's LSTM actor carries state between steps",
    "sb3_contrib.ars": "ARS uses a linear policy that drlc does not export",
    "sb3_contrib.crossq": "CrossQ is not among the exported algorithms",
}

VECNORMALIZE_NAMES = ("vecnormalize.pkl", "vec_normalize.pkl")
_ENV_ID_RE = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")
_RUN_SUFFIX_RE = re.compile(r"_\d+$")


def _constant_zero(_progress_remaining: float) -> float:
    """Stands in for a pickled schedule: the value only matters for training, not for export."""
    return 0.0


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 / sb3-contrib class for ``algo`` (lower case, e.g. ``"sac"``)."""
    try:
        module_name, class_name = ALGOS[algo].split(":")
    except KeyError:
        raise CheckpointError(f"unknown algorithm {algo!r}; drlc exports: {', '.join(ALGOS)}") from None
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# A permissive, inert unpickler for foreign pickles (old gym spaces, VecNormalize)
# --------------------------------------------------------------------------------------------


class _Stub:
    """Inert stand-in for a class the unpickler will not import: it only records its state.

    Nothing of the original class runs, so an old ``gym`` class (or anything else a pickle names)
    can neither fail to import nor execute code.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_stub_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict | type(None)):
            state, slots = state
            self.__dict__.update(slots or {})
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_stub_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_stub_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).extend(values)


def _numpy_global(module: str, name: str) -> Any:
    """The numpy functions that rebuild arrays and dtypes; numpy 1.x's ``numpy.core`` maps to ``numpy._core``."""
    if module.startswith("numpy.core"):
        try:
            return getattr(importlib.import_module("numpy._core" + module[len("numpy.core") :]), name)
        except ImportError:  # numpy < 2
            pass
    return getattr(importlib.import_module(module), name)


_NUMPY_GLOBALS = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class _PermissiveUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays for real and every other class as a :class:`_Stub`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(module, name)
        return type(name, (_Stub,), {"__module__": f"drlc_stub.{module}"})


# What a malformed or foreign pickle can raise while being read by the permissive unpickler.
_PICKLE_ERRORS = (
    OSError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)


def _permissive_loads(data: bytes) -> Any:
    return _PermissiveUnpickler(io.BytesIO(data)).load()


# --------------------------------------------------------------------------------------------
# VecNormalize statistics
# --------------------------------------------------------------------------------------------


def _obs_norm_from(vec_normalize: Any, where: str) -> ObsNorm | None:
    """Read the observation statistics from a VecNormalize (real or stub); None if obs are not normalised."""
    if not getattr(vec_normalize, "norm_obs", True):
        return None
    obs_rms = getattr(vec_normalize, "obs_rms", None)
    if isinstance(obs_rms, dict) or getattr(vec_normalize, "norm_obs_keys", None):
        raise UnsupportedPolicyError(
            f"{where} normalises a dict observation space; drlc exports flat (Box) observations only"
        )
    try:
        mean = np.asarray(obs_rms.mean, dtype=np.float64)  # type: ignore[union-attr]
        var = np.asarray(obs_rms.var, dtype=np.float64)  # type: ignore[union-attr]
        clip_obs = float(vec_normalize.clip_obs)
        epsilon = float(vec_normalize.epsilon)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{where} does not hold VecNormalize statistics (obs_rms.mean, obs_rms.var, clip_obs, epsilon): {exc}"
        ) from exc
    return ObsNorm(mean=mean.reshape(-1), var=var.reshape(-1), clip_obs=clip_obs, epsilon=epsilon)


def load_vecnormalize_stats(vec_normalize: VecNormalize) -> ObsNorm | None:
    """The observation statistics of an in-memory SB3 ``VecNormalize`` (e.g. right after training).

    :return: None when the wrapper does not normalise observations (``norm_obs=False``)
    """
    return _obs_norm_from(vec_normalize, "the VecNormalize wrapper")


def read_vecnormalize(path: Path) -> ObsNorm | None:
    """The observation statistics stored in a ``vecnormalize.pkl``, without importing ``gym``.

    The pickle holds a whole VecNormalize; only ``obs_rms.mean``, ``obs_rms.var``, ``clip_obs``,
    ``epsilon`` and ``norm_obs`` are read, and no class from the pickle is imported or run.

    :return: None when the file says observations were not normalised (``norm_obs=False``)
    """
    try:
        obj = _permissive_loads(path.read_bytes())
    except _PICKLE_ERRORS as exc:
        raise CheckpointError(f"cannot read {path.name} as a VecNormalize pickle: {exc}") from exc
    return _obs_norm_from(obj, path.name)


# --------------------------------------------------------------------------------------------
# Finding the files of a checkpoint
# --------------------------------------------------------------------------------------------


def resolve_checkpoint_path(path: Path) -> Path:
    """The model zip for ``path``: the zip itself, or the one zip of an RL Zoo run folder.

    A folder ``<Env>/`` resolves to ``<Env>/<Env>.zip`` (the zoo's final model) when present,
    else to its only ``.zip``.
    """
    if path.is_file():
        return path
    if path.is_dir():
        named = path / f"{path.name}.zip"
        if named.is_file():
            return named
        zips = sorted(path.glob("*.zip"))
        if len(zips) == 1:
            return zips[0]
        found = ", ".join(z.name for z in zips) or "none"
        raise CheckpointError(f"{path} holds {len(zips)} .zip checkpoints ({found}); pass the one to import")
    if path.with_suffix(".zip").is_file():
        return path.with_suffix(".zip")
    raise CheckpointError(f"no checkpoint at {path}: expected an SB3 .zip or an RL Zoo run folder")


def _config_dirs(checkpoint: Path) -> list[Path]:
    """Folders that may hold the zoo's args.yml / config.yml / vecnormalize.pkl for ``checkpoint``."""
    parent = checkpoint.parent
    dirs = [parent / checkpoint.stem]
    # A zoo run folder ``<Env>_1/`` keeps best_model.zip beside ``<Env>/``: take the one subfolder.
    subdirs = [
        d
        for d in sorted(parent.iterdir())
        if d.is_dir() and any((d / n).is_file() for n in ("args.yml", "config.yml"))
    ]
    if len(subdirs) == 1 and subdirs[0] not in dirs:
        dirs.append(subdirs[0])
    return [d for d in dirs if d.is_dir()]


def find_vecnormalize(checkpoint: Path) -> Path | None:
    """The ``vecnormalize.pkl`` that goes with ``checkpoint``, if any.

    Looked for in the zoo's ``<dir>/<stem>/`` folder first, then beside the zip.
    """
    for folder in [*_config_dirs(checkpoint), checkpoint.parent]:
        for name in VECNORMALIZE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def read_zoo_args(checkpoint: Path) -> dict[str, Any]:
    """The zoo's ``args.yml`` for ``checkpoint`` (algo, env, seed, ...), or ``{}`` when there is none."""
    for folder in _config_dirs(checkpoint):
        if (folder / "args.yml").is_file():
            loaded = zoo_yaml(folder / "args.yml")
            return loaded if isinstance(loaded, dict) else {}
    return {}


def guess_env_id(checkpoint: Path) -> str | None:
    """The env a checkpoint was trained on, from the zoo's args.yml or its folder and file names."""
    env = read_zoo_args(checkpoint).get("env")
    if isinstance(env, str) and env:
        return env
    candidates = [d.name for d in _config_dirs(checkpoint)]
    candidates += [_RUN_SUFFIX_RE.sub("", checkpoint.parent.name), checkpoint.stem]
    return next((c for c in candidates if _ENV_ID_RE.match(c)), None)


# --------------------------------------------------------------------------------------------
# Checkpoint metadata
# --------------------------------------------------------------------------------------------


def _space_info(entry: Any) -> SpaceInfo | None:
    """Decode a space entry of the checkpoint's ``data`` JSON with the permissive unpickler."""
    if not isinstance(entry, dict):
        return None
    type_str = str(entry.get(":type:", ""))
    kind = type_str.rsplit(".", 1)[-1].rstrip("'>") or "unknown"
    obj: Any = None
    if ":serialized:" in entry:
        try:
            obj = _permissive_loads(base64.b64decode(entry[":serialized:"]))
        except _PICKLE_ERRORS:
            obj = None
    state = getattr(obj, "__dict__", {})
    shape = state.get("_shape", state.get("shape", entry.get("_shape", entry.get("shape"))))
    if kind == "Discrete" and shape is None:
        shape = ()
    try:
        shape = tuple(int(s) for s in shape) if shape is not None else None
    except (TypeError, ValueError):
        shape = None
    low, high = state.get("low"), state.get("high")
    return SpaceInfo(
        kind=kind,
        shape=shape,
        low=np.asarray(low) if isinstance(low, np.ndarray) else None,
        high=np.asarray(high) if isinstance(high, np.ndarray) else None,
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """What can be read from an SB3 zip without loading it."""

    data: dict[str, Any]
    sb3_version: str | None
    policy_module: str
    observation_space: SpaceInfo | None
    action_space: SpaceInfo | None

    @property
    def seed(self) -> int | None:
        seed = self.data.get("seed")
        return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None


def read_checkpoint_info(checkpoint: Path) -> CheckpointInfo:
    """Read the ``data`` JSON of an SB3 zip (never unpickling anything but inert space stubs)."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            names = set(archive.namelist())
            if "data" not in names:
                raise CheckpointError(
                    f"{checkpoint.name} is a zip but not an SB3 checkpoint (no 'data' entry)"
                )
            data = json.loads(archive.read("data"))
            version = (
                archive.read("_stable_baselines3_version").decode().strip()
                if ("_stable_baselines3_version" in names)
                else None
            )
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{checkpoint.name} is not a readable SB3 checkpoint zip: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{checkpoint.name}: the 'data' entry is not valid JSON: {exc}") from exc
    policy_class = data.get("policy_class")
    module = policy_class.get("__module__", "") if isinstance(policy_class, dict) else ""
    return CheckpointInfo(
        data=data,
        sb3_version=version,
        policy_module=module,
        observation_space=_space_info(data.get("observation_space")),
        action_space=_space_info(data.get("action_space")),
    )


def detect_algo(info: CheckpointInfo) -> str:
    """The algorithm that saved a checkpoint, from its policy class module and hyperparameters.

    A2C, PPO and TRPO share ``ActorCriticPolicy`` and are told apart by their saved attributes
    (``clip_range`` for PPO, ``cg_max_steps`` for TRPO); DDPG is TD3 with ``policy_delay=1`` and
    ``target_noise_clip=0``.
    """
    module, data = info.policy_module, info.data
    for prefix, reason in _UNSUPPORTED_POLICY_MODULES.items():
        if module.startswith(prefix):
            raise UnsupportedPolicyError(f"cannot export this checkpoint: {reason} (policy module {module})")
    if module.startswith("stable_baselines3.sac"):
        return "sac"
    if module.startswith("sb3_contrib.tqc"):
        return "tqc"
    if module.startswith("stable_baselines3.td3"):
        # DDPG is TD3 with policy_delay=1 and target_noise_clip=0 (its target_policy_noise is left at 0.1).
        is_ddpg = data.get("policy_delay") == 1 and data.get("target_noise_clip") in (0, 0.0)
        return "ddpg" if is_ddpg else "td3"
    if module.startswith("stable_baselines3.common.policies") or module.startswith("sb3_contrib.common"):
        if "cg_max_steps" in data:
            return "trpo"
        if "clip_range" in data:
            return "ppo"
        if "n_steps" in data:
            return "a2c"
    raise CheckpointError(
        f"cannot tell which algorithm saved this checkpoint (policy module {module or 'missing'!r}); "
        f"pass algo, one of: {', '.join(ALGOS)}"
    )


def _choose_algo(checkpoint: Path, info: CheckpointInfo, algo: str | None) -> str:
    """The explicit ``algo``, else the zoo's args.yml / folder name, else detection; checked against the data."""
    detected = detect_algo(info)
    hinted = algo or read_zoo_args(checkpoint).get("algo")
    if not hinted and checkpoint.parent.parent.name in ALGOS:
        hinted = checkpoint.parent.parent.name
    chosen = str(hinted).lower() if hinted else detected
    if chosen not in ALGOS:
        raise CheckpointError(f"unknown algorithm {chosen!r}; drlc exports: {', '.join(ALGOS)}")
    if _FAMILIES[chosen] != _FAMILIES[detected]:
        raise CheckpointError(
            f"{checkpoint.name} was saved by {detected.upper()} (policy module {info.policy_module}), "
            f"which {chosen.upper()} cannot load; pass algo={detected!r} or leave it out"
        )
    return chosen


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedCheckpoint:
    """An SB3 model loaded for export, with what is known about where it came from.

    :param model: the SB3 model, on CPU, with the env's Gymnasium spaces
    :param algo: lower-case algorithm name
    :param env_id: the Gymnasium env the model is exported for (buildable here)
    :param trained_env_id: the env the checkpoint names (zoo folder / args.yml), if any
    :param obs_norm: VecNormalize statistics, None when the policy sees raw observations
    :param checkpoint: the model zip
    :param checkpoint_sha256: sha256 of the model zip
    :param vecnormalize: the ``vecnormalize.pkl`` used, if any
    :param vecnormalize_sha256: its sha256
    :param training_seed: the seed the checkpoint was trained with, when it stores one
    :param sb3_version: the SB3 version that saved the checkpoint
    :param notes: things the user should know (e.g. the env version was changed)
    """

    model: BaseAlgorithm
    algo: str
    env_id: str
    trained_env_id: str | None
    obs_norm: ObsNorm | None
    checkpoint: Path
    checkpoint_sha256: str
    vecnormalize: Path | None
    vecnormalize_sha256: str | None
    training_seed: int | None
    sb3_version: str | None
    notes: tuple[str, ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    obs_wrappers: tuple[ObsWrapper, ...] = ()


def load_checkpoint(
    path: Path,
    env_id: str | None = None,
    algo: str | None = None,
    env_options: Mapping[str, Any] | None = None,
    obs_wrappers: Sequence[str | ObsWrapper] | None = None,
) -> LoadedCheckpoint:
    """Load an SB3 / RL Zoo checkpoint for export, with its VecNormalize statistics.

    :param path: the model ``.zip``, or an RL Zoo run folder holding it
    :param env_id: the Gymnasium env to export for; None: the env the checkpoint names, or the newest
        registered version whose spaces fit the checkpoint (:func:`host.export.env_choice.choose_env`)
    :param algo: the algorithm, when detection from the checkpoint is not wanted
    :param env_options: env options (``gymnasium.make`` kwargs) on top of the zoo folder's
        ``env_kwargs.yml`` / ``args.yml`` ones
    :param obs_wrappers: observation wrappers (names or set-up wrappers); None: the ones the zoo's
        ``config.yml`` names as ``env_wrapper``
    :raises CheckpointError: for unreadable files, unknown algorithms, envs that cannot be built
    :raises SpaceMismatchError: when the checkpoint's spaces do not fit the env
    :raises UnsupportedPolicyError: for discrete, recurrent or image policies
    """
    checkpoint = resolve_checkpoint_path(Path(path))
    info = read_checkpoint_info(checkpoint)
    chosen_algo = _choose_algo(checkpoint, info, algo.lower() if algo else None)

    trained_env_id = guess_env_id(checkpoint)
    notes: list[str] = []
    zoo_kwargs, zoo_wrapper = zoo_env_options(_config_dirs(checkpoint))
    kwargs = {**zoo_kwargs, **(env_options or {})}
    horizon_env = trained_env_id or env_id or ""
    if obs_wrappers is None:
        wrappers = wrappers_from_zoo(zoo_wrapper, horizon_env)
        if wrappers:
            names = ", ".join(w.name for w in wrappers)
            notes.append(
                f"the zoo's config.yml says it was trained inside {zoo_wrapper}: the env gets {names}"
            )
    else:
        wrappers = tuple(
            w if isinstance(w, ObsWrapper) else wrapper_by_name(w, horizon_env) for w in obs_wrappers
        )
    if zoo_kwargs:
        notes.append(f"env options from the zoo folder: {zoo_kwargs}")
    choice = choose_env(
        checkpoint.name,
        info.observation_space,
        info.action_space,
        trained_env_id=trained_env_id,
        env_id=env_id,
        env_kwargs=kwargs,
        obs_wrappers=wrappers,
    )
    env = choice.spaces
    notes += choice.notes

    vecnormalize = find_vecnormalize(checkpoint)
    obs_norm = read_vecnormalize(vecnormalize) if vecnormalize is not None else None
    if obs_norm is not None and (obs_norm.mean.shape != env.observation_space.shape):
        raise SpaceMismatchError(
            f"{vecnormalize.name if vecnormalize else 'vecnormalize'} normalises observations of shape "
            f"{obs_norm.mean.shape}, but {env.describe()} has observation shape {env.observation_space.shape}"
        )

    model = _load_model(checkpoint, chosen_algo, env)
    return LoadedCheckpoint(
        model=model,
        algo=chosen_algo,
        env_id=env.env_id,
        trained_env_id=trained_env_id,
        obs_norm=obs_norm,
        checkpoint=checkpoint,
        checkpoint_sha256=sha256_file(checkpoint),
        vecnormalize=vecnormalize,
        vecnormalize_sha256=sha256_file(vecnormalize) if vecnormalize is not None else None,
        training_seed=info.seed,
        sb3_version=info.sb3_version,
        notes=tuple(notes),
        env_kwargs=dict(env.setup.env_kwargs),
        obs_wrappers=env.setup.obs_wrappers,
    )


def _load_model(checkpoint: Path, algo: str, env: EnvSpaces) -> BaseAlgorithm:
    """``cls.load`` with the pickles that cannot (or need not) be read replaced.

    The spaces come from the env; schedules become constants; state that only matters for
    continuing training (last observations, episode buffers, action noise, the replay buffer
    class) is dropped, so old pickles of it cannot break the load. Off-policy models get a
    one-transition replay buffer, as the RL Zoo's enjoy.py does, instead of allocating millions.
    """
    cls = algo_class(algo)
    custom_objects: dict[str, Any] = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "learning_rate": 0.0,
        "lr_schedule": _constant_zero,
        "clip_range": _constant_zero,
        "clip_range_vf": None,
        "_last_obs": None,
        "_last_original_obs": None,
        "_last_episode_starts": None,
        "ep_info_buffer": None,
        "ep_success_buffer": None,
        "action_noise": None,
        "replay_buffer_class": None,
        "replay_buffer_kwargs": {},
    }
    kwargs: dict[str, Any] = {"buffer_size": 1} if _FAMILIES[algo] != "actor_critic" else {}
    try:
        with warnings.catch_warnings():
            # SB3 warns that old A2C/PPO zips lack pi_features_extractor; it repairs that itself.
            warnings.filterwarnings("ignore", message=".*SB3 < 1.7.0.*")
            return cls.load(checkpoint, device="cpu", custom_objects=custom_objects, **kwargs)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, ModuleNotFoundError) as exc:
        raise CheckpointError(f"SB3 could not load {checkpoint.name} as {algo.upper()}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# From an SB3 policy to a PolicySpec
# --------------------------------------------------------------------------------------------


def _activation_of(module: nn.Module) -> tuple[str, dict[str, float]] | None:
    """``(name, params)`` of a torch activation module drlc can express, or None if it is not one."""
    from torch import nn

    simple: dict[type[nn.Module], str] = {
        nn.ReLU: "relu",
        nn.Tanh: "tanh",
        nn.Sigmoid: "sigmoid",
        nn.SELU: "selu",
        nn.SiLU: "silu",
    }
    for cls, name in simple.items():
        if type(module) is cls:
            return name, {}
    if type(module) is nn.ELU:
        return "elu", {"alpha": float(module.alpha)}
    if type(module) is nn.LeakyReLU:
        return "leaky_relu", {"alpha": float(module.negative_slope)}
    if type(module) is nn.GELU and module.approximate == "none":
        return "gelu", {}
    if type(module) is nn.Softplus and module.beta == 1:
        return "softplus", {}
    return None


_Token = tuple[str, Any]  # ("linear", nn.Linear) | ("act", (name, params)) | ("hardtanh", nn.Hardtanh)


def _tokens(module: nn.Module, where: str) -> list[_Token]:
    """Flatten a (nested) Sequential into linear / activation tokens; eval-time no-ops are dropped."""
    from torch import nn

    if isinstance(module, nn.Sequential):
        return [tok for child in module for tok in _tokens(child, where)]
    if isinstance(module, nn.Linear):
        return [("linear", module)]
    if isinstance(module, nn.Dropout | nn.Identity | nn.Flatten):
        return []  # identity on a batch of flat vectors in eval mode, which is how the policy predicts
    if isinstance(module, nn.Hardtanh) and type(module) is nn.Hardtanh:
        return [("hardtanh", module)]
    activation = _activation_of(module)
    if activation is None:
        raise UnsupportedPolicyError(
            f"{where} contains {module!r}, which drlc cannot export; supported hidden activations: "
            f"{', '.join(ACTIVATIONS)} (torch defaults for their parameters), no normalisation layers"
        )
    return [("act", activation)]


def _dense(linear: nn.Linear) -> DenseLayer:
    weight = linear.weight.detach().cpu().numpy()
    bias = linear.bias.detach().cpu().numpy() if linear.bias is not None else np.zeros(weight.shape[0])
    return DenseLayer(weight=weight, bias=bias)


def _mlp_from_tokens(tokens: list[_Token], where: str) -> tuple[list[DenseLayer], str, dict[str, float]]:
    """Check ``Linear, act, Linear, act, ..., Linear`` with one activation kind, and return the layers."""
    layers: list[DenseLayer] = []
    activations: list[tuple[str, dict[str, float]]] = []
    expect_linear = True
    for kind, value in tokens:
        if expect_linear and kind == "linear":
            layers.append(_dense(value))
        elif not expect_linear and kind == "act":
            activations.append(value)
        else:
            raise UnsupportedPolicyError(
                f"{where} is not a plain MLP (Linear followed by one activation, repeated, then a Linear): "
                f"found {kind} where a {'Linear' if expect_linear else 'activation'} was expected"
            )
        expect_linear = not expect_linear
    if expect_linear or not layers:
        raise UnsupportedPolicyError(f"{where} does not end with a Linear output layer")
    kinds = {(name, tuple(sorted(params.items()))) for name, params in activations}
    if len(kinds) > 1:
        raise UnsupportedPolicyError(
            f"{where} mixes hidden activations {sorted(k[0] for k in kinds)}; drlc needs one"
        )
    name, params = activations[0] if activations else ("relu", {})  # no hidden layer: any name will do
    return layers, name, params


def _check_flat_box_obs(policy: BasePolicy, where: str) -> None:
    obs_space = policy.observation_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise UnsupportedPolicyError(
            f"{where} observes {obs_space}; drlc exports policies over flat Box observations "
            f"(MlpPolicy), not images (CnnPolicy) or dicts (MultiInputPolicy)"
        )


def _check_flatten_extractor(extractor: nn.Module | None, where: str) -> None:
    from stable_baselines3.common.torch_layers import FlattenExtractor

    if extractor is not None and not isinstance(extractor, FlattenExtractor):
        raise UnsupportedPolicyError(
            f"{where} uses the features extractor {type(extractor).__name__}; drlc exports MlpPolicy actors "
            f"(FlattenExtractor) only"
        )


def spec_from_model(model: BaseAlgorithm | BasePolicy, obs_norm: ObsNorm | None = None) -> PolicySpec:
    """Describe the deterministic actor of an SB3 model as a :class:`PolicySpec`.

    The spec reproduces ``model.predict(obs, deterministic=True)`` on normalised observations:

    - ``ActorCriticPolicy`` (PPO, A2C, TRPO): ``mlp_extractor.policy_net`` then ``action_net`` gives
      the Gaussian mean, which is the deterministic action, also with gSDE (its ``mode()`` is the
      mean); clipped to the bounds, or tanh-squashed and rescaled with ``squash_output``.
    - SAC / TQC: ``actor.latent_pi`` then ``actor.mu``, tanh-squashed and rescaled; with gSDE,
      ``mu`` ends in ``Hardtanh(-clip_mean, clip_mean)``, which becomes ``pre_squash_clip``.
    - TD3 / DDPG: ``actor.mu``, whose final ``Tanh`` is the squash, then rescaled.

    :param model: an SB3 algorithm or its policy
    :param obs_norm: VecNormalize statistics to bake into the graph, None for raw observations
    :raises UnsupportedPolicyError: for discrete actions, non-flat observations, non-MLP actors
    """
    from stable_baselines3.common.base_class import BaseAlgorithm

    policy: BasePolicy = model.policy if isinstance(model, BaseAlgorithm) else model
    where = f"the {type(policy).__name__}"
    if not isinstance(policy.action_space, spaces.Box):
        raise UnsupportedPolicyError(
            f"{where} acts in {policy.action_space}, a {type(policy.action_space).__name__} action space; "
            f"drlc exports continuous-control policies with a Box action space"
        )
    _check_flat_box_obs(policy, where)
    build = _policy_builder(policy, where)
    layers, activation, params, postprocess, pre_squash_clip = build(policy, where)
    return PolicySpec(
        layers=tuple(layers),
        activation=activation,
        activation_params=params,
        postprocess=postprocess,
        action_low=policy.action_space.low,
        action_high=policy.action_space.high,
        obs_norm=obs_norm,
        pre_squash_clip=pre_squash_clip,
    )


_Parsed = tuple[list[DenseLayer], str, dict[str, float], ActionPostprocess, float | None]


def _policy_builder(policy: BasePolicy, where: str) -> Callable[[Any, str], _Parsed]:
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    if isinstance(policy, ActorCriticPolicy):
        return _parse_actor_critic
    if isinstance(policy, SACPolicy):
        return _parse_squashed_gaussian_actor
    if isinstance(policy, TD3Policy):
        return _parse_td3
    try:
        from sb3_contrib.tqc.policies import TQCPolicy
    except ImportError:  # sb3-contrib is optional for SB3-only users
        TQCPolicy = None
    if TQCPolicy is not None and isinstance(policy, TQCPolicy):
        return _parse_squashed_gaussian_actor
    raise UnsupportedPolicyError(
        f"{where} is not a policy drlc exports; supported: ActorCriticPolicy (PPO, A2C, TRPO), "
        f"SACPolicy, TD3Policy (TD3, DDPG), TQCPolicy"
    )


def _parse_actor_critic(policy: Any, where: str) -> _Parsed:
    from stable_baselines3.common.distributions import (
        DiagGaussianDistribution,
        SquashedDiagGaussianDistribution,
        StateDependentNoiseDistribution,
    )

    if hasattr(policy, "lstm_actor"):
        raise UnsupportedPolicyError(f"{where} is recurrent (LSTM); drlc exports stateless MLP actors only")
    _check_flatten_extractor(getattr(policy, "pi_features_extractor", policy.features_extractor), where)
    dist = policy.action_dist
    postprocess: ActionPostprocess
    if isinstance(dist, SquashedDiagGaussianDistribution):
        postprocess = "tanh_rescale"
    elif isinstance(dist, DiagGaussianDistribution):
        postprocess = "clip"
    elif isinstance(dist, StateDependentNoiseDistribution):
        # gSDE's deterministic action is its mean (mode()), squashed only with squash_output.
        postprocess = "tanh_rescale" if dist.bijector is not None else "clip"
    else:
        raise UnsupportedPolicyError(
            f"{where} uses a {type(dist).__name__}; drlc exports Gaussian policies only"
        )
    if (postprocess == "tanh_rescale") != bool(policy.squash_output):
        raise UnsupportedPolicyError(
            f"{where} squashes with its distribution but has squash_output={policy.squash_output}; "
            f"predict() would not rescale consistently"
        )
    tokens = _tokens(policy.mlp_extractor.policy_net, f"{where}.mlp_extractor.policy_net")
    tokens += _tokens(policy.action_net, f"{where}.action_net")
    layers, activation, params = _mlp_from_tokens(tokens, f"{where} actor")
    return layers, activation, params, postprocess, None


def _parse_squashed_gaussian_actor(policy: Any, where: str) -> _Parsed:
    actor = policy.actor
    _check_flatten_extractor(actor.features_extractor, where)
    tokens = _tokens(actor.latent_pi, f"{where}.actor.latent_pi") + _tokens(actor.mu, f"{where}.actor.mu")
    pre_squash_clip = None
    if tokens and tokens[-1][0] == "hardtanh":
        hardtanh = tokens.pop()[1]
        if hardtanh.min_val != -hardtanh.max_val:
            raise UnsupportedPolicyError(
                f"{where}.actor.mu clips asymmetrically to [{hardtanh.min_val}, {hardtanh.max_val}]"
            )
        pre_squash_clip = float(hardtanh.max_val)
    layers, activation, params = _mlp_from_tokens(tokens, f"{where} actor")
    return layers, activation, params, "tanh_rescale", pre_squash_clip


def _parse_td3(policy: Any, where: str) -> _Parsed:
    actor = policy.actor
    _check_flatten_extractor(actor.features_extractor, where)
    tokens = _tokens(actor.mu, f"{where}.actor.mu")
    if not tokens or tokens[-1] != ("act", ("tanh", {})):
        raise UnsupportedPolicyError(
            f"{where}.actor.mu does not end with Tanh, so its actions are not squashed"
        )
    tokens.pop()
    layers, activation, params = _mlp_from_tokens(tokens, f"{where} actor")
    return layers, activation, params, "tanh_rescale", None
