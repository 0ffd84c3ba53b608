"""PolicySpec <-> torch: the actor as an ``nn.Module`` for methods that train or prune it.

Only the dense layers and the hidden activation become torch modules; observation
normalisation and action post-processing stay exactly as the spec has them (they are
applied around the MLP in :func:`forward_actions` and rebuilt unchanged by the ONNX builder).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from host.errors import CompressionError
from host.policies.spec import DenseLayer, PolicySpec

_ACTIVATIONS = {
    "relu": lambda p: nn.ReLU(),
    "tanh": lambda p: nn.Tanh(),
    "elu": lambda p: nn.ELU(alpha=p.get("alpha", 1.0)),
    "leaky_relu": lambda p: nn.LeakyReLU(negative_slope=p.get("alpha", 0.01)),
    "silu": lambda p: nn.SiLU(),
    "gelu": lambda p: nn.GELU(),
    "sigmoid": lambda p: nn.Sigmoid(),
    "softplus": lambda p: nn.Softplus(),
    "selu": lambda p: nn.SELU(),
}


def mlp_from_spec(spec: PolicySpec) -> nn.Sequential:
    """Linear / activation / ... / Linear, float32, with the spec's weights copied in."""
    if spec.activation not in _ACTIVATIONS:
        raise CompressionError(f"activation {spec.activation!r} has no torch counterpart here")
    modules: list[nn.Module] = []
    for i, layer in enumerate(spec.layers):
        linear = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(layer.weight)))
            linear.bias.copy_(torch.from_numpy(np.array(layer.bias)))
        modules.append(linear)
        if i < len(spec.layers) - 1:
            modules.append(_ACTIVATIONS[spec.activation](dict(spec.activation_params)))
    return nn.Sequential(*modules)


def spec_from_mlp(spec: PolicySpec, mlp: nn.Sequential) -> PolicySpec:
    """The spec with the MLP's (possibly pruned or retrained) dense layers."""
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    layers = tuple(
        DenseLayer(
            m.weight.detach().cpu().numpy().astype(np.float32),
            m.bias.detach().cpu().numpy().astype(np.float32),
        )
        for m in linears
    )
    return spec.replace(layers=layers)


def normalize_obs(spec: PolicySpec, obs: torch.Tensor) -> torch.Tensor:
    """The graph's input stage, in torch: (obs - mean) * scale, clipped."""
    if spec.obs_norm is None:
        return obs
    norm = spec.obs_norm
    mean = torch.tensor(np.asarray(norm.mean, dtype=np.float32))
    scale = torch.tensor(np.asarray(norm.scale, dtype=np.float32))
    return torch.clamp((obs - mean) * scale, -norm.clip_obs, norm.clip_obs)


def postprocess(spec: PolicySpec, out: torch.Tensor) -> torch.Tensor:
    """The graph's output stage, in torch: tanh + rescale, clip to the action bounds, or nothing."""
    low = torch.tensor(np.asarray(spec.action_low, dtype=np.float32))
    high = torch.tensor(np.asarray(spec.action_high, dtype=np.float32))
    if spec.postprocess == "tanh_rescale":
        if spec.pre_squash_clip is not None:
            out = torch.clamp(out, -spec.pre_squash_clip, spec.pre_squash_clip)
        return low + 0.5 * (torch.tanh(out) + 1.0) * (high - low)
    if spec.postprocess == "none":
        return out
    return torch.maximum(torch.minimum(out, high), low)


def forward_actions(spec: PolicySpec, mlp: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """Raw observations to env-space actions, as the exported graph computes them."""
    return postprocess(spec, mlp(normalize_obs(spec, obs)))
