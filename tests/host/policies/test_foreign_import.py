"""Policies from outside SB3: ONNX actors exported by other tools, and CleanRL actors.

Every file is made here the way its tool makes it: SB3's documented OnnxableSB3Policy export
(torch.onnx.export of the policy), an rsl_rl-style actor with its observation normaliser in the
graph, and state dicts with the architectures of CleanRL's scripts saved with torch.save. Each is
imported, checked against the original, and compressed like any drlc baseline.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from stable_baselines3 import PPO, SAC
from torch import nn
from typer.testing import CliRunner

from host.cli.main import app
from host.errors import ExportError, UnsupportedPolicyError
from host.policies.foreign import _parity, import_cleanrl, import_onnx_actor
from host.policies.foreign_onnx import foreign_spec, read_foreign_actor
from host.policies.importer import sample_observations
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace

runner = CliRunner()


def export(module: nn.Module, obs_dim: int, path: Path, outputs: list[str] | None = None) -> Path:
    """torch.onnx.export with a dynamic batch, as SB3's export guide does it (legacy exporter: no onnxscript)."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, obs_dim),),
            str(path),
            input_names=["input"],
            output_names=outputs,
            dynamic_axes={"input": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


class OnnxableSB3Policy(nn.Module):
    """SB3's documented export wrapper for on-policy models: returns actions, values, log_prob."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: torch.Tensor):
        return self.policy(observation, deterministic=True)


class OnnxableSACActor(nn.Module):
    """SB3's documented export wrapper for SAC: the actor's deterministic action, in [-1, 1]."""

    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.actor(observation, deterministic=True)


class RslRlActor(nn.Module):
    """An rsl_rl / Isaac Lab style export: empirical normaliser, then an ELU MLP, raw actions out."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("mean", torch.randn(obs_dim, generator=g))
        self.register_buffer("std", torch.rand(obs_dim, generator=g) + 0.5)
        self.actor = nn.Sequential(
            nn.Linear(obs_dim, 32), nn.ELU(), nn.Linear(32, 32), nn.ELU(), nn.Linear(32, act_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor((x - self.mean) / (self.std + 1e-2))


def test_sb3_onnxable_ppo_export_imports_and_compresses(tmp_path: Path, drlc_home: Path) -> None:
    model = PPO(
        "MlpPolicy",
        "Hopper-v5",
        n_steps=64,
        batch_size=64,
        device="cpu",
        seed=0,
        policy_kwargs={"net_arch": [32, 32]},
    )
    path = export(
        OnnxableSB3Policy(model.policy), 11, tmp_path / "ppo_hopper.onnx", ["actions", "values", "log_prob"]
    )
    imported = runner.invoke(
        app, ["import", str(path), "--env", "Hopper-v5", "--action-squash", "clip", "--algo", "ppo"]
    )
    assert imported.exit_code == 0, imported.output
    assert "imported ppo-Hopper-v5" in imported.output
    # the value head is an output too; named as the action, it is refused for its shape
    values = runner.invoke(
        app, ["import", str(path), "--env", "Hopper-v5", "--action-squash", "clip", "--onnx-output", "values"]
    )
    assert values.exit_code == 1 and "maps 11 observations to 1 actions" in values.output
    # the same actions as SB3's own predict (which clips to the bounds, as --action-squash clip says)
    exported = import_onnx_actor(path, "Hopper-v5", "clip")
    obs = sample_observations("Hopper-v5", 64, seed=1)

    session = ort.InferenceSession(exported.onnx_bytes, providers=["CPUExecutionProvider"])
    ours = session.run(None, {"obs": obs})[0]
    theirs, _ = model.predict(obs, deterministic=True)
    assert np.max(np.abs(ours - theirs)) < 1e-5
    assert exported.max_abs_action_error is not None and exported.max_abs_action_error < 1e-5
    for method in (
        ["--method", "ptdq"],
        ["--method", "ptsq"],
        ["--method", "l1", "--ratio", "0.3"],
        ["--method", "qat", "--steps", "50"],
    ):
        made = runner.invoke(app, ["compress", "ppo-Hopper-v5", *method])
        assert made.exit_code == 0, made.output
    with ResultsDB(Workspace.resolve().db_path) as db:
        assert sorted(m.method for m in db.models()) == ["baseline", "l1", "ptdq", "ptsq", "qat"]


def test_sb3_onnxable_sac_export_keeps_its_tanh_and_matches_predict(tmp_path: Path) -> None:
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        buffer_size=100,
        device="cpu",
        seed=0,
        policy_kwargs={"net_arch": [16, 16]},
    )
    path = export(OnnxableSACActor(model.actor), 3, tmp_path / "sac.onnx")
    assert read_foreign_actor(path.read_bytes()).trailing[-1][0] == "Tanh"
    exported = import_onnx_actor(path, "Pendulum-v1", "tanh", algo="sac")
    assert exported.manifest.action_postprocess == "tanh_rescale"
    assert any("read as the action squash" in n for n in exported.notes)
    obs = sample_observations("Pendulum-v1", 64, seed=1)

    session = ort.InferenceSession(exported.onnx_bytes, providers=["CPUExecutionProvider"])
    theirs, _ = model.predict(obs, deterministic=True)  # rescaled to Pendulum's [-2, 2]
    assert np.max(np.abs(session.run(None, {"obs": obs})[0] - theirs)) < 1e-5
    with pytest.raises(UnsupportedPolicyError, match="--action-squash none, but the graph ends with Tanh"):
        import_onnx_actor(path, "Pendulum-v1", "none")


def test_rsl_rl_style_actor_keeps_its_normaliser_and_raw_actions(tmp_path: Path, drlc_home: Path) -> None:
    path = export(RslRlActor(4, 1), 4, tmp_path / "policy.onnx")
    imported = runner.invoke(
        app, ["import", str(path), "--env", "InvertedPendulum-v5", "--action-squash", "none"]
    )
    assert imported.exit_code == 0, imported.output
    assert "obs normalisation in graph" in imported.output
    with ResultsDB(Workspace.resolve().db_path) as db:
        (row,) = db.models()
        manifest = db.manifest(row.sha256)
    assert manifest is not None and manifest.action_postprocess == "none" and manifest.algo == "onnx"
    for method in (["--method", "ptdq"], ["--method", "ptsq"], ["--method", "l2", "--ratio", "0.5"]):
        made = runner.invoke(app, ["compress", row.sha256[:12], *method])
        assert made.exit_code == 0, made.output
    deployed = runner.invoke(app, ["deploy", "--target", "local", "--episodes", "2", "--max-steps", "50"])
    assert deployed.exit_code == 0, deployed.output


def test_what_is_not_an_mlp_actor_is_refused_naming_the_op(tmp_path: Path, drlc_home: Path) -> None:
    layer_norm = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1))
    path = export(layer_norm, 4, tmp_path / "ln.onnx")
    with pytest.raises(UnsupportedPolicyError, match=r"LayerNormalization"):
        import_onnx_actor(path, "InvertedPendulum-v5", "clip")
    mixed = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    with pytest.raises(UnsupportedPolicyError, match=r"mixes hidden activations \['relu', 'tanh'\]"):
        import_onnx_actor(export(mixed, 4, tmp_path / "mixed.onnx"), "InvertedPendulum-v5", "clip")
    plain = export(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), 4, tmp_path / "plain.onnx")
    no_squash = runner.invoke(app, ["import", str(plain), "--env", "InvertedPendulum-v5"])
    assert no_squash.exit_code == 1 and "pass --action-squash tanh|clip|none" in no_squash.output
    no_env = runner.invoke(app, ["import", str(plain), "--action-squash", "clip"])
    assert no_env.exit_code == 1 and "does not say its env: pass --env" in no_env.output
    wrong_env = runner.invoke(app, ["import", str(plain), "--env", "Hopper-v5", "--action-squash", "clip"])
    assert wrong_env.exit_code == 1 and "maps 4 observations to 1 actions, but Hopper-v5" in wrong_env.output


def _cleanrl_actor(
    obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, head: str = "fc_mu"
) -> dict:
    """A state dict with the Actor of CleanRL's td3/ddpg (head fc_mu) or sac (fc_mean + fc_logstd) scripts."""
    torch.manual_seed(0)
    state = {
        "fc1.weight": torch.randn(256, obs_dim) * 0.1,
        "fc1.bias": torch.randn(256) * 0.1,
        "fc2.weight": torch.randn(256, 256) * 0.05,
        "fc2.bias": torch.randn(256) * 0.1,
        f"{head}.weight": torch.randn(act_dim, 256) * 0.05,
        f"{head}.bias": torch.randn(act_dim) * 0.1,
        "action_scale": torch.tensor((high - low) / 2.0, dtype=torch.float32),
        "action_bias": torch.tensor((high + low) / 2.0, dtype=torch.float32),
    }
    if head == "fc_mean":
        state |= {"fc_logstd.weight": torch.randn(act_dim, 256), "fc_logstd.bias": torch.randn(act_dim)}
    return state


def _qnet(obs_dim: int, act_dim: int) -> dict:
    return {
        "fc1.weight": torch.randn(256, obs_dim + act_dim),
        "fc1.bias": torch.randn(256),
        "fc3.weight": torch.randn(1, 256),
        "fc3.bias": torch.randn(1),
    }


def test_cleanrl_actors_load_with_their_scripts_architectures(tmp_path: Path, drlc_home: Path) -> None:
    low, high = np.full(3, -1.0), np.full(3, 1.0)
    td3 = tmp_path / "td3_continuous_action.cleanrl_model"
    torch.save((_cleanrl_actor(11, 3, low, high), _qnet(11, 3), _qnet(11, 3)), td3)
    imported = runner.invoke(app, ["import", str(td3), "--env", "Hopper-v5"])
    assert imported.exit_code == 0, imported.output
    assert "imported td3-Hopper-v5" in imported.output and "td3_continuous_action.py" in imported.output
    made = runner.invoke(app, ["compress", "td3-Hopper-v5", "--method", "ptsq"])
    assert made.exit_code == 0, made.output
    ddpg = tmp_path / "ddpg.cleanrl_model"
    torch.save((_cleanrl_actor(11, 3, low, high), _qnet(11, 3)), ddpg)
    assert import_cleanrl(ddpg, "Hopper-v5").manifest.algo == "ddpg"
    sac = tmp_path / "sac.cleanrl_model"
    torch.save(_cleanrl_actor(3, 1, np.array([-2.0]), np.array([2.0]), head="fc_mean"), sac)
    assert import_cleanrl(sac, "Pendulum-v1").manifest.algo == "sac"
    # ppo_continuous_action.py saves the whole Agent (critic and actor_mean, Tanh MLPs)
    agent = nn.ModuleDict(
        {
            "critic": nn.Sequential(
                nn.Linear(11, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
            ),
            "actor_mean": nn.Sequential(
                nn.Linear(11, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3)
            ),
        }
    )
    state = agent.state_dict() | {"actor_logstd": torch.zeros(1, 3)}
    ppo = tmp_path / "ppo_continuous_action.cleanrl_model"
    torch.save(state, ppo)
    exported = import_cleanrl(ppo, "Hopper-v5")
    assert exported.manifest.algo == "ppo" and exported.manifest.action_postprocess == "clip"
    assert any("NormalizeObservation" in n for n in exported.notes)
    # an actor for other bounds, and a state dict of something else, are refused with what was found
    with pytest.raises(UnsupportedPolicyError, match="does not fit the env's bounds"):
        import_cleanrl(sac, "InvertedPendulum-v5")
    old = tmp_path / "old.cleanrl_model"  # an older script's actor: no rescale buffers
    torch.save(
        {
            k: v
            for k, v in _cleanrl_actor(3, 1, np.array([-2.0]), np.array([2.0])).items()
            if "action" not in k
        },
        old,
    )
    with pytest.raises(UnsupportedPolicyError, match="no action_scale/action_bias buffers"):
        import_cleanrl(old, "Pendulum-v1")
    other = tmp_path / "other.cleanrl_model"
    torch.save({"encoder.weight": torch.zeros(2, 2), "encoder.bias": torch.zeros(2)}, other)
    with pytest.raises(UnsupportedPolicyError, match="its layers are encoder"):
        import_cleanrl(other, "Hopper-v5")


def _hand_built(
    path: Path, rescale: tuple[np.ndarray, np.ndarray] | None, batch: int | str = "batch"
) -> Path:
    """A graph as tf2onnx-style tools write it: MatMul + Add layers, a clipped (x - mean) / std in front,
    and a Tanh (optionally times scale plus offset, CleanRL's Actor) at the end; Pendulum-v1 sizes."""
    rng = np.random.default_rng(0)
    consts = {
        "mean": rng.normal(size=3),
        "std": rng.uniform(0.5, 2.0, 3),
        "lo": np.array(-5.0),
        "hi": np.array(5.0),
        "w0": rng.normal(size=(3, 16)) * 0.5,
        "b0": rng.normal(size=16) * 0.1,
        "w1": rng.normal(size=(16, 1)) * 0.5,
        "b1": rng.normal(size=1) * 0.1,
    }
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "lo", "hi"], ["normed"]),
        helper.make_node("MatMul", ["normed", "w0"], ["h0"]),
        helper.make_node("Add", ["h0", "b0"], ["h0b"]),
        helper.make_node("Relu", ["h0b"], ["a0"]),
        helper.make_node("MatMul", ["a0", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Tanh", ["h1b"], ["squashed" if rescale else "mu"]),
    ]
    if rescale is not None:
        consts |= {"scale": rescale[0], "offset": rescale[1]}
        nodes += [
            helper.make_node("Mul", ["squashed", "scale"], ["rescaled"]),
            helper.make_node("Add", ["rescaled", "offset"], ["mu"]),
        ]
    graph = helper.make_graph(
        nodes,
        "actor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("mu", TensorProto.FLOAT, [batch, 1])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_matmul_graphs_with_normaliser_rescale_and_fixed_batch_import(tmp_path: Path) -> None:
    plain = import_onnx_actor(_hand_built(tmp_path / "a.onnx", None, batch=1), "Pendulum-v1", "tanh")
    assert plain.manifest.obs_normalization is not None and plain.manifest.obs_normalization.clip_obs == 5.0
    assert plain.manifest.action_postprocess == "tanh_rescale" and plain.max_abs_action_error is not None
    # the rescale inside the graph (CleanRL's scale and bias for Pendulum's [-2, 2]) is the same squash
    same = import_onnx_actor(
        _hand_built(tmp_path / "b.onnx", (np.array([2.0]), np.array([0.0]))), "Pendulum-v1", "tanh"
    )

    obs = sample_observations("Pendulum-v1", 32, seed=2)
    acts = [
        ort.InferenceSession(e.onnx_bytes, providers=["CPUExecutionProvider"]).run(None, {"obs": obs})[0]
        for e in (plain, same)
    ]
    assert np.array_equal(acts[0], acts[1])  # one policy, one graph, whatever the exporter did after tanh
    assert same.manifest.model_copy(update={"source": {}}) == plain.manifest.model_copy(update={"source": {}})
    with pytest.raises(UnsupportedPolicyError, match="does not map \\[-1, 1\\] to the env's bounds"):
        import_onnx_actor(
            _hand_built(tmp_path / "c.onnx", (np.array([1.0]), np.array([0.0]))), "Pendulum-v1", "tanh"
        )


def test_the_parity_check_catches_a_wrong_squash(tmp_path: Path) -> None:
    actor = read_foreign_actor(_hand_built(tmp_path / "a.onnx", None).read_bytes())
    spec = foreign_spec(actor, "tanh", np.array([-2.0]), np.array([2.0]))
    exported = import_onnx_actor(tmp_path / "a.onnx", "Pendulum-v1", "tanh")
    obs = sample_observations("Pendulum-v1", 32, seed=0)
    with pytest.raises(ExportError, match="differs from the original"):
        _parity("a.onnx", spec, exported.onnx_bytes, np.zeros((32, 1)), obs)
