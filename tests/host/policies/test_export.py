"""Export of freshly built SB3 models: every supported algorithm matches predict(); the rest is refused.

Small nets on Pendulum-v1 (bounds [-2, 2], so the action rescaling is exercised) keep this fast.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import TQC, TRPO
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

from device_agent.contract.manifest import ArtifactManifest, sha256_bytes
from device_agent.store.validation import check_model_bytes
from host.errors import CheckpointError, ExportError, SpaceMismatchError, UnsupportedPolicyError
from host.policies.env_choice import choose_env
from host.policies.importer import (
    action_errors,
    baseline_manifest,
    export_model,
    export_spec,
    import_checkpoint,
    sample_observations,
)
from host.policies.onnx_builder import OPSET, build_onnx, read_manifest
from host.policies.sb3.actor import spec_from_model
from host.policies.sb3.detect import detect_algo, read_checkpoint_info
from host.policies.sb3.vecnormalize import load_vecnormalize_stats, read_vecnormalize
from host.policies.spec import DenseLayer, ObsNorm, PolicySpec

ENV_ID = "Pendulum-v1"


def small(**extra: Any) -> dict[str, Any]:
    """Fresh policy_kwargs each time: SB3 adds keys to the dict it is given."""
    return {"net_arch": [32, 32], **extra}


OFF_POLICY = {"buffer_size": 1000, "learning_starts": 0}
ATOL = 1e-5

# (class, constructor kwargs, expected algo, expected post-processing)
MODELS: list[tuple[type[BaseAlgorithm], dict[str, Any], str]] = [
    (SAC, {**OFF_POLICY, "policy_kwargs": small()}, "tanh_rescale"),
    (TD3, {**OFF_POLICY, "policy_kwargs": small()}, "tanh_rescale"),
    (DDPG, {**OFF_POLICY, "policy_kwargs": small()}, "tanh_rescale"),
    (TQC, {**OFF_POLICY, "policy_kwargs": small(n_critics=1, n_quantiles=5)}, "tanh_rescale"),
    (PPO, {"n_steps": 64, "policy_kwargs": small()}, "clip"),
    (A2C, {"n_steps": 8, "policy_kwargs": small()}, "clip"),
    (TRPO, {"n_steps": 64, "batch_size": 64, "policy_kwargs": small()}, "clip"),
    (PPO, {"n_steps": 64, "use_sde": True, "policy_kwargs": small(squash_output=True)}, "tanh_rescale"),
    (A2C, {"n_steps": 8, "use_sde": True, "policy_kwargs": small()}, "clip"),
]


def probe_obs(n: int = 200, seed: int = 1) -> np.ndarray:
    """Pendulum observations, plus far-out ones so clipping and saturation are exercised."""
    rng = np.random.default_rng(seed)
    rollout = sample_observations(ENV_ID, n, seed=seed)
    wild = rng.normal(0.0, 5.0, size=(n, rollout.shape[1])).astype(np.float32)
    return np.concatenate([rollout, wild])


def onnx_actions(onnx_bytes: bytes, obs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(["action"], {"obs": obs.astype(np.float32)})[0]


def assert_matches_predict(onnx_bytes: bytes, model: BaseAlgorithm, normalize=None) -> None:
    obs = probe_obs()
    expected, _ = model.predict(normalize(obs) if normalize else obs, deterministic=True)
    np.testing.assert_allclose(onnx_actions(onnx_bytes, obs), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(onnx_actions(onnx_bytes, obs[:1]), expected[:1], rtol=0, atol=ATOL)


@pytest.mark.parametrize(("cls", "kwargs", "postprocess"), MODELS, ids=lambda p: getattr(p, "__name__", None))
def test_fresh_model_exports_and_matches_predict(
    cls: type[BaseAlgorithm], kwargs: dict[str, Any], postprocess: str
) -> None:
    model = cls("MlpPolicy", ENV_ID, seed=0, device="cpu", **copy.deepcopy(kwargs))
    exported = export_model(model, None, ENV_ID, source={"origin": "test"}, training_seed=0)

    assert_matches_predict(exported.onnx_bytes, model)
    assert exported.max_abs_action_error is not None and exported.max_abs_action_error < ATOL
    m = exported.manifest
    assert (m.algo, m.env_id, m.name) == (cls.__name__.lower(), ENV_ID, f"{cls.__name__.lower()}-{ENV_ID}")
    assert (m.hidden_sizes, m.action_postprocess, m.observation_shape, m.action_shape) == (
        [32, 32],
        postprocess,
        [3],
        [1],
    )
    assert (m.action_low, m.action_high) == ([-2.0], [2.0])
    assert m.obs_normalization is None and m.training_seed == 0 and m.source == {"origin": "test"}
    assert {"drlc", "torch", "stable_baselines3", "onnx", "gymnasium", "mujoco"} <= set(m.versions)
    assert m.n_params == exported.spec.n_params == (3 * 32 + 32) + (32 * 32 + 32) + (32 * 1 + 1)
    assert read_manifest(exported.onnx_bytes) == m
    assert check_model_bytes(exported.onnx_bytes) == m
    again = export_model(model, None, ENV_ID, source={"origin": "test"}, training_seed=0, verify=False)
    assert again.onnx_bytes == exported.onnx_bytes and again.sha256 == sha256_bytes(exported.onnx_bytes)


@pytest.mark.parametrize(
    "activation_fn", [nn.Tanh, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.SELU, nn.Softplus, nn.Sigmoid]
)
def test_hidden_activations_match_torch(activation_fn: type[nn.Module]) -> None:
    model = PPO(
        "MlpPolicy",
        ENV_ID,
        n_steps=64,
        seed=0,
        device="cpu",
        policy_kwargs=small(activation_fn=activation_fn),
    )
    # Scale the weights up so activations see large pre-activations, where lowerings would differ.
    with torch.no_grad():
        for p in model.policy.mlp_extractor.policy_net.parameters():
            p.mul_(3.0)
    assert_matches_predict(export_model(model, None, ENV_ID).onnx_bytes, model)


def test_sac_gsde_mean_clip_is_kept() -> None:
    """With gSDE, SAC's mu ends in Hardtanh(-2, 2): tanh(clip(mu)) != tanh(mu) once |mu| > 2."""
    model = SAC("MlpPolicy", ENV_ID, use_sde=True, seed=0, device="cpu", **OFF_POLICY, policy_kwargs=small())
    with torch.no_grad():
        model.actor.mu[0].weight.mul_(50.0)  # push the mean far outside [-2, 2]
    spec = spec_from_model(model)
    assert spec.pre_squash_clip == 2.0
    exported = export_model(model, None, ENV_ID)
    assert_matches_predict(exported.onnx_bytes, model)
    assert np.max(np.abs(onnx_actions(exported.onnx_bytes, probe_obs()))) < 2.0 * np.tanh(2.0) + 1e-6


@pytest.mark.parametrize("norm_obs", [True, False])
def test_ppo_with_vecnormalize(norm_obs: bool) -> None:
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]), norm_obs=norm_obs, clip_obs=3.0)
    venv.seed(0)
    venv.reset()
    for _ in range(100):  # move the running statistics away from (0, 1)
        venv.step(np.array([venv.action_space.sample()]))
    model = PPO("MlpPolicy", venv, n_steps=64, seed=0, device="cpu", policy_kwargs=small())

    exported = export_model(model, venv, ENV_ID, algo="ppo")

    stats = load_vecnormalize_stats(venv)
    if not norm_obs:
        assert stats is None and exported.manifest.obs_normalization is None
        assert_matches_predict(exported.onnx_bytes, model)
        return
    assert stats is not None
    assert exported.manifest.obs_normalization is not None
    assert exported.manifest.obs_normalization.mean == [float(x) for x in venv.obs_rms.mean]
    assert exported.manifest.obs_normalization.clip_obs == 3.0
    assert_matches_predict(exported.onnx_bytes, model, normalize=venv.normalize_obs)
    # Forgetting obs_norm does not silently drop the normalisation the policy was trained with.
    forgot = export_model(model, None, ENV_ID, algo="ppo", verify=False)
    assert forgot.sha256 == exported.sha256 and "VecNormalize" in forgot.notes[0]


def test_import_saved_checkpoint_with_vecnormalize_beside(tmp_path: Path) -> None:
    """A modern SB3 zip with a vecnormalize.pkl beside it: env from the file name, algo detected."""
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]))
    venv.reset()
    for _ in range(50):
        venv.step(np.array([venv.action_space.sample()]))
    model = TRPO("MlpPolicy", venv, n_steps=64, batch_size=64, seed=3, device="cpu", policy_kwargs=small())
    model.save(tmp_path / f"{ENV_ID}.zip")
    venv.save(str(tmp_path / "vecnormalize.pkl"))

    exported = import_checkpoint(tmp_path / f"{ENV_ID}.zip")

    m = exported.manifest
    assert (m.algo, m.env_id, m.training_seed, exported.notes) == ("trpo", ENV_ID, 3, ())
    assert m.source["checkpoint_sha256"] == sha256_bytes((tmp_path / f"{ENV_ID}.zip").read_bytes())
    assert m.source["vecnormalize_sha256"] == sha256_bytes((tmp_path / "vecnormalize.pkl").read_bytes())
    assert str(tmp_path) not in m.to_json()
    assert m.obs_normalization == load_vecnormalize_stats(venv).to_manifest()
    assert_matches_predict(exported.onnx_bytes, model, normalize=venv.normalize_obs)
    assert import_checkpoint(tmp_path / f"{ENV_ID}.zip", verify=False).sha256 == exported.sha256


@pytest.mark.parametrize("cls", [A2C, PPO, TRPO, SAC, TD3, DDPG, TQC])
def test_algo_detected_from_checkpoint(tmp_path: Path, cls: type[BaseAlgorithm]) -> None:
    kwargs: dict[str, Any] = dict(OFF_POLICY) if cls in (SAC, TD3, DDPG, TQC) else {"n_steps": 8}
    if cls in (PPO, TRPO):
        kwargs["batch_size"] = 8
    cls("MlpPolicy", ENV_ID, device="cpu", policy_kwargs=small(), **kwargs).save(tmp_path / "model.zip")
    assert detect_algo(read_checkpoint_info(tmp_path / "model.zip")) == cls.__name__.lower()


# ---- what is refused, and how


def test_discrete_action_space_is_refused(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(UnsupportedPolicyError, match=r"Discrete\(2\).*Box action space"):
        spec_from_model(model)
    model.save(tmp_path / "CartPole-v1.zip")
    with pytest.raises(UnsupportedPolicyError, match="Discrete action space"):
        import_checkpoint(tmp_path / "CartPole-v1.zip")


class TinyImageEnv(gym.Env):
    """A real (if dull) env with image observations, for CnnPolicy."""

    observation_space = spaces.Box(0, 255, (36, 36, 3), np.uint8)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_cnn_policy_is_refused() -> None:
    model = PPO("CnnPolicy", TinyImageEnv(), n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(UnsupportedPolicyError, match=r"flat Box observations.*CnnPolicy"):
        spec_from_model(model)


class Doubler(BaseFeaturesExtractor):
    def __init__(self, observation_space: spaces.Box) -> None:
        super().__init__(observation_space, features_dim=observation_space.shape[0])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return 2 * obs


def test_custom_features_extractor_is_refused() -> None:
    model = SAC(
        "MlpPolicy", ENV_ID, device="cpu", **OFF_POLICY, policy_kwargs={"features_extractor_class": Doubler}
    )
    with pytest.raises(UnsupportedPolicyError, match="features extractor Doubler"):
        spec_from_model(model)


def test_unsupported_activation_is_refused() -> None:
    model = PPO(
        "MlpPolicy", ENV_ID, n_steps=8, batch_size=8, device="cpu", policy_kwargs={"activation_fn": nn.Mish}
    )
    with pytest.raises(UnsupportedPolicyError, match=r"Mish.*supported hidden activations: relu, tanh"):
        spec_from_model(model)


def test_shape_mismatch_with_env_is_refused(tmp_path: Path) -> None:
    model = SAC("MlpPolicy", ENV_ID, device="cpu", **OFF_POLICY, policy_kwargs=small())
    model.save(tmp_path / "model.zip")
    with pytest.raises(SpaceMismatchError, match=r"observation shape \(3,\).*InvertedPendulum-v5.*\(4,\)"):
        import_checkpoint(tmp_path / "model.zip", env_id="InvertedPendulum-v5")
    with pytest.raises(SpaceMismatchError, match=r"observation shape \(3,\).*InvertedPendulum-v5"):
        export_model(model, None, "InvertedPendulum-v5")


def test_wrong_algo_override_is_refused(tmp_path: Path) -> None:
    SAC("MlpPolicy", ENV_ID, device="cpu", **OFF_POLICY, policy_kwargs=small()).save(
        tmp_path / f"{ENV_ID}.zip"
    )
    with pytest.raises(CheckpointError, match=r"saved by SAC.*PPO cannot load; pass algo='sac'"):
        import_checkpoint(tmp_path / f"{ENV_ID}.zip", algo="ppo")
    with pytest.raises(CheckpointError, match="unknown algorithm 'dqn2'"):
        import_checkpoint(tmp_path / f"{ENV_ID}.zip", algo="dqn2")


def test_unknown_env_and_bad_files_are_refused(tmp_path: Path) -> None:
    SAC("MlpPolicy", ENV_ID, device="cpu", **OFF_POLICY, policy_kwargs=small()).save(tmp_path / "model.zip")
    with pytest.raises(CheckpointError, match=r"cannot tell which env.*pass env_id"):
        import_checkpoint(tmp_path / "model.zip")
    with pytest.raises(CheckpointError, match="cannot build env 'NoSuchEnv-v0'"):
        import_checkpoint(tmp_path / "model.zip", env_id="NoSuchEnv-v0")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable SB3 checkpoint"):
        import_checkpoint(tmp_path / "junk.zip", env_id=ENV_ID)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        import_checkpoint(tmp_path / "missing.zip")


def test_vecnormalize_pickle_cannot_run_code(tmp_path: Path) -> None:
    """The restricted unpickler builds inert stubs: a pickle that would call os.system does nothing."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    (tmp_path / "vecnormalize.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="does not hold VecNormalize statistics"):
        read_vecnormalize(tmp_path / "vecnormalize.pkl")
    assert not marker.exists()


def test_choose_env_upgrades_an_unbuildable_version() -> None:
    choice = choose_env("ckpt", None, None, trained_env_id="Hopper-v3")
    assert choice.spaces.env_id == "Hopper-v5"
    assert "Hopper-v3, which cannot be built here" in choice.notes[0] and "Hopper-v5" in choice.notes[0]
    choice = choose_env("ckpt", None, None, trained_env_id="Hopper-v4")
    assert (choice.spaces.env_id, choice.notes) == ("Hopper-v4", ())


# ---- the builder on hand-made specs


def make_spec(
    postprocess: str, low: list[float], high: list[float], obs_norm: ObsNorm | None = None
) -> PolicySpec:
    rng = np.random.default_rng(0)
    sizes = [4, 8, len(low)]
    layers = [
        DenseLayer(rng.normal(0, 2, (o, i)).astype(np.float32), rng.normal(0, 1, o).astype(np.float32))
        for i, o in itertools.pairwise(sizes)
    ]
    return PolicySpec(
        layers=tuple(layers),
        activation="relu",
        postprocess=postprocess,  # type: ignore[arg-type]
        action_low=np.array(low),
        action_high=np.array(high),
        obs_norm=obs_norm,
    )


def reference_actions(spec: PolicySpec, obs: np.ndarray) -> np.ndarray:
    x = obs.astype(np.float64)
    if spec.obs_norm is not None:
        x = spec.obs_norm.normalize(x)
    for i, layer in enumerate(spec.layers):
        x = x @ layer.weight.T.astype(np.float64) + layer.bias
        x = np.maximum(x, 0.0) if i < len(spec.layers) - 1 else x
    if spec.postprocess == "clip":
        return np.clip(x, spec.action_low, spec.action_high)
    return spec.action_low + 0.5 * (np.tanh(x) + 1.0) * (spec.action_high - spec.action_low)


@pytest.mark.parametrize("postprocess", ["tanh_rescale", "clip"])
@pytest.mark.parametrize(("low", "high"), [([-1.0, -1.0], [1.0, 1.0]), ([-1.0, 0.0], [3.0, 0.5])])
@pytest.mark.parametrize("linear_op", ["gemm", "matmul"])
def test_builder_matches_reference_maths(
    postprocess: str, low: list[float], high: list[float], linear_op: str
) -> None:
    norm = ObsNorm(
        mean=np.array([0.5, -1.0, 2.0, 0.0]), var=np.array([4.0, 0.25, 1.0, 1e-3]), clip_obs=5.0, epsilon=1e-8
    )
    spec = make_spec(postprocess, low, high, norm)
    obs = np.random.default_rng(1).normal(0, 3, (300, 4)).astype(np.float32)
    actions = onnx_actions(build_onnx(spec, linear_op=linear_op), obs)  # type: ignore[arg-type]
    np.testing.assert_allclose(actions, reference_actions(spec, obs), rtol=0, atol=ATOL)


def test_builder_names_and_format() -> None:
    norm = ObsNorm(mean=np.zeros(4), var=np.ones(4), clip_obs=10.0, epsilon=1e-8)
    spec = make_spec("tanh_rescale", [-1.0, 0.0], [3.0, 0.5], norm)
    model = onnx.load_from_string(build_onnx(spec))
    assert [n.name for n in model.graph.node] == [
        "obs_norm.sub", "obs_norm.mul", "obs_norm.clip",
        "layers.0.gemm", "layers.0.relu", "layers.1.gemm",
        "action.tanh", "action.scale", "action.offset",
    ]  # fmt: skip
    assert {"layers.0.weight", "layers.0.bias", "layers.1.weight", "obs_norm.mean"} <= {
        t.name for t in model.graph.initializer
    }
    assert [o.version for o in model.opset_import] == [OPSET]
    (inp,) = model.graph.input
    assert inp.name == "obs" and [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == [
        "batch",
        4,
    ]
    assert model.graph.output[0].name == "action"
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    # [-1, 1] bounds need no rescaling nodes at all.
    plain = onnx.load_from_string(build_onnx(make_spec("tanh_rescale", [-1.0], [1.0])))
    assert [n.name for n in plain.graph.node][-1] == "action.tanh"


def test_builder_refuses_a_manifest_for_another_graph() -> None:
    spec = make_spec("clip", [-1.0], [1.0])
    manifest = baseline_manifest(spec, env_id=ENV_ID, algo="ppo", source={}, training_seed=None)
    wrong = ArtifactManifest.model_validate({**manifest.model_dump(), "hidden_sizes": [16]})
    with pytest.raises(ExportError, match=r"hidden_sizes: manifest \[16\], graph \[8\]"):
        build_onnx(spec, wrong)


def test_policy_spec_validates() -> None:
    spec = make_spec("clip", [-1.0], [1.0])
    assert (spec.obs_dim, spec.act_dim, spec.hidden_sizes, spec.n_params) == (4, 1, [8], 4 * 8 + 8 + 8 + 1)
    with pytest.raises(ExportError, match="layer 0 outputs 8 features but layer 1 takes 3"):
        spec.replace(layers=(spec.layers[0], DenseLayer(np.zeros((1, 3)), np.zeros(1))))
    with pytest.raises(ExportError, match="'mish' is not supported; supported: relu"):
        spec.replace(activation="mish")
    with pytest.raises(ExportError, match="NaN"):
        DenseLayer(np.full((2, 2), np.nan), np.zeros(2))
    with pytest.raises(ExportError, match="3 entries but the first layer takes 4"):
        spec.replace(obs_norm=ObsNorm(np.zeros(3), np.ones(3), 10.0, 1e-8))
    with pytest.raises(ValueError, match="read-only"):
        spec.layers[0].weight[0, 0] = 1.0


def _sharp_ppo() -> PPO:
    """A PPO actor whose action head is steep enough that a 1e-3 input shift shows in its actions."""
    model = PPO("MlpPolicy", ENV_ID, n_steps=64, seed=0, device="cpu", policy_kwargs=small())
    with torch.no_grad():
        model.policy.action_net.weight.mul_(300.0)
        model.policy.mlp_extractor.policy_net[0].weight[:, 0].mul_(20.0)
    return model


def _tiny_std_norm() -> ObsNorm:
    """Statistics like a trained Humanoid's: one feature almost constant (std 1e-4) far from zero."""
    return ObsNorm(
        mean=np.array([0.7312345678, 0.1, 0.3]), var=np.array([1e-8, 0.5, 4.0]), clip_obs=10.0, epsilon=1e-8
    )


def _obs_near_mean(norm: ObsNorm, n: int = 256) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (norm.mean + rng.normal(size=(n, 3)) * np.sqrt(norm.var)).astype(np.float32)


def test_export_check_separates_the_graph_from_float32_normalisation() -> None:
    """A feature with std 1e-4: float32 normalisation moves actions, the graph itself stays exact."""
    model, norm = _sharp_ppo(), _tiny_std_norm()
    spec = spec_from_model(model, norm)
    errors = action_errors(build_onnx(spec), model, norm, _obs_near_mean(norm))
    assert errors.graph < 1e-5
    assert errors.float32_normalisation > 1e-4  # what used to be refused as "a drlc bug"
    assert errors.smallest_std == pytest.approx(1e-4)
    assert "smallest feature std 0.0001" in errors.float32_note()

    # A graph that is really wrong is still caught: one weight off by 1 %.
    first = spec.layers[0]
    weight = first.weight.copy()
    weight[0, 1] *= 1.01
    broken = dataclasses.replace(spec, layers=(dataclasses.replace(first, weight=weight), *spec.layers[1:]))
    assert action_errors(build_onnx(broken), model, norm, _obs_near_mean(norm)).graph > 1e-4


def test_export_notes_float32_normalisation_instead_of_refusing() -> None:
    model, norm = _sharp_ppo(), _tiny_std_norm()
    exported = export_spec(
        spec_from_model(model, norm),
        env=ENV_ID,
        algo="ppo",
        source={"origin": "test"},
        model=model,
        check_obs=_obs_near_mean(norm),
    )
    assert exported.max_abs_action_error is not None and exported.max_abs_action_error < 1e-5
    assert any(note.startswith("float32 observation normalisation moves") for note in exported.notes)
    # Without the tiny-std feature there is nothing to say.
    plain = export_spec(
        spec_from_model(model, None), env=ENV_ID, algo="ppo", source={"origin": "test"}, model=model
    )
    assert not any("float32" in note for note in plain.notes)
