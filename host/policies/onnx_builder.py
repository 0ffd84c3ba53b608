"""Build the drlc ONNX artifact from a :class:`PolicySpec`, by hand, with ``onnx.helper``.

Why by hand and not ``torch.onnx.export``: the graph is small and fixed (normalise, a few dense
layers, post-process), and building it node by node gives the same bytes for the same inputs, so
a variant's sha256 is reproducible; it also yields one self-contained file (no external data) with
stable node and initializer names that quantization tools can include or exclude by name later.

Names (``i`` counts dense layers from 0; tensors are named after the node that produces them):

- input ``obs`` float32 ``[batch, obs_dim]``, output ``action`` float32 ``[batch, act_dim]``;
- ``obs_norm.sub`` / ``obs_norm.mul`` / ``obs_norm.clip`` with initializers ``obs_norm.mean``,
  ``obs_norm.scale``, ``obs_norm.clip_min``, ``obs_norm.clip_max``;
- ``layers.{i}.gemm`` (or ``layers.{i}.matmul`` + ``layers.{i}.add``) with ``layers.{i}.weight``
  and ``layers.{i}.bias``; the hidden activation ``layers.{i}.<activation>`` (multi-node
  activations use ``layers.{i}.<activation>.<op>``);
- ``action.pre_clip`` / ``action.tanh`` / ``action.scale`` / ``action.offset`` for
  ``tanh_rescale``, ``action.clip`` (or ``action.min`` + ``action.max``) for ``clip``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import host
from device_agent.contract.manifest import INPUT_NAME, MANIFEST_KEY, OUTPUT_NAME, ArtifactManifest
from host.errors import ExportError
from host.policies.spec import PolicySpec

#: Opset 17: supported by every onnxruntime since 1.13 (the agent requires >= 1.20), and both
#: quantize_dynamic and quantize_static (QDQ, per-channel) work on it.
OPSET = 17
#: IR version 8 is the one that goes with opset 17; newer IR versions would lock out older runtimes
#: on devices for no gain.
IR_VERSION = 8
BATCH_DIM = "batch"

LinearOp = Literal["gemm", "matmul"]

# torch.nn.SELU's constants (ONNX's defaults are these rounded to float32).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_GAMMA = 1.0507009873554804934193349852946


@dataclass
class _GraphBuilder:
    """Collects nodes and initializers in order; each node's output tensor carries the node's name."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    tensor_names: set[str] = field(default_factory=lambda: {INPUT_NAME, OUTPUT_NAME})

    def _claim(self, name: str) -> str:
        if name in self.tensor_names:
            raise ExportError(f"tensor name {name!r} used twice in the graph (a drlc bug, please report it)")
        self.tensor_names.add(name)
        return name

    def const(self, name: str, value: np.ndarray | float) -> str:
        array = np.asarray(value, dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(array, name=self._claim(name)))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [self._claim(name)], name=name, **attrs))
        return name


def _emit_activation(g: _GraphBuilder, spec: PolicySpec, x: str, prefix: str) -> str:
    """Append the hidden activation of ``spec`` to ``x``; ``prefix`` is e.g. ``layers.0``."""
    act = spec.activation
    params = spec.activation_params
    name = f"{prefix}.{act}"
    if act == "relu":
        return g.node("Relu", [x], name)
    if act == "tanh":
        return g.node("Tanh", [x], name)
    if act == "sigmoid":
        return g.node("Sigmoid", [x], name)
    if act == "softplus":
        return g.node("Softplus", [x], name)
    if act == "elu":
        return g.node("Elu", [x], name, alpha=params["alpha"])
    if act == "leaky_relu":
        return g.node("LeakyRelu", [x], name, alpha=params["alpha"])
    if act == "selu":
        return g.node("Selu", [x], name, alpha=_SELU_ALPHA, gamma=_SELU_GAMMA)
    if act == "silu":
        # No Silu/Swish op before opset 24: x * sigmoid(x).
        sig = g.node("Sigmoid", [x], f"{name}.sigmoid")
        return g.node("Mul", [x, sig], f"{name}.mul")
    if act == "gelu":
        # torch's exact GELU; the Gelu op only exists from opset 20: 0.5 * x * (1 + erf(x / sqrt(2))).
        scaled = g.node("Mul", [x, g.const(f"{name}.inv_sqrt2", 1.0 / math.sqrt(2.0))], f"{name}.scale")
        erf = g.node("Erf", [scaled], f"{name}.erf")
        one_plus = g.node("Add", [erf, g.const(f"{name}.one", 1.0)], f"{name}.add")
        half_x = g.node("Mul", [x, g.const(f"{name}.half", 0.5)], f"{name}.half_x")
        return g.node("Mul", [half_x, one_plus], f"{name}.mul")
    raise ExportError(f"no ONNX lowering for activation {act!r}")  # PolicySpec validates, so a bug if reached


def _emit_linear(g: _GraphBuilder, spec: PolicySpec, x: str, index: int, linear_op: LinearOp) -> str:
    layer = spec.layers[index]
    prefix = f"layers.{index}"
    bias = g.const(f"{prefix}.bias", layer.bias)
    if linear_op == "gemm":
        weight = g.const(f"{prefix}.weight", layer.weight)
        return g.node("Gemm", [x, weight, bias], f"{prefix}.gemm", transB=1)
    # MatMul stores the weight as [in, out].
    weight = g.const(f"{prefix}.weight", np.ascontiguousarray(layer.weight.T))
    product = g.node("MatMul", [x, weight], f"{prefix}.matmul")
    return g.node("Add", [product, bias], f"{prefix}.add")


def _emit_postprocess(g: _GraphBuilder, spec: PolicySpec, x: str) -> str:
    low = spec.action_low.astype(np.float64)
    high = spec.action_high.astype(np.float64)
    if spec.postprocess == "tanh_rescale":
        if spec.pre_squash_clip is not None:
            c = spec.pre_squash_clip
            x = g.node(
                "Clip",
                [x, g.const("action.pre_clip_min", -c), g.const("action.pre_clip_max", c)],
                "action.pre_clip",
            )
        x = g.node("Tanh", [x], "action.tanh")
        # low + 0.5 * (a + 1) * (high - low) == a * half_range + mid; skipped when it is the identity.
        half_range = 0.5 * (high - low)
        mid = 0.5 * (high + low)
        if not np.all(half_range == 1.0):
            x = g.node("Mul", [x, g.const("action.half_range", half_range)], "action.scale")
        if not np.all(mid == 0.0):
            x = g.node("Add", [x, g.const("action.mid", mid)], "action.offset")
        return x
    if spec.postprocess == "none":
        return x
    # "clip": Clip takes scalar bounds only, so per-dimension bounds need Min and Max.
    if np.all(low == low[0]) and np.all(high == high[0]):
        return g.node(
            "Clip", [x, g.const("action.low", low[0]), g.const("action.high", high[0])], "action.clip"
        )
    x = g.node("Min", [x, g.const("action.high", high)], "action.min")
    return g.node("Max", [x, g.const("action.low", low)], "action.max")


def build_graph(spec: PolicySpec, *, linear_op: LinearOp = "gemm") -> onnx.GraphProto:
    """The policy graph alone (no model wrapper, no metadata), for callers that edit it further.

    :param spec: the actor to express
    :param linear_op: ``"gemm"`` (default: one node per layer) or ``"matmul"`` (MatMul with the
        weight stored as ``[in, out]``, then Add), for tools that only handle MatMul. onnxruntime's
        ``quantize_dynamic`` works on the Gemm graph: it rewrites Gemm into MatMul itself (ORT 1.32).
    """
    if linear_op not in ("gemm", "matmul"):
        raise ExportError(f"linear_op must be 'gemm' or 'matmul', got {linear_op!r}")
    g = _GraphBuilder()
    x = INPUT_NAME
    if spec.obs_norm is not None:
        norm = spec.obs_norm
        x = g.node("Sub", [x, g.const("obs_norm.mean", norm.mean)], "obs_norm.sub")
        x = g.node("Mul", [x, g.const("obs_norm.scale", norm.scale)], "obs_norm.mul")
        clip_inputs = [
            x,
            g.const("obs_norm.clip_min", -norm.clip_obs),
            g.const("obs_norm.clip_max", norm.clip_obs),
        ]
        x = g.node("Clip", clip_inputs, "obs_norm.clip")
    for i in range(len(spec.layers)):
        x = _emit_linear(g, spec, x, i, linear_op)
        if i < len(spec.layers) - 1:
            x = _emit_activation(g, spec, x, f"layers.{i}")
    x = _emit_postprocess(g, spec, x)
    # The last node's output becomes the graph output; no node reads it, so renaming is safe.
    last = g.nodes[-1]
    assert last.output[0] == x  # for mypy and for the invariant above
    last.output[0] = OUTPUT_NAME
    return helper.make_graph(
        g.nodes,
        "drlc_policy",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, spec.obs_dim])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, spec.act_dim])],
        initializer=g.initializers,
    )


def build_onnx(
    spec: PolicySpec, manifest: ArtifactManifest | None = None, *, linear_op: LinearOp = "gemm"
) -> bytes:
    """Serialize ``spec`` as a checked, self-contained ONNX model with ``manifest`` in its metadata.

    The same spec and manifest give the same bytes (no timestamps, fixed names, fixed order).

    :param spec: the actor to express
    :param manifest: stored as JSON under :data:`device_agent.manifest.MANIFEST_KEY`; None for a
        bare graph (tests, intermediate graphs), which the device agent will refuse
    :param linear_op: see :func:`build_graph`
    :return: the serialized model
    :raises ExportError: if the manifest disagrees with the spec or the model fails ``onnx.checker``
    """
    if manifest is not None:
        _check_manifest_matches(spec, manifest)
    model = helper.make_model(
        build_graph(spec, linear_op=linear_op),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="drlc",
        producer_version=host.__version__,
        ir_version=IR_VERSION,
    )
    if manifest is not None:
        helper.set_model_props(model, {MANIFEST_KEY: manifest.to_json()})
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(
            f"the generated ONNX graph is invalid (a drlc bug, please report it): {exc}"
        ) from exc
    return model.SerializeToString(deterministic=True)


def read_manifest(model_bytes: bytes) -> ArtifactManifest:
    """The manifest stored in a serialized drlc model.

    :raises ExportError: if the model carries no drlc manifest
    """
    model = onnx.load_from_string(model_bytes)
    for prop in model.metadata_props:
        if prop.key == MANIFEST_KEY:
            return ArtifactManifest.from_json(prop.value)
    raise ExportError(f"the ONNX model has no {MANIFEST_KEY!r} entry in its metadata_props")


def _check_manifest_matches(spec: PolicySpec, manifest: ArtifactManifest) -> None:
    """Refuse a manifest that describes a different graph: the device trusts it to pick the env."""
    expected = {
        "observation_shape": [spec.obs_dim],
        "action_shape": [spec.act_dim],
        "hidden_sizes": spec.hidden_sizes,
        "activation": spec.activation,
        "action_postprocess": spec.postprocess,
        "n_params": spec.n_params,
        "action_low": [float(x) for x in spec.action_low],
        "action_high": [float(x) for x in spec.action_high],
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    wrong = {k: (getattr(manifest, k), v) for k, v in expected.items() if getattr(manifest, k) != v}
    if (manifest.obs_normalization is None) != (spec.obs_norm is None):
        wrong["obs_normalization"] = (
            "present" if manifest.obs_normalization else "absent",
            "present" if spec.obs_norm else "absent",
        )
    if wrong:
        detail = "; ".join(f"{k}: manifest {m!r}, graph {g!r}" for k, (m, g) in wrong.items())
        raise ExportError(f"the manifest does not describe this policy graph ({detail})")
