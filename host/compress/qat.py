"""Quantization-aware training (QAT): train the actor with fake quantization, export it as int8 QDQ.

The path, and why: ``torch.ao.quantization`` is deprecated on torch 2.x and its default QAT
configs do not export to ONNX. Instead the actor's dense layers become :class:`FakeQuantLinear`
modules: the weight goes through the stable ATen op ``torch.fake_quantize_per_channel_affine``
(int8, symmetric, one scale per output channel) and the layer's input through
:func:`fake_quantize_activation` (uint8, asymmetric, one scale; it rounds as ONNX Runtime's
QuantizeLinear does, which ``torch.fake_quantize_per_tensor_affine`` does not quite), both with
straight-through gradients. Activation ranges are observed once on rollout observations, then
frozen as constant quantization parameters, so the network trains against exactly the integer
grid it is exported with. The export is not traced: :mod:`host.compress.qdq_builder` writes the QDQ graph by hand
from the frozen integers (int8 weights, int32 biases, scales, zero points), and ONNX Runtime
fuses it into ``QGemm`` kernels; :func:`compress` checks that it does.

Two modes:

- ``distill`` (fast, needs only the ONNX file): fit the fake-quantised actor, initialised with the
  baseline's weights, to the baseline's env-space actions on observations from rollouts of the
  baseline (MSE after observation normalisation and action post-processing, Adam).
- ``rl`` (the study's QAT): continue the policy's own RL training -- the SB3 algorithm of its
  checkpoint, in the same env, VecNormalize statistics frozen -- with fake quantization in the actor.

Layers before observation normalisation and after the last dense layer (tanh squashing, rescaling,
clipping) stay fp32 in both, as the fp32 graph has them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from device_agent.contract.manifest import ObsWrapper
from device_agent.contract.obs_wrappers import apply_wrapper
from host.compress.int8_check import integer_kernels
from host.compress.observations import actions
from host.compress.qdq_builder import (
    ACTIVATION_QMAX,
    ACTIVATION_QMIN,
    BIAS_QMAX,
    BIAS_QMIN,
    LayerQuant,
    activation_qparams,
    build_qdq_model,
)
from host.compress.torch_actor import forward_actions, mlp_from_spec, normalize_obs, spec_from_mlp
from host.compress.variant import Baseline, CompressionContext, MethodOutput
from host.errors import CompressionError, DrlcError
from host.policies.sb3.actor import spec_from_model
from host.policies.sb3.loader import load_checkpoint
from host.policies.sb3.unpickler import permissive_loads
from host.policies.spec import PolicySpec

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

MODES = ("distill", "rl")
#: Default training budget per mode: gradient steps (distill, ~20 s for a 256x256 actor on one
#: core) or env steps (rl, the CLI's example; SAC on Hopper runs ~25-70 env steps/s here).
DEFAULT_STEPS = {"distill": 2000, "rl": 50_000}
CALIBRATIONS = ("minmax", "percentile")
#: Rollout observations the torch actor and the exported graph are compared on (a self-check).
N_EXPORT_CHECK_OBS = 2048


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware training of the actor; every field that changes the result is recorded."""

    mode: str = "distill"
    """How to train: "distill" fits the fake-quantised actor to the baseline's actions (fast, needs only the ONNX file); "rl" continues the checkpoint's own SB3 training with fake quantization in the actor."""
    steps: int | None = None
    """distill: gradient steps; rl: environment steps of continued training (on-policy algorithms round up to whole rollouts). None: 2000 (distill) or 50000 (rl). 0: no training, the naive fake-quant export of the baseline weights."""
    lr: float = 1e-4
    """Adam learning rate: of the actor fit (distill), or of every optimizer of the algorithm (rl; the checkpoint's own schedule is not restored)."""
    batch_size: int = 256
    """distill: observations per gradient step (rl keeps the algorithm's own batch size)."""
    rollout_episodes: int = 30
    """Episodes of baseline rollouts (seeds ``seed``.. ``seed + rollout_episodes - 1``) that calibrate the activation ranges and, in distill mode, are the training set."""
    action_noise_std: float = 0.0
    """Gaussian noise on the rollout actions, as a fraction of the action range, to visit states beside the baseline's own trajectories."""
    seed: int = 0
    """Seeds the rollouts, minibatch sampling, and in rl mode the algorithm and its env."""
    fp32_first_layer: bool = False
    """Keep dense layer 0 (whose inputs are the raw or normalised observations, with very different ranges) in fp32; every other layer is int8."""
    calibration: str = "minmax"
    """How activation ranges are taken from the calibration observations: "minmax" or "percentile"."""
    calibration_percentile: float = 99.99
    """With "percentile": the range is [100 - p, p] percentiles of each layer's inputs."""
    calibration_observations: int = 4096
    """Rollout observations (evenly spaced over the rollouts) the activation ranges are observed on; 0: all."""
    per_channel: bool = True
    """One weight scale per output channel (True) or one per layer (False)."""
    reduce_range: bool = False
    """7-bit weights ([-64, 64]): uint8 x int8 kernels without VNNI (AVX2 vpmaddubsw) add product pairs in int16 and can saturate with full-range weights; QAT trains for the coarser grid."""

    def __post_init__(self) -> None:
        if self.steps is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS.get(self.mode, 0))
        if self.mode not in MODES:
            raise CompressionError(f"QAT mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.calibration not in CALIBRATIONS:
            raise CompressionError(
                f"QAT calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}"
            )
        checks = {
            "steps": isinstance(self.steps, int) and self.steps >= 0,
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "rollout_episodes": self.rollout_episodes >= 1,
            "action_noise_std": self.action_noise_std >= 0,
            "calibration_percentile": 50 < self.calibration_percentile <= 100,
            "calibration_observations": self.calibration_observations >= 0,
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in wrong)
            raise CompressionError(
                f"bad QAT options: {values} (steps >= 0, lr > 0, batch_size >= 1, rollout_episodes >= 1, "
                f"action_noise_std >= 0, 50 < calibration_percentile <= 100, calibration_observations >= 0)"
            )

    @property
    def n_steps(self) -> int:
        """``steps`` with the mode's default filled in."""
        assert self.steps is not None  # set by __post_init__, for mypy
        return self.steps

    @property
    def weight_qmax(self) -> int:
        """Largest int8 weight magnitude: 127, or 64 with ``reduce_range`` (ORT's reduced range)."""
        return 64 if self.reduce_range else 127


# --------------------------------------------------------------------------------------------
# The fake-quantised layer
# --------------------------------------------------------------------------------------------


def fake_quantize_activation(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Per-tensor uint8 fake quantization that rounds exactly as ONNX Runtime's QuantizeLinear.

    ``torch.fake_quantize_per_tensor_affine`` multiplies by ``1 / scale``; ORT divides by
    ``scale``. Inputs that sit on a half step (Hopper clips its velocities to exactly +-10, which
    a min/max range maps to +-127.5 steps) then round apart by one step, which moved actions by
    up to 0.1. Dividing here keeps the trained actor and the exported graph in step. The gradient
    is the straight-through estimator, zero where the input was clipped to the range.
    """
    steps = torch.round(x / scale) + zero_point
    inside = (steps >= ACTIVATION_QMIN) & (steps <= ACTIVATION_QMAX)
    dequantized = (steps.clamp(ACTIVATION_QMIN, ACTIVATION_QMAX) - zero_point) * scale
    return torch.where(inside, x + (dequantized - x).detach(), dequantized.detach())


class FakeQuantLinear(nn.Linear):
    """An ``nn.Linear`` that computes what the exported QGemm computes.

    Its input is fake-quantised per tensor to uint8 with frozen ``input_scale`` /
    ``input_zero_point`` (buffers), its weight per output channel to symmetric int8 with scales
    taken from the current weight (``max |w| / qmax``), and its bias to int32 with scale
    ``input_scale * weight_scale``, as ONNX Runtime requires for the fusion. Gradients pass
    straight through (zero where the input was clipped to the quantizer's range).

    It shares the wrapped layer's ``weight`` and ``bias`` parameters, so optimizers that already
    hold them (an SB3 algorithm's) keep training them, and it stays an ``nn.Linear`` for code
    that reads dense layers (:func:`host.policies.sb3.actor.spec_from_model`).

    :param linear: the layer to wrap
    :param input_scale: scale of the input quantizer (> 0)
    :param input_zero_point: its zero point in [0, 255]
    :param weight_qmax: int8 weights lie in ``[-weight_qmax, weight_qmax]``
    :param per_channel: one weight scale per output channel (else one for the layer)
    """

    input_scale: torch.Tensor
    input_zero_point: torch.Tensor

    def __init__(
        self,
        linear: nn.Linear,
        input_scale: float,
        input_zero_point: int,
        weight_qmax: int = 127,
        per_channel: bool = True,
    ) -> None:
        nn.Module.__init__(self)  # not nn.Linear.__init__: it would draw fresh random weights
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.weight_qmax = int(weight_qmax)
        self.per_channel = per_channel
        self.register_buffer("input_scale", torch.tensor(input_scale, dtype=torch.float32))
        self.register_buffer("input_zero_point", torch.tensor(input_zero_point, dtype=torch.int32))

    def weight_scale(self) -> torch.Tensor:
        """float32 ``[out]``: ``max |w| / qmax`` per output channel (or over the layer), never 0."""
        magnitude = self.weight.detach().abs()
        amax = magnitude.amax(dim=1) if self.per_channel else magnitude.amax().expand(self.out_features)
        return (amax / self.weight_qmax).clamp_min(torch.finfo(torch.float32).eps).contiguous()

    def _bias(self) -> torch.Tensor:
        return (
            self.bias if self.bias is not None else torch.zeros(self.out_features, device=self.weight.device)
        )

    def quantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fake-quantised weight, weight scale, fake-quantised bias, bias scale), with gradients."""
        w_scale = self.weight_scale()
        zeros = torch.zeros(self.out_features, dtype=torch.int32, device=self.weight.device)
        weight = torch.fake_quantize_per_channel_affine(
            self.weight, w_scale, zeros, 0, -self.weight_qmax, self.weight_qmax
        )
        b_scale = self.input_scale * w_scale
        bias = self._bias()
        b_int = torch.clamp(torch.round(bias.detach() / b_scale), BIAS_QMIN, BIAS_QMAX)
        return weight, w_scale, bias + (b_int * b_scale - bias).detach(), b_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quantize_activation(x, self.input_scale, self.input_zero_point)
        weight, _, bias, _ = self.quantized()
        return F.linear(x, weight, bias)

    @torch.no_grad()
    def layer_quant(self) -> LayerQuant:
        """The frozen integers of this layer, for :func:`host.compress.qdq_builder.build_qdq_model`."""
        weight, w_scale, bias, b_scale = self.quantized()
        return LayerQuant(
            input_scale=float(self.input_scale),
            input_zero_point=int(self.input_zero_point),
            weight_q=torch.round(weight / w_scale[:, None]).to(torch.int8).cpu().numpy(),
            weight_scale=w_scale.cpu().numpy(),
            bias_q=torch.round(bias / b_scale).to(torch.int32).cpu().numpy(),
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, input_scale={float(self.input_scale):.4g}, "
            f"input_zero_point={int(self.input_zero_point)}, weight_qmax={self.weight_qmax}"
        )


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _evenly_spaced(obs: np.ndarray, n: int) -> np.ndarray:
    if n == 0 or obs.shape[0] <= n:
        return obs
    return obs[np.linspace(0, obs.shape[0] - 1, n).round().astype(np.int64)]


@torch.no_grad()
def layer_inputs(spec: PolicySpec, obs: np.ndarray) -> list[np.ndarray]:
    """What each dense layer of the fp32 actor receives on raw observations ``obs``."""
    mlp = mlp_from_spec(spec)
    x = normalize_obs(spec, torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)))
    inputs = []
    for module in mlp:
        if isinstance(module, nn.Linear):
            inputs.append(x.numpy())
        x = module(x)
    return inputs


def calibrate(spec: PolicySpec, obs: np.ndarray, cfg: QATConfig) -> list[tuple[float, int] | None]:
    """Frozen (scale, zero point) of each dense layer's input quantizer; None for fp32 layers.

    Ranges come from the fp32 actor (the baseline's weights) on ``obs``.
    """
    qparams: list[tuple[float, int] | None] = []
    for i, x in enumerate(layer_inputs(spec, obs)):
        if i == 0 and cfg.fp32_first_layer:
            qparams.append(None)
            continue
        if cfg.calibration == "percentile":
            low, high = np.percentile(x, [100.0 - cfg.calibration_percentile, cfg.calibration_percentile])
        else:
            low, high = x.min(), x.max()
        qparams.append(activation_qparams(float(low), float(high)))
    return qparams


def fake_quant_mlp(
    spec: PolicySpec, qparams: Sequence[tuple[float, int] | None], cfg: QATConfig
) -> nn.Sequential:
    """The spec's MLP with each calibrated layer replaced by a :class:`FakeQuantLinear`."""
    mlp = mlp_from_spec(spec)
    linear_index = 0
    for position, module in enumerate(mlp):
        if isinstance(module, nn.Linear):
            q = qparams[linear_index]
            if q is not None:
                mlp[position] = FakeQuantLinear(module, q[0], q[1], cfg.weight_qmax, cfg.per_channel)
            linear_index += 1
    return mlp


def export_quantized(spec: PolicySpec, linears: Sequence[nn.Linear]) -> onnx.ModelProto:
    """The QDQ model of ``spec`` whose dense layers are ``linears`` (fake-quantised or fp32)."""
    quants = [m.layer_quant() if isinstance(m, FakeQuantLinear) else None for m in linears]
    return build_qdq_model(spec, quants)


# --------------------------------------------------------------------------------------------
# Shared plumbing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Train on ``n`` threads (small MLPs gain nothing from more, and it keeps results reproducible)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _preserved_global_rng() -> Iterator[None]:
    """SB3 seeds the global random, numpy and torch generators; give the caller theirs back."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


@torch.no_grad()
def _action_mse(spec: PolicySpec, mlp: nn.Module, obs: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.mse_loss(forward_actions(spec, mlp, obs), target))


def compress(baseline: Baseline, cfg: QATConfig, ctx: CompressionContext) -> MethodOutput:
    """Quantization-aware training of ``baseline``'s actor, exported as an int8 QDQ graph.

    :raises CompressionError: rl mode without a checkpoint, an algorithm it cannot train, or an
        export that ONNX Runtime does not run with integer kernels
    """
    rollout = ctx.rollout(cfg.rollout_episodes, seed=cfg.seed, action_noise_std=cfg.action_noise_std)
    spec = baseline.spec
    calibration_obs = _evenly_spaced(rollout.obs, cfg.calibration_observations)
    qparams = calibrate(spec, calibration_obs, cfg)
    obs = torch.from_numpy(rollout.obs)
    with torch.no_grad():
        target = forward_actions(spec, mlp_from_spec(spec), obs)

    with _torch_threads(1):
        if cfg.mode == "distill":
            mlp, mode_params, mode_metrics = _distill(spec, qparams, obs, target, cfg)
        else:
            mlp, mode_params, mode_metrics = _rl(baseline, qparams, cfg)
        trained = spec_from_mlp(spec, mlp)
        linears = [m for m in mlp if isinstance(m, nn.Linear)]
        model = export_quantized(trained, linears)
        final_mse = _action_mse(spec, mlp, obs, target)
        check_obs = _evenly_spaced(rollout.obs, N_EXPORT_CHECK_OBS)
        with torch.no_grad():
            torch_actions = forward_actions(spec, mlp, torch.from_numpy(check_obs)).numpy()

    data = model.SerializeToString(deterministic=True)
    kernels = integer_kernels(data)
    n_int8_layers = sum(q is not None for q in qparams)
    if kernels.get("QGemm", 0) != n_int8_layers:
        raise CompressionError(
            f"ONNX Runtime {ort.__version__} fused {kernels.get('QGemm', 0)} of the {n_int8_layers} int8 layers "
            f"of the QAT graph into QGemm kernels (integer kernels found: {kernels or 'none'}); the others would "
            f"run in fp32 between QuantizeLinear/DequantizeLinear. Please report it with your ORT version"
        )
    onnx_actions = actions(data, check_obs, batch1=False)
    params: dict[str, Any] = {
        "mode": cfg.mode,
        "steps": cfg.n_steps,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "fp32_first_layer": cfg.fp32_first_layer,
        "weights": {
            "dtype": "int8",
            "symmetric": True,
            "per_channel": cfg.per_channel,
            "qmax": cfg.weight_qmax,
            "reduce_range": cfg.reduce_range,
        },
        "activations": {"dtype": "uint8", "per_tensor": True, "asymmetric": True},
        "calibration": {
            "method": cfg.calibration,
            **({"percentile": cfg.calibration_percentile} if cfg.calibration == "percentile" else {}),
            "n_observations": int(calibration_obs.shape[0]),
            "ranges_from": "baseline fp32 actor",
        },
        "rollout": rollout.provenance,
        **mode_params,
    }
    metrics: dict[str, Any] = {
        **mode_metrics,
        "action_mse_vs_baseline_on_rollouts": final_mse,
        # Not 0: ORT's fused QGemm requantizes with one combined scale, and the rare value on a half
        # step rounds the other way than in torch (seen: 2 of 891 Hopper observations, up to 0.025).
        "fake_quant_vs_onnx_max_abs": float(np.max(np.abs(onnx_actions - torch_actions))),
        "fake_quant_vs_onnx_mean_abs": float(np.mean(np.abs(onnx_actions - torch_actions))),
        "integer_kernels": kernels,
        "n_int8_layers": n_int8_layers,
    }
    return MethodOutput(
        model=model,
        params=params,
        hidden_sizes=trained.hidden_sizes,
        n_params=trained.n_params,
        metrics=metrics,
    )


# --------------------------------------------------------------------------------------------
# distill
# --------------------------------------------------------------------------------------------


def _distill(
    spec: PolicySpec,
    qparams: Sequence[tuple[float, int] | None],
    obs: torch.Tensor,
    target: torch.Tensor,
    cfg: QATConfig,
) -> tuple[nn.Sequential, dict[str, Any], dict[str, Any]]:
    """Fit the fake-quantised MLP to the baseline's env-space actions (MSE, Adam)."""
    mlp = fake_quant_mlp(spec, qparams, cfg)
    initial = _action_mse(spec, mlp, obs, target)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=cfg.lr)
    for _ in range(cfg.n_steps):
        idx = torch.randint(obs.shape[0], (cfg.batch_size,), generator=generator)
        loss = F.mse_loss(forward_actions(spec, mlp, obs[idx]), target[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    params = {
        "batch_size": cfg.batch_size,
        "loss": "mse of env-space actions vs the baseline",
        "optimizer": "adam",
    }
    metrics = {"distill_steps": cfg.n_steps, "distill_initial_mse": initial}
    return mlp, params, metrics


# --------------------------------------------------------------------------------------------
# rl
# --------------------------------------------------------------------------------------------

#: PPO's clip range while fine-tuning (SB3's default, and the RL Zoo's for the MuJoCo agents):
#: the checkpoint's own schedule is a pickled function that old checkpoints cannot restore.
PPO_CLIP_RANGE = 0.2
#: TD3 / DDPG exploration noise while fine-tuning, std of Gaussian noise on [-1, 1] actions (the RL
#: Zoo's MuJoCo setting); a checkpoint does not keep its action noise.
TD3_ACTION_NOISE_STD = 0.1


def _rl(
    baseline: Baseline, qparams: Sequence[tuple[float, int] | None], cfg: QATConfig
) -> tuple[nn.Sequential, dict[str, Any], dict[str, Any]]:
    """Continue the checkpoint's SB3 training with a fake-quantised actor; return that actor as an MLP."""
    if baseline.checkpoint is None:
        raise CompressionError(
            "QAT mode 'rl' continues the policy's own RL training and needs its SB3 checkpoint, which this "
            "baseline does not name: pass --checkpoint PATH (the .zip, or RL Zoo folder, it was exported from), "
            "or use --mode distill, which needs only the ONNX file"
        )
    try:
        loaded = load_checkpoint(
            Path(baseline.checkpoint),
            env_id=baseline.manifest.env_id,
            algo=baseline.manifest.algo,
            env_options=baseline.manifest.env_kwargs,
            obs_wrappers=baseline.manifest.obs_wrappers,
        )
    except DrlcError as exc:
        raise CompressionError(f"cannot load the checkpoint for QAT rl mode: {exc}") from exc
    model = loaded.model
    _check_same_actor(baseline.spec, spec_from_model(model, loaded.obs_norm), loaded.checkpoint)

    with _preserved_global_rng():
        venv, env_params = _training_env(loaded, cfg.seed)
        try:
            slots = _swap_actor_layers(model, qparams, cfg)
            algo_params = _prepare_for_training(model, venv, cfg)
            algo_metrics = _learn(model, cfg)
        finally:
            venv.close()

    spec = spec_from_model(model, loaded.obs_norm)
    mlp = nn.Sequential()
    act = mlp_from_spec(spec)  # for its activation modules
    activations = [m for m in act if not isinstance(m, nn.Linear)]
    for i, linear in enumerate(slots):
        mlp.append(linear)
        if i < len(activations):
            mlp.append(activations[i])
    params = {
        "algo": loaded.algo,
        "env_id": loaded.env_id,
        "checkpoint_sha256": loaded.checkpoint_sha256,
        **({"vecnormalize_sha256": loaded.vecnormalize_sha256} if loaded.vecnormalize_sha256 else {}),
        **env_params,
        **algo_params,
    }
    return mlp, params, algo_metrics


def _check_same_actor(expected: PolicySpec, got: PolicySpec, checkpoint: Path) -> None:
    """Refuse a checkpoint whose actor is not the baseline's: QAT would start from another policy."""
    same = len(expected.layers) == len(got.layers) and all(
        a.weight.shape == b.weight.shape
        and np.array_equal(a.weight, b.weight)
        and np.array_equal(a.bias, b.bias)
        for a, b in zip(expected.layers, got.layers, strict=False)
    )
    same = same and (expected.obs_norm is None) == (got.obs_norm is None)
    if same and expected.obs_norm is not None and got.obs_norm is not None:
        same = np.allclose(expected.obs_norm.mean, got.obs_norm.mean) and np.allclose(
            expected.obs_norm.var, got.obs_norm.var
        )
    if not same:
        raise CompressionError(
            f"{checkpoint.name} is not the checkpoint this baseline was exported from (its actor's weights or "
            f"observation statistics differ); pass the checkpoint the baseline came from"
        )


def _obs_wrapper_class(wrappers: Sequence[ObsWrapper]) -> Callable[[Any], Any] | None:
    """The policy's observation wrappers as make_vec_env's ``wrapper_class``: the agent's own implementations."""
    if not wrappers:
        return None

    def wrap(env: Any) -> Any:
        for wrapper in wrappers:
            env = apply_wrapper(env, wrapper.name, wrapper.params)
        return env

    return wrap


def _training_env(loaded: Any, seed: int) -> tuple[VecEnv, dict[str, Any]]:
    """The checkpoint's env, under a frozen VecNormalize with its statistics when it had one."""
    # SB3: only the rl mode trains, so distilling (and importing this module) never loads it
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = make_vec_env(
        loaded.env_id,
        n_envs=loaded.model.n_envs,
        seed=seed,
        env_kwargs=dict(loaded.env_kwargs),
        wrapper_class=_obs_wrapper_class(loaded.obs_wrappers),
    )
    if loaded.vecnormalize is None:
        return venv, {"vecnormalize": None}
    stats = _vecnormalize_state(loaded.vecnormalize)
    normalized = VecNormalize(
        venv,
        training=False,  # frozen: the exported graph bakes in the baseline's statistics
        norm_obs=loaded.obs_norm is not None,
        norm_reward=bool(stats.get("norm_reward", False)),
        clip_obs=loaded.obs_norm.clip_obs if loaded.obs_norm is not None else 10.0,
        clip_reward=float(stats.get("clip_reward", 10.0)),
        gamma=float(stats.get("gamma", 0.99)),
        epsilon=loaded.obs_norm.epsilon if loaded.obs_norm is not None else float(stats.get("epsilon", 1e-8)),
    )
    if loaded.obs_norm is not None:
        normalized.obs_rms.mean = np.array(loaded.obs_norm.mean, dtype=np.float64)
        normalized.obs_rms.var = np.array(loaded.obs_norm.var, dtype=np.float64)
    if normalized.norm_reward:
        normalized.ret_rms.mean = float(stats["ret_mean"])
        normalized.ret_rms.var = float(stats["ret_var"])
    return normalized, {
        "vecnormalize": {
            "frozen": True,
            "norm_obs": normalized.norm_obs,
            "norm_reward": normalized.norm_reward,
        }
    }


def _vecnormalize_state(path: Path) -> dict[str, Any]:
    """Reward-normalisation settings and statistics from a vecnormalize.pkl (read inertly, old gym too)."""
    try:
        stub = permissive_loads(path.read_bytes())
    except Exception as exc:  # any malformed pickle: reported, not crashed on
        raise CompressionError(f"cannot read {path.name}: {exc}") from exc
    state: dict[str, Any] = {
        key: getattr(stub, key)
        for key in ("norm_reward", "clip_reward", "gamma", "epsilon")
        if hasattr(stub, key)
    }
    ret_rms = getattr(stub, "ret_rms", None)
    if state.get("norm_reward"):
        try:
            state["ret_mean"] = float(np.asarray(ret_rms.mean))  # type: ignore[union-attr]
            state["ret_var"] = float(np.asarray(ret_rms.var))  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError) as exc:
            raise CompressionError(
                f"{path.name} normalises rewards but holds no return statistics: {exc}"
            ) from exc
    return state


def _actor_slots(model: BaseAlgorithm) -> tuple[list[tuple[nn.Module, str]], list[tuple[nn.Module, str]]]:
    """(parent, attribute) of the actor's containers in execution order, and of its target copy if any."""
    # SB3: only the rl mode trains, so distilling (and importing this module) never loads it
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    policy = model.policy
    if isinstance(policy, ActorCriticPolicy):  # PPO, A2C, TRPO
        return [(policy.mlp_extractor, "policy_net"), (policy, "action_net")], []
    if isinstance(policy, SACPolicy) or type(policy).__module__.startswith("sb3_contrib.tqc"):
        return [(policy.actor, "latent_pi"), (policy.actor, "mu")], []
    if isinstance(policy, TD3Policy):  # TD3, DDPG: the target actor trains the critic
        return [(policy.actor, "mu")], [(policy.actor_target, "mu")]
    raise CompressionError(
        f"QAT rl mode cannot train {type(model).__name__} ({type(policy).__name__}); "
        f"supported: PPO, A2C, TRPO, SAC, TQC, TD3, DDPG, or use --mode distill"
    )


def _swap_linears(
    slots: Sequence[tuple[nn.Module, str]], qparams: Sequence[tuple[float, int] | None], cfg: QATConfig
) -> list[nn.Linear]:
    """Replace the Linear layers under ``slots`` (in order) by FakeQuantLinear where ``qparams`` says."""
    found: list[nn.Linear] = []

    def visit(parent: nn.Module, name: str) -> None:
        module = getattr(parent, name)
        if isinstance(module, nn.Linear):
            index = len(found)
            if index >= len(qparams):
                raise CompressionError("the SB3 actor has more dense layers than the baseline (a drlc bug)")
            q = qparams[index]
            if q is not None:
                module = FakeQuantLinear(module, q[0], q[1], cfg.weight_qmax, cfg.per_channel)
                setattr(parent, name, module)
            found.append(module)
        else:
            for child in list(module._modules):
                visit(module, child)

    for parent, name in slots:
        visit(parent, name)
    if len(found) != len(qparams):
        raise CompressionError(
            f"the SB3 actor has {len(found)} dense layers, the baseline {len(qparams)} (a drlc bug, please report it)"
        )
    return found


def _swap_actor_layers(
    model: BaseAlgorithm, qparams: Sequence[tuple[float, int] | None], cfg: QATConfig
) -> list[nn.Linear]:
    actor, target = _actor_slots(model)
    layers = _swap_linears(actor, qparams, cfg)
    if target:
        _swap_linears(target, qparams, cfg)
    return layers


def _prepare_for_training(model: BaseAlgorithm, venv: VecEnv, cfg: QATConfig) -> dict[str, Any]:
    """Undo what loading for export switched off (learning rate, clip range, buffer, noise); seed."""
    # SB3: only the rl mode trains, so distilling (and importing this module) never loads it
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.utils import ConstantSchedule

    model.set_env(venv)
    model.set_random_seed(cfg.seed)
    model.verbose = 0  # a zoo checkpoint's verbose=1 would print SB3's tables into the host's output
    model.tensorboard_log = None
    model.learning_rate = cfg.lr
    model.lr_schedule = ConstantSchedule(cfg.lr)
    params: dict[str, Any] = {}
    if hasattr(model, "clip_range"):  # PPO
        model.clip_range = ConstantSchedule(PPO_CLIP_RANGE)
        params["clip_range"] = PPO_CLIP_RANGE
    if isinstance(model, OffPolicyAlgorithm):
        # The loader kept a one-transition buffer; training needs room for every new step.
        size = max(cfg.n_steps, 1)
        model.buffer_size = size
        model.replay_buffer = ReplayBuffer(
            size, model.observation_space, model.action_space, device=model.device, n_envs=model.n_envs
        )
        if type(model).__name__ in ("TD3", "DDPG"):
            act_dim = int(np.prod(model.action_space.shape))
            model.action_noise = NormalActionNoise(np.zeros(act_dim), TD3_ACTION_NOISE_STD * np.ones(act_dim))
            params["action_noise_std"] = TD3_ACTION_NOISE_STD
        params["batch_size"] = int(model.batch_size)
        params["replay_warmup_steps"] = min(cfg.n_steps, int(model.batch_size))
    else:
        params["steps_per_update"] = int(model.n_steps) * model.n_envs
    return params


def _learn(model: BaseAlgorithm, cfg: QATConfig) -> dict[str, Any]:
    """``cfg.n_steps`` env steps of the algorithm's own training; off-policy ones first fill the buffer.

    Off-policy algorithms act at random until ``learning_starts``; a fine-tuned policy should
    instead fill its fresh replay buffer with its own (exploring) actions, so the first
    ``batch_size`` steps are collected without gradient steps, then training continues.
    """
    # SB3: only the rl mode trains, so distilling (and importing this module) never loads it
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    if cfg.n_steps == 0:
        return {"rl_env_steps": 0, "rl_episodes": 0}
    if isinstance(model, OffPolicyAlgorithm):
        warmup = min(cfg.n_steps, int(model.batch_size))
        gradient_steps = model.gradient_steps
        model.learning_starts = 0
        model.gradient_steps = 0
        model.learn(total_timesteps=warmup)
        model.gradient_steps = gradient_steps
        if cfg.n_steps > warmup:
            model.learn(total_timesteps=cfg.n_steps - warmup, reset_num_timesteps=False)
    else:
        model.learn(total_timesteps=cfg.n_steps)
    assert model.env is not None  # set by _prepare_for_training, for mypy
    # Monitor (inside any VecNormalize) records the raw returns of the exploring training policy.
    returns = [float(r) for env_returns in model.env.env_method("get_episode_rewards") for r in env_returns]
    metrics: dict[str, Any] = {"rl_env_steps": int(model.num_timesteps), "rl_episodes": len(returns)}
    if returns:
        metrics["rl_train_return_mean_last_10"] = float(np.mean(returns[-10:]))
    return metrics


__all__ = [
    "CALIBRATIONS",
    "MODES",
    "FakeQuantLinear",
    "QATConfig",
    "calibrate",
    "compress",
    "fake_quant_mlp",
    "fake_quantize_activation",
]
