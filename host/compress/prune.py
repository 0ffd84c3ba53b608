"""L1 / L2 structural pruning: remove whole hidden neurons with Torch-Pruning's dependency graph.

The actor's dense layers become an ``nn.Sequential`` (:func:`~host.compress.torch_actor.mlp_from_spec`),
Torch-Pruning (DepGraph) removes the least important neurons of every hidden layer together with
everything coupled to them (the neuron's row and bias in its own layer, its column in the next
layer), and the smaller layers go back into the spec and through the ONNX builder. The exported
graph is physically smaller: its weight initializers lose rows and columns, nothing is masked.

What is never pruned:

- the observation inputs: the first layer's ``in_features`` is the model input, which DepGraph
  never prunes, so the graph still takes ``obs_dim`` observations;
- the action outputs: the last ``nn.Linear`` is in ``ignored_layers``;
- observation normalisation, the hidden activation and the action post-processing: they are not
  in the torch module at all and are rebuilt from the unchanged spec.

How the ratio maps to widths: the ratio applies to every hidden layer on its own (local pruning,
as the study does it). A hidden layer of width ``n`` keeps ``pruned_width(n, ratio) =
max(1, floor(n * (1 - ratio)))`` neurons, computed exactly (Torch-Pruning's own float arithmetic
keeps 62 instead of 63 of 90 neurons at 30 %, so each layer gets the ratio that lands on this width
in ``pruning_ratio_dict``). ``round_to`` is unset, so 5 % steps are honoured on small layers. A
hidden-to-hidden matrix shrinks by ``(1 - ratio)^2``, the first and last layers by ``(1 - ratio)``,
so the actor's parameter count falls to about ``(1 - ratio)^2`` of the baseline's for wide nets.

Importance, per neuron, is Torch-Pruning's ``GroupMagnitudeImportance(p)`` with its defaults
(``group_reduction="mean"``, ``normalizer="mean"``, biases not counted): the mean over the coupled
layers of ``sum |w|^p`` over the neuron's incoming row and over its outgoing column. ``p=1`` is L1,
``p=2`` is (squared) L2; the two keep different neurons when one neuron has a few large weights and
another many small ones.

Fine-tuning is off by default, as in the study. ``distill`` fits the pruned actor's env-space
actions to the baseline's on observations from rollouts of the baseline in its env (Adam, MSE).
"""

from __future__ import annotations

import copy
import importlib.metadata
import math
from dataclasses import dataclass
from typing import Any, Literal

import onnx
import torch
import torch_pruning as tp
from torch import nn

from host.compress.torch_actor import forward_actions, mlp_from_spec, spec_from_mlp
from host.compress.variant import Baseline, CompressionContext, MethodOutput
from host.errors import CompressionError
from host.policies.onnx_builder import build_onnx
from host.policies.spec import PolicySpec

MAX_RATIO = 0.7
"""The study's grid ends at 70 %; beyond it, most policies lose their behaviour entirely."""
FINETUNE_MODES = ("distill", "rl")
FINETUNE_ROLLOUT_SEED = 0
"""First env seed of the fine-tuning rollouts (fixed, so a sweep shares one collection)."""
_RATIO_DECIMALS = 6

Norm = Literal["l1", "l2"]
_NORM_P: dict[str, int] = {"l1": 1, "l2": 2}


@dataclass(frozen=True)
class PruneConfig:
    """Structural pruning of hidden neurons (the same config for L1 and L2).

    ``ratio`` is rounded to 6 decimals, so ``14 * 0.05`` names the same variant as ``0.7``.
    """

    ratio: float
    """Share of each hidden layer's neurons to remove, 0 < ratio <= 0.7 (the study: 0.05..0.7 in 0.05 steps)."""
    finetune_steps: int = 0
    """Gradient steps of fine-tuning after pruning. 0 (default, as in the study): no fine-tuning."""
    finetune_mode: str = "distill"
    """How to fine-tune: ``distill`` fits the pruned actor's actions to the baseline's on rollout observations; ``rl`` is not implemented yet."""
    finetune_episodes: int = 10
    """Episodes of the baseline rolled out in its env (seeds 0..n-1) to collect fine-tuning observations."""
    finetune_lr: float = 1e-3
    """Adam learning rate of the fine-tuning."""
    finetune_batch_size: int = 256
    """Observations per fine-tuning step, sampled with replacement."""
    seed: int = 0
    """Torch seed of the fine-tuning's minibatch sampling (same seed, same bytes)."""

    def __post_init__(self) -> None:
        ratio = self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= MAX_RATIO + 1e-9:
            raise CompressionError(
                f"pruning ratio must be a number in (0, {MAX_RATIO}] (e.g. 0.3 removes 30 % of each "
                f"hidden layer's neurons), got {ratio!r}"
            )
        object.__setattr__(self, "ratio", min(round(float(ratio), _RATIO_DECIMALS), MAX_RATIO))
        if self.finetune_steps < 0:
            raise CompressionError(
                f"finetune_steps must be >= 0 (0: no fine-tuning), got {self.finetune_steps}"
            )
        if self.finetune_mode not in FINETUNE_MODES:
            raise CompressionError(
                f"unknown fine-tuning mode {self.finetune_mode!r}; known: {', '.join(FINETUNE_MODES)}"
            )
        if self.finetune_episodes < 1:
            raise CompressionError(f"finetune_episodes must be >= 1, got {self.finetune_episodes}")
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise CompressionError(f"finetune_lr must be a positive number, got {self.finetune_lr}")
        if self.finetune_batch_size < 1:
            raise CompressionError(f"finetune_batch_size must be >= 1, got {self.finetune_batch_size}")


def pruned_width(width: int, ratio: float) -> int:
    """Neurons a hidden layer of ``width`` keeps at ``ratio``: ``max(1, floor(width * (1 - ratio)))``, exactly."""
    scale = 10**_RATIO_DECIMALS
    removed_per_scale = round(ratio * scale)
    return max(1, width * (scale - removed_per_scale) // scale)


def compress_l1(baseline: Baseline, cfg: PruneConfig, ctx: CompressionContext) -> MethodOutput:
    """Remove ``cfg.ratio`` of every hidden layer's neurons, least L1 group magnitude first."""
    return _compress(baseline, cfg, ctx, "l1")


def compress_l2(baseline: Baseline, cfg: PruneConfig, ctx: CompressionContext) -> MethodOutput:
    """Remove ``cfg.ratio`` of every hidden layer's neurons, least (squared) L2 group magnitude first."""
    return _compress(baseline, cfg, ctx, "l2")


def _importance(norm: Norm) -> Any:
    return tp.importance.GroupMagnitudeImportance(p=_NORM_P[norm], group_reduction="mean", normalizer="mean")


def prune_mlp(mlp: nn.Sequential, ratio: float, norm: Norm) -> list[int]:
    """Prune ``mlp`` in place with Torch-Pruning; return the hidden widths it now has.

    :raises CompressionError: the MLP has no hidden layer
    """
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise CompressionError("the policy has no hidden layer; there are no neurons to prune")
    hidden = linears[:-1]
    obs_dim = linears[0].in_features
    targets = [pruned_width(m.out_features, ratio) for m in hidden]
    # Per-layer ratios only so that Torch-Pruning's int(n * (1 - r)) lands exactly on the width we
    # promise (its float arithmetic is off by one for e.g. 90 neurons at 30 %); the +0.5 centres it.
    layer_ratios = {
        m: (0.0 if keep >= m.out_features else 1.0 - (keep + 0.5) / m.out_features)
        for m, keep in zip(hidden, targets, strict=True)
    }
    pruner = tp.pruner.BasePruner(
        mlp,
        example_inputs=torch.zeros(1, obs_dim),
        importance=_importance(norm),
        pruning_ratio=ratio,
        pruning_ratio_dict=layer_ratios,
        ignored_layers=[linears[-1]],  # the action outputs
        round_to=None,
    )
    pruner.step()
    widths = [m.out_features for m in hidden]
    if widths != targets or linears[0].in_features != obs_dim:
        raise CompressionError(
            f"Torch-Pruning left hidden widths {widths}, expected {targets} (a drlc bug, please report it)"
        )
    return widths


def _count(mlp: nn.Module, obs_dim: int) -> tuple[int, int]:
    """(MACs, parameters) of the MLP alone, as Torch-Pruning counts them."""
    macs, n_params = tp.utils.count_ops_and_params(mlp, torch.zeros(1, obs_dim))
    return int(macs), int(n_params)


def _finetune_distill(
    spec: PolicySpec, pruned: nn.Module, reference: nn.Module, cfg: PruneConfig, ctx: CompressionContext
) -> dict[str, Any]:
    """Fit the pruned actor's env-space actions to the baseline's (Adam, MSE); return the record."""
    observations = ctx.rollout(cfg.finetune_episodes, seed=FINETUNE_ROLLOUT_SEED)
    obs = torch.from_numpy(observations.obs)
    with torch.no_grad():
        targets = forward_actions(spec, reference, obs)

    def full_loss() -> float:
        with torch.no_grad():
            return float(nn.functional.mse_loss(forward_actions(spec, pruned, obs), targets))

    loss_before = full_loss()
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(pruned.parameters(), lr=cfg.finetune_lr)
    pruned.train()
    for _ in range(cfg.finetune_steps):
        idx = torch.randint(obs.shape[0], (cfg.finetune_batch_size,), generator=generator)
        loss = nn.functional.mse_loss(forward_actions(spec, pruned, obs[idx]), targets[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    pruned.eval()
    return {
        "observations": observations.provenance,
        "loss_before": loss_before,
        "loss_after": full_loss(),
    }


def _compress(baseline: Baseline, cfg: PruneConfig, ctx: CompressionContext, norm: Norm) -> MethodOutput:
    spec = baseline.spec
    if not spec.hidden_sizes:
        raise CompressionError("the policy has no hidden layer; there are no neurons to prune")
    if cfg.finetune_steps > 0 and cfg.finetune_mode == "rl":
        raise CompressionError("fine-tuning mode 'rl' is not implemented yet; use --finetune-mode distill")
    mlp = mlp_from_spec(spec)
    mlp.eval()
    reference = copy.deepcopy(mlp) if cfg.finetune_steps > 0 else None
    macs_before, _ = _count(mlp, spec.obs_dim)

    widths = prune_mlp(mlp, cfg.ratio, norm)

    params: dict[str, Any] = {
        "ratio": cfg.ratio,
        "norm": norm,
        "importance": f"GroupMagnitudeImportance(p={_NORM_P[norm]}, group_reduction=mean, normalizer=mean)",
    }
    metrics: dict[str, Any] = {}
    if reference is not None:
        record = _finetune_distill(spec, mlp, reference, cfg, ctx)
        params.update(
            mode=cfg.finetune_mode,
            finetune_steps=cfg.finetune_steps,
            finetune_episodes=cfg.finetune_episodes,
            finetune_lr=cfg.finetune_lr,
            finetune_batch_size=cfg.finetune_batch_size,
            seed=cfg.seed,
            finetune_observations=record["observations"],
        )
        metrics.update(finetune_loss_before=record["loss_before"], finetune_loss_after=record["loss_after"])

    macs_after, _ = _count(mlp, spec.obs_dim)
    pruned_spec = spec_from_mlp(spec, mlp)
    if pruned_spec.obs_dim != spec.obs_dim or pruned_spec.act_dim != spec.act_dim:
        raise CompressionError(
            "pruning changed the policy's input or output width (a drlc bug, please report it)"
        )
    metrics.update(
        n_params_before=spec.n_params,
        n_params_after=pruned_spec.n_params,
        hidden_sizes_before=spec.hidden_sizes,
        hidden_sizes_after=widths,
        macs_before=macs_before,
        macs_after=macs_after,
        torch_pruning_version=importlib.metadata.version("torch-pruning"),
    )
    return MethodOutput(
        model=onnx.load_from_string(build_onnx(pruned_spec)),
        params=params,
        hidden_sizes=widths,
        n_params=pruned_spec.n_params,
        metrics=metrics,
    )


__all__ = ["MAX_RATIO", "PruneConfig", "compress_l1", "compress_l2", "prune_mlp", "pruned_width"]
