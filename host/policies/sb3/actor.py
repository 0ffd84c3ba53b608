"""From an SB3 policy to a :class:`PolicySpec`: the deterministic actor's dense layers, activation and
action post-processing, for every policy class drlc exports (actor-critic, SAC/TQC, TD3/DDPG).

torch and SB3 are imported where they are used: this module loads with the rest of ``host.policies``,
which a command that never reads a live SB3 model imports too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from host.errors import UnsupportedPolicyError
from host.policies.spec import ACTIVATIONS, ActionPostprocess, DenseLayer, ObsNorm, PolicySpec

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy
    from torch import nn


def _activation_of(module: nn.Module) -> tuple[str, dict[str, float]] | None:
    """``(name, params)`` of a torch activation module drlc can express, or None if it is not one."""
    from torch import nn  # torch: see the module docstring

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
    from torch import nn  # torch: see the module docstring

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
    from stable_baselines3.common.torch_layers import FlattenExtractor  # SB3: see the module docstring

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
    from stable_baselines3.common.base_class import BaseAlgorithm  # SB3: see the module docstring

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
    # SB3: see the module docstring
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
        from sb3_contrib.tqc.policies import TQCPolicy  # optional, as SB3 above: see the module docstring
    except ImportError:  # sb3-contrib is optional for SB3-only users
        TQCPolicy = None
    if TQCPolicy is not None and isinstance(policy, TQCPolicy):
        return _parse_squashed_gaussian_actor
    raise UnsupportedPolicyError(
        f"{where} is not a policy drlc exports; supported: ActorCriticPolicy (PPO, A2C, TRPO), "
        f"SACPolicy, TD3Policy (TD3, DDPG), TQCPolicy"
    )


def _parse_actor_critic(policy: Any, where: str) -> _Parsed:
    from stable_baselines3.common.distributions import (  # SB3: see the module docstring
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
