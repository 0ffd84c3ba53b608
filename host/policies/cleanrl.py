"""CleanRL's saved continuous-control actors (``*.cleanrl_model``) as :class:`PolicySpec`.

CleanRL saves ``torch.save`` state dicts, not modules, so the architecture comes from its
scripts (vwxyzjn/cleanrl, ``cleanrl/*_continuous_action.py``):

- ``td3_continuous_action.py`` saves ``(actor, qf1, qf2)``, ``ddpg_continuous_action.py``
  ``(actor, qf1)``: the actor is ``fc1 -> ReLU -> fc2 -> ReLU -> fc_mu -> tanh``, times the
  buffer ``action_scale`` plus ``action_bias`` (the env's half-range and mid-point);
- ``sac_continuous_action.py``'s actor (it does not save one itself; a state dict of it, alone
  or first in a tuple, is read): ``fc1 -> ReLU -> fc2 -> ReLU -> fc_mean``; the deterministic
  action is ``tanh(mean) * action_scale + action_bias``;
- ``ppo_continuous_action.py`` saves the whole ``Agent``: ``actor_mean`` is ``Linear -> Tanh ->
  Linear -> Tanh -> Linear`` and the deterministic action is its output, clipped to the bounds
  by the script's ``ClipAction`` wrapper. Its ``NormalizeObservation`` statistics live in the
  env wrapper and are not saved: the policy then sees raw observations, which the notes say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host.errors import CheckpointError, UnsupportedPolicyError
from host.policies.spec import DenseLayer, PolicySpec

CLEANRL_SUFFIX = ".cleanrl_model"
_TD3_KEYS = frozenset({"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc_mu.weight", "fc_mu.bias"})
_SAC_KEYS = frozenset({"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc_mean.weight", "fc_mean.bias"})
_PPO_LAYERS = ("actor_mean.0", "actor_mean.2", "actor_mean.4")


@dataclass(frozen=True)
class CleanRLActor:
    """A CleanRL actor read from its state dict."""

    algo: str
    script: str
    spec: PolicySpec
    notes: tuple[str, ...]
    state: Mapping[str, np.ndarray]


def _load(path: Path) -> Any:
    import torch  # heavy: loaded only to read a CleanRL checkpoint

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a state dict
        raise CheckpointError(f"cannot read {path.name} as a torch state dict: {exc}") from exc


def _arrays(state: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(state, Mapping):
        raise UnsupportedPolicyError(f"{where} holds a {type(state).__name__}, not a state dict")
    return {
        str(k): v.detach().cpu().numpy().astype(np.float64) for k, v in state.items() if hasattr(v, "detach")
    }


def _dense(state: Mapping[str, np.ndarray], prefix: str) -> DenseLayer:
    return DenseLayer(state[f"{prefix}.weight"], state[f"{prefix}.bias"])


def _check_rescale(state: Mapping[str, np.ndarray], low: np.ndarray, high: np.ndarray, where: str) -> None:
    scale, bias = state.get("action_scale"), state.get("action_bias")
    if scale is None or bias is None:
        # Older scripts had no buffers: their actor's tanh output went to the env as it was (clipped to
        # the bounds), which drlc's rescale reproduces only where the bounds are [-1, 1].
        if not (np.all(low == -1.0) and np.all(high == 1.0)):
            raise UnsupportedPolicyError(
                f"{where} has no action_scale/action_bias buffers (an older CleanRL script, whose actions were "
                f"tanh outputs clipped to the bounds), and the env's bounds [{low}, {high}] are not [-1, 1]; "
                f"drlc cannot tell how it was rescaled"
            )
        return
    want_scale, want_bias = (high - low) / 2.0, (high + low) / 2.0
    if not (np.allclose(scale.reshape(-1), want_scale) and np.allclose(bias.reshape(-1), want_bias)):
        raise UnsupportedPolicyError(
            f"{where} rescales actions by {scale.reshape(-1)} + {bias.reshape(-1)}, which does not fit the env's "
            f"bounds [{low}, {high}]; pass the env it was trained on"
        )


def read_cleanrl(path: Path, low: np.ndarray, high: np.ndarray, algo: str | None = None) -> CleanRLActor:
    """The actor in a ``*.cleanrl_model`` file, for an env with action bounds ``[low, high]``.

    :param algo: ``td3`` or ``ddpg`` when the file cannot tell them apart (both save the same actor)
    :raises UnsupportedPolicyError: naming the layers found when they are not one of CleanRL's actors
    """
    loaded = _load(path)
    parts = list(loaded) if isinstance(loaded, tuple | list) else [loaded]
    if not parts:
        raise UnsupportedPolicyError(f"{path.name} holds an empty tuple")
    state = _arrays(parts[0], path.name)
    keys = set(state)
    low64, high64 = np.asarray(low, np.float64), np.asarray(high, np.float64)
    notes: list[str] = []
    if _TD3_KEYS <= keys:
        detected = "td3" if len(parts) == 3 else "ddpg" if len(parts) == 2 else (algo or "td3")
        chosen = algo or detected
        layers, postprocess, script = (
            (_dense(state, "fc1"), _dense(state, "fc2"), _dense(state, "fc_mu")),
            "tanh_rescale",
            f"{chosen}_continuous_action.py",
        )
        _check_rescale(state, low64, high64, path.name)
    elif _SAC_KEYS <= keys:
        chosen, script = "sac", "sac_continuous_action.py"
        layers, postprocess = (
            (_dense(state, "fc1"), _dense(state, "fc2"), _dense(state, "fc_mean")),
            "tanh_rescale",
        )
        _check_rescale(state, low64, high64, path.name)
    elif all(f"{p}.weight" in keys for p in _PPO_LAYERS):
        chosen, script = "ppo", "ppo_continuous_action.py"
        layers, postprocess = tuple(_dense(state, p) for p in _PPO_LAYERS), "clip"
        notes.append(
            "CleanRL's PPO normalises observations in a NormalizeObservation env wrapper whose statistics it "
            "does not save; this actor sees raw observations, so its return may be far below the training curve"
        )
    else:
        found = ", ".join(sorted(k.rsplit(".", 1)[0] for k in keys if k.endswith(".weight"))) or "none"
        raise UnsupportedPolicyError(
            f"{path.name} is not a CleanRL continuous-control actor drlc knows: its layers are {found}; drlc reads "
            f"td3/ddpg (fc1, fc2, fc_mu), sac (fc1, fc2, fc_mean) and ppo_continuous_action (actor_mean.0/2/4)"
        )
    spec = PolicySpec(
        layers=layers,
        activation="tanh" if chosen == "ppo" else "relu",
        postprocess=postprocess,  # type: ignore[arg-type]
        action_low=low64,
        action_high=high64,
    )
    return CleanRLActor(chosen, script, spec, tuple(notes), state)


def cleanrl_actions(actor: CleanRLActor, obs: np.ndarray) -> np.ndarray:
    """The script's own deterministic forward pass, in torch, for the export check."""
    import torch  # heavy: loaded only to run a CleanRL actor
    import torch.nn.functional as F

    s = {k: torch.tensor(v, dtype=torch.float32) for k, v in actor.state.items()}
    x = torch.tensor(obs, dtype=torch.float32)
    low = torch.tensor(actor.spec.action_low)
    high = torch.tensor(actor.spec.action_high)
    with torch.no_grad():
        if actor.algo == "ppo":
            for i, prefix in enumerate(_PPO_LAYERS):
                x = F.linear(x, s[f"{prefix}.weight"], s[f"{prefix}.bias"])
                x = torch.tanh(x) if i < 2 else x
            return torch.clamp(x, low, high).numpy()  # gym.wrappers.ClipAction
        x = F.relu(F.linear(x, s["fc1.weight"], s["fc1.bias"]))
        x = F.relu(F.linear(x, s["fc2.weight"], s["fc2.bias"]))
        head = "fc_mean" if actor.algo == "sac" else "fc_mu"
        x = torch.tanh(F.linear(x, s[f"{head}.weight"], s[f"{head}.bias"]))
        scale = s.get("action_scale", (high - low) / 2.0)
        bias = s.get("action_bias", (high + low) / 2.0)
        return (x * scale + bias).numpy()
