"""What an SB3 zip says about itself without being loaded: its spaces, SB3 version, seed, and the
algorithm that saved it (checked against the one a user names)."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.contract.vocabulary import ALGORITHMS
from host.errors import CheckpointError, UnsupportedPolicyError
from host.policies.algorithms import REGISTRY, UnknownAlgorithmError, algorithm
from host.policies.env_choice import SpaceInfo
from host.policies.sb3.files import read_zoo_args
from host.policies.sb3.unpickler import PICKLE_ERRORS, permissive_loads

# Policy modules of algorithms drlc cannot export, with the reason a user gets.
_UNSUPPORTED_POLICY_MODULES: Mapping[str, str] = {
    "stable_baselines3.dqn": "DQN has a discrete action space",
    "sb3_contrib.qrdqn": "QR-DQN has a discrete action space",
    "sb3_contrib.ppo_mask": "MaskablePPO has a discrete action space",
    "sb3_contrib.ppo_recurrent": "RecurrentPPO's LSTM actor carries state between steps",
    "sb3_contrib.ars": "ARS uses a linear policy that drlc does not export",
    "sb3_contrib.crossq": "CrossQ is not among the exported algorithms",
}


def _space_info(entry: Any) -> SpaceInfo | None:
    """Decode a space entry of the checkpoint's ``data`` JSON with the permissive unpickler."""
    if not isinstance(entry, dict):
        return None
    type_str = str(entry.get(":type:", ""))
    kind = type_str.rsplit(".", 1)[-1].rstrip("'>") or "unknown"
    obj: Any = None
    if ":serialized:" in entry:
        try:
            obj = permissive_loads(base64.b64decode(entry[":serialized:"]))
        except PICKLE_ERRORS:
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
        f"pass algo, one of: {', '.join(ALGORITHMS)}"
    )


def choose_algo(checkpoint: Path, info: CheckpointInfo, algo: str | None) -> str:
    """The explicit ``algo``, else the zoo's args.yml / folder name, else detection; checked against the data."""
    detected = detect_algo(info)
    hinted = algo or read_zoo_args(checkpoint).get("algo")
    if not hinted and checkpoint.parent.parent.name in REGISTRY:
        hinted = checkpoint.parent.parent.name
    chosen = str(hinted).lower() if hinted else detected
    try:
        family = algorithm(chosen).family
    except UnknownAlgorithmError as exc:
        raise CheckpointError(str(exc)) from None
    if family != REGISTRY[detected].family:
        raise CheckpointError(
            f"{checkpoint.name} was saved by {detected.upper()} (policy module {info.policy_module}), "
            f"which {chosen.upper()} cannot load; pass algo={detected!r} or leave it out"
        )
    return chosen
