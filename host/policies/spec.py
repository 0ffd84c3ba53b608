"""A framework-neutral description of a deterministic MLP actor.

:class:`PolicySpec` is the hinge between the training world (SB3, torch) and the artifact world
(ONNX, the device). Loaders fill it from a checkpoint, the ONNX builder turns it into a graph, and
compression methods (pruning, QAT) will turn it into a torch module and back. It is a plain data
holder on purpose: numpy arrays and names, no torch, so it can be built, compared and pickled
without any framework loaded.

The computation it describes, for a batch of raw observations ``obs`` of shape ``[batch, obs_dim]``:

1. observation normalisation, when the policy was trained under VecNormalize:
   ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``;
2. the dense layers: ``x = act(x @ W.T + b)`` for every layer but the last, which has no activation;
3. the action post-processing:

   - ``"tanh_rescale"`` (SAC, TD3, DDPG, TQC, and on-policy algorithms with ``squash_output``):
     optionally ``clip(x, -pre_squash_clip, pre_squash_clip)`` (SAC/TQC with gSDE clip the mean),
     then ``tanh``, then ``low + 0.5 * (a + 1) * (high - low)``;
   - ``"clip"`` (the Gaussian mean of PPO, A2C, TRPO): ``clip(x, low, high)``;
   - ``"none"`` (actors imported from other tools whose actions need nothing more): ``x``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from device_agent.contract.manifest import ObsNormalization
from host.errors import ExportError

ActionPostprocess = Literal["tanh_rescale", "clip", "none"]
POSTPROCESSES: tuple[ActionPostprocess, ...] = ("tanh_rescale", "clip", "none")

#: Hidden activations the ONNX builder can express, with their parameters and defaults
#: (the torch defaults). Read-only: a spec's own ``activation_params`` override these.
ACTIVATIONS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "relu": MappingProxyType({}),
        "tanh": MappingProxyType({}),
        "sigmoid": MappingProxyType({}),
        "elu": MappingProxyType({"alpha": 1.0}),
        "leaky_relu": MappingProxyType({"alpha": 0.01}),
        "selu": MappingProxyType({}),
        "silu": MappingProxyType({}),
        "gelu": MappingProxyType({}),
        "softplus": MappingProxyType({}),
    }
)


def _frozen_array(values: np.ndarray | Sequence[float], dtype: type[np.floating], name: str) -> np.ndarray:
    """Copy ``values`` into a contiguous read-only array, so a spec cannot change behind its graph's back."""
    array = np.array(values, dtype=dtype, copy=True, order="C")
    if not np.all(np.isfinite(array)):
        raise ExportError(f"{name} contains NaN or infinite values; the checkpoint's weights are corrupt")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ObsNorm:
    """Observation-normalisation statistics, as SB3's ``VecNormalize`` applies them.

    Kept in float64, as VecNormalize keeps them: the builder derives the float32 constants of the
    graph from these, and the manifest repeats them for reading.

    :param mean: running mean of the raw observations, shape ``[obs_dim]``
    :param var: running variance of the raw observations, shape ``[obs_dim]``
    :param clip_obs: normalised observations are clipped to ``[-clip_obs, clip_obs]``
    :param epsilon: added to ``var`` before the square root, to avoid dividing by zero
    """

    mean: np.ndarray
    var: np.ndarray
    clip_obs: float
    epsilon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _frozen_array(self.mean, np.float64, "obs_norm.mean"))
        object.__setattr__(self, "var", _frozen_array(self.var, np.float64, "obs_norm.var"))
        if self.mean.ndim != 1 or self.mean.shape != self.var.shape:
            raise ExportError(
                f"observation-normalisation mean and var must be 1-D and the same shape, "
                f"got {self.mean.shape} and {self.var.shape}"
            )
        if np.any(self.var < 0):
            raise ExportError(
                "observation-normalisation var has negative entries; the statistics are corrupt"
            )
        if not (math.isfinite(self.clip_obs) and self.clip_obs > 0):
            raise ExportError(f"clip_obs must be a positive finite number, got {self.clip_obs}")
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ExportError(f"epsilon must be a non-negative finite number, got {self.epsilon}")
        object.__setattr__(self, "clip_obs", float(self.clip_obs))
        object.__setattr__(self, "epsilon", float(self.epsilon))

    @property
    def obs_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def scale(self) -> np.ndarray:
        """``1 / sqrt(var + epsilon)`` in float64, the factor the graph multiplies by after centring."""
        return 1.0 / np.sqrt(self.var + self.epsilon)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Normalise raw observations exactly as ``VecNormalize.normalize_obs`` does (float64 maths).

        Used to feed an SB3 model the observations it was trained on when checking an export.
        """
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip_obs, self.clip_obs)

    def normalize_float32(self, obs: np.ndarray) -> np.ndarray:
        """Normalise raw observations in float32, step for step as the exported graph does.

        ``(obs - mean) * scale`` with float32 constants, then the clip. An export check feeds the
        SB3 network these inputs to isolate the graph's own error from float32 arithmetic: for a
        feature whose running std is tiny (1e-4 is seen in trained Humanoid policies) the float32
        mean alone moves the normalised value by ~1e-3, which no float32 runtime can avoid.
        """
        f32 = np.float32
        centred = obs.astype(f32) - self.mean.astype(f32)
        return np.clip(centred * self.scale.astype(f32), f32(-self.clip_obs), f32(self.clip_obs))

    def to_manifest(self) -> ObsNormalization:
        return ObsNormalization(
            mean=[float(x) for x in self.mean],
            var=[float(x) for x in self.var],
            clip_obs=self.clip_obs,
            epsilon=self.epsilon,
        )


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """One fully connected layer, ``y = x @ weight.T + bias``, in torch's ``nn.Linear`` layout.

    :param weight: float32, shape ``[out_features, in_features]``
    :param bias: float32, shape ``[out_features]`` (zeros for a layer built without bias)
    """

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, np.float32, "layer weight"))
        object.__setattr__(self, "bias", _frozen_array(self.bias, np.float32, "layer bias"))
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ExportError(
                f"a dense layer needs weight [out, in] and bias [out], got {self.weight.shape} and {self.bias.shape}"
            )

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_params(self) -> int:
        return int(self.weight.size + self.bias.size)


@dataclass(frozen=True, eq=False)
class PolicySpec:
    """A deterministic MLP actor: normalisation, dense layers, hidden activation, post-processing.

    Build a changed copy with :func:`dataclasses.replace` (the arrays are read-only).

    :param layers: the dense layers in order; every layer but the last is followed by ``activation``
    :param activation: hidden activation, one of :data:`ACTIVATIONS`
    :param postprocess: ``"tanh_rescale"``, ``"clip"`` or ``"none"``, see the module docstring
    :param action_low: lower bounds of the env's Box action space, float32 ``[act_dim]``
    :param action_high: upper bounds of the env's Box action space, float32 ``[act_dim]``
    :param obs_norm: VecNormalize statistics, or None when the policy sees raw observations
    :param activation_params: parameters of the activation (``alpha`` for elu and leaky_relu);
        missing ones take the torch defaults listed in :data:`ACTIVATIONS`
    :param pre_squash_clip: clip the last layer's output to ``[-c, c]`` before tanh. SAC and TQC
        with gSDE do this (``clip_mean``, default 2.0), which changes the deterministic action
        wherever ``|mu| > c``. None: no clip. Only meaningful with ``"tanh_rescale"``.
    """

    layers: tuple[DenseLayer, ...]
    activation: str
    postprocess: ActionPostprocess
    action_low: np.ndarray
    action_high: np.ndarray
    obs_norm: ObsNorm | None = None
    activation_params: Mapping[str, float] = field(default_factory=dict)
    pre_squash_clip: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "action_low", _frozen_array(self.action_low, np.float32, "action_low"))
        object.__setattr__(self, "action_high", _frozen_array(self.action_high, np.float32, "action_high"))
        self._check_activation()
        self._check_shapes()
        if self.postprocess not in POSTPROCESSES:
            raise ExportError(f"unknown action post-processing {self.postprocess!r}; known: {POSTPROCESSES}")
        if self.pre_squash_clip is not None:
            if self.postprocess != "tanh_rescale":
                raise ExportError("pre_squash_clip only applies to the 'tanh_rescale' post-processing")
            if not (math.isfinite(self.pre_squash_clip) and self.pre_squash_clip > 0):
                raise ExportError(
                    f"pre_squash_clip must be a positive finite number, got {self.pre_squash_clip}"
                )

    def _check_activation(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ExportError(
                f"hidden activation {self.activation!r} is not supported; supported: {', '.join(ACTIVATIONS)}"
            )
        known = ACTIVATIONS[self.activation]
        unknown = set(self.activation_params) - set(known)
        if unknown:
            raise ExportError(
                f"activation {self.activation!r} takes parameters {sorted(known) or 'none'}, got {sorted(unknown)}"
            )
        object.__setattr__(
            self,
            "activation_params",
            MappingProxyType({**known, **{k: float(v) for k, v in self.activation_params.items()}}),
        )

    def _check_shapes(self) -> None:
        if not self.layers:
            raise ExportError("a policy needs at least one dense layer")
        for i, (prev, nxt) in enumerate(itertools.pairwise(self.layers)):
            if prev.out_features != nxt.in_features:
                raise ExportError(
                    f"layer {i} outputs {prev.out_features} features but layer {i + 1} takes {nxt.in_features}"
                )
        if self.action_low.shape != (self.act_dim,) or self.action_high.shape != (self.act_dim,):
            raise ExportError(
                f"action bounds must have shape ({self.act_dim},) to match the last layer, "
                f"got {self.action_low.shape} and {self.action_high.shape}"
            )
        if np.any(self.action_low > self.action_high):
            raise ExportError("action_low is above action_high for some dimensions")
        if self.obs_norm is not None and self.obs_norm.obs_dim != self.obs_dim:
            raise ExportError(
                f"observation-normalisation statistics have {self.obs_norm.obs_dim} entries "
                f"but the first layer takes {self.obs_dim} observations"
            )

    @property
    def obs_dim(self) -> int:
        return self.layers[0].in_features

    @property
    def act_dim(self) -> int:
        return self.layers[-1].out_features

    @property
    def hidden_sizes(self) -> list[int]:
        """Widths of the hidden layers, e.g. ``[256, 256]`` (the output layer is not hidden)."""
        return [layer.out_features for layer in self.layers[:-1]]

    @property
    def n_params(self) -> int:
        """Weights and biases of the actor's dense layers; normalisation statistics are not parameters."""
        return sum(layer.n_params for layer in self.layers)

    def replace(self, **changes: object) -> PolicySpec:
        """A copy with some fields changed, validated again (e.g. pruned ``layers``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
