"""Read an actor exported to ONNX by another tool into a :class:`PolicySpec`.

Other tools export the same kind of policy drlc builds: an MLP of Gemm (or MatMul + Add) layers
with one hidden activation, sometimes an observation normaliser in front (``(x - mean) / std``,
maybe clipped, as rsl_rl / Isaac Lab exports carry it) and sometimes a Tanh, or the whole action
rescaling, at the end (SB3's documented ``OnnxableSB3Policy`` export stops before rescaling). This
reader walks the graph backwards from the action output to the observation input, so the other
outputs an export may carry (values, log-probabilities) are ignored, then reads the chain forwards.
Anything it cannot express is refused naming the node that stopped it.

What the tool did after the graph is not in the file, so the user says it (``--action-squash``):

- ``tanh``: the action is ``tanh`` of the last layer, rescaled from [-1, 1] to the env's bounds
  (SAC, TD3, DDPG); a trailing Tanh (and a rescale matching the env's) in the graph is that tanh;
- ``clip``: the last layer's output clipped to the env's bounds (PPO, A2C, TRPO); a trailing Clip
  to the same bounds is that clip;
- ``none``: the last layer's output is the action as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from host.errors import UnsupportedPolicyError
from host.policies.spec import ActionPostprocess, DenseLayer, ObsNorm, PolicySpec

ActionSquash = Literal["tanh", "clip", "none"]
ACTION_SQUASHES: tuple[ActionSquash, ...] = ("tanh", "clip", "none")

#: Ops that leave a batch of flat float vectors as they are.
_PASS_THROUGH = frozenset({"Identity", "Cast", "Flatten", "Reshape", "Expand", "Dropout"})
#: Pass-through ops whose second input is a shape, which exporters often compute (Shape -> ...).
_SHAPED = frozenset({"Reshape", "Expand"})
#: Hidden activations by ONNX op, with drlc's name.
_ACTIVATIONS = {
    "Relu": "relu",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Elu": "elu",
    "LeakyRelu": "leaky_relu",
    "Selu": "selu",
    "Softplus": "softplus",
}
_ELEMENTWISE = frozenset({"Sub", "Add", "Mul", "Div"})
#: Stands for "no clip" where the source graph normalises without clipping (ObsNorm needs a bound).
NO_CLIP = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ForeignActor:
    """What an ONNX actor from another tool holds, before the env and the squash complete it.

    :param layers: the dense layers
    :param activation: the hidden activation and its parameters
    :param obs_norm: the normaliser in front of the first layer, if any
    :param trailing: the nodes after the last layer (Tanh, Clip, a rescale), for the squash to absorb
    :param input_name: the observation input
    :param output_name: the action output
    """

    layers: tuple[DenseLayer, ...]
    activation: tuple[str, dict[str, float]]
    obs_norm: ObsNorm | None
    trailing: tuple[tuple[str, dict[str, Any]], ...]
    input_name: str
    output_name: str
    batch_one: bool

    @property
    def obs_dim(self) -> int:
        return self.layers[0].in_features

    @property
    def act_dim(self) -> int:
        return self.layers[-1].out_features


def _where(node: onnx.NodeProto) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"a {node.op_type} node"


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Graph:
    """Constants, producers and the data path of a model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            if node.op_type == "Identity" and node.input[0] in self.consts:
                # exporters share equal initializers through Identity nodes (torch: bias == log_std)
                self.consts[node.output[0]] = self.consts[node.input[0]]
                continue
            if node.op_type == "Constant" and node.output:
                value = _attrs(node).get("value")
                if isinstance(value, onnx.TensorProto):
                    self.consts[node.output[0]] = numpy_helper.to_array(value)
                    continue
            for out in node.output:
                self.producer[out] = node
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise UnsupportedPolicyError(
                f"the graph needs exactly one input, the observation; it has: {names}"
            )
        self.input = inputs[0]
        if not graph.output:
            raise UnsupportedPolicyError("the graph has no output")

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def data_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [name for name in node.input if name and name not in self.consts]

    def chain(self, output: str) -> list[onnx.NodeProto]:
        """The nodes from the input to ``output``, each with exactly one computed input."""
        nodes: list[onnx.NodeProto] = []
        tensor = output
        while tensor != self.input.name:
            node = self.producer.get(tensor)
            if node is None:
                raise UnsupportedPolicyError(
                    f"the output {output!r} is not computed from the observation input"
                )
            data = self.data_inputs(node)
            if node.op_type in _SHAPED and node.input[0] in data:
                # the shape may be computed (Shape -> ...); on a batch of flat vectors these keep it,
                # which the parity check against the original graph confirms
                data = [node.input[0]]
            if len(data) != 1:
                raise UnsupportedPolicyError(
                    f"{_where(node)} combines {len(data)} computed inputs; drlc imports a chain of layers "
                    f"(an MLP with element-wise activations)"
                )
            nodes.append(node)
            tensor = data[0]
        return nodes[::-1]


@dataclass
class _Affine:
    """``x * a + b``, element-wise, accumulated from the normaliser's ops."""

    a: np.ndarray
    b: np.ndarray
    clip: tuple[float, float] | None = None
    seen: bool = False


def _vector(value: np.ndarray, width: int, node: onnx.NodeProto) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(array.reshape(-1) if array.size == width else array, (width,)).astype(
            np.float64
        )
    except ValueError:
        raise UnsupportedPolicyError(
            f"{_where(node)} uses a constant of shape {array.shape} on {width} features"
        ) from None


def _clip_bounds(graph: _Graph, node: onnx.NodeProto) -> tuple[Any, Any]:
    attrs = _attrs(node)
    low: Any = attrs.get("min")
    high: Any = attrs.get("max")
    if len(node.input) > 1 and node.input[1]:
        low = graph.const(node.input[1])
    if len(node.input) > 2 and node.input[2]:
        high = graph.const(node.input[2])
    return low, high


def _linear(graph: _Graph, node: onnx.NodeProto, data: str) -> DenseLayer:
    if node.op_type == "Gemm":
        attrs = _attrs(node)
        weight = graph.const(node.input[1])
        if node.input[0] != data or weight is None or attrs.get("transA", 0):
            raise UnsupportedPolicyError(f"{_where(node)} is not observation x constant weight")
        w = np.asarray(weight, np.float64)
        w = w if attrs.get("transB", 0) else w.T  # to [out, in]
        w = w * float(attrs.get("alpha", 1.0))
        bias = graph.const(node.input[2]) if len(node.input) > 2 else None
        b = (
            np.zeros(w.shape[0])
            if bias is None
            else _vector(bias, w.shape[0], node) * float(attrs.get("beta", 1.0))
        )
        return DenseLayer(w, b)
    weight = graph.const(node.input[1])  # MatMul
    if node.input[0] != data or weight is None or np.ndim(weight) != 2:
        raise UnsupportedPolicyError(f"{_where(node)} is not observation x constant 2-D weight")
    w = np.asarray(weight, np.float64).T
    return DenseLayer(w, np.zeros(w.shape[0]))


def read_foreign_actor(data: bytes, output: str | None = None) -> ForeignActor:
    """The MLP actor in an ONNX file exported by another tool; :func:`foreign_spec` completes it for an env.

    :param output: the graph output that is the action; None: the first
    :raises UnsupportedPolicyError: naming the node (op) that is not part of an MLP actor
    """
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UnsupportedPolicyError(f"not an ONNX model: {exc}") from exc
    graph = _Graph(model)
    outputs = [o.name for o in model.graph.output]
    out_name = output or outputs[0]
    if out_name not in outputs:
        raise UnsupportedPolicyError(
            f"the graph has no output {out_name!r}; its outputs: {', '.join(outputs)}"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.input.type.tensor_type.shape.dim]
    if not dims or dims[-1] is None:
        raise UnsupportedPolicyError(
            f"the input {graph.input.name!r} has no fixed feature size (shape {dims})"
        )
    reader = _ChainReader(graph, int(dims[-1]))
    for node in graph.chain(out_name):
        reader.read(node)
    if not reader.layers:
        raise UnsupportedPolicyError("the graph has no Gemm or MatMul layer")
    layers, hidden, trailing, norm, width = (
        reader.layers,
        reader.hidden,
        reader.trailing,
        reader.norm,
        reader.width,
    )
    kinds = {(n, tuple(sorted(p.items()))) for n, p in hidden}
    if len(kinds) > 1:
        raise UnsupportedPolicyError(
            f"the graph mixes hidden activations {sorted(k[0] for k in kinds)}; drlc needs one"
        )
    return ForeignActor(
        layers=tuple(layers),
        activation=hidden[0] if hidden else ("relu", {}),
        obs_norm=_obs_norm(norm),
        trailing=tuple(_trailing_op(graph, node, width) for node in trailing),
        input_name=graph.input.name,
        output_name=out_name,
        batch_one=dims[0] == 1 and len(dims) == 2,
    )


def _trailing_op(graph: _Graph, node: onnx.NodeProto, width: int) -> tuple[str, dict[str, Any]]:
    """A node after the last layer, with its constants: Tanh, Clip(low, high), Mul(c), Add(c)."""
    op = node.op_type
    if op == "Tanh":
        return op, {}
    if op == "Clip":
        low, high = _clip_bounds(graph, node)
        return op, {"low": low, "high": high}
    if op in ("Mul", "Add") and len([n for n in node.input if n in graph.consts]) == 1:
        return op, {"c": _vector(graph.consts[_const_input(graph, node)], width, node)}
    raise UnsupportedPolicyError(
        f"{_where(node)} follows the last layer; drlc reads a Tanh, a Clip or a constant rescale there"
    )


def foreign_spec(actor: ForeignActor, squash: ActionSquash, low: np.ndarray, high: np.ndarray) -> PolicySpec:
    """The :class:`PolicySpec` of ``actor`` acting in an env with bounds ``[low, high]``.

    :raises UnsupportedPolicyError: when the graph's own ending contradicts ``squash`` or the bounds
    """
    if squash not in ACTION_SQUASHES:
        raise UnsupportedPolicyError(
            f"unknown --action-squash {squash!r}; one of: {', '.join(ACTION_SQUASHES)}"
        )
    low64, high64 = np.asarray(low, np.float64), np.asarray(high, np.float64)
    ops = [op for op, _ in actor.trailing]
    postprocess: ActionPostprocess
    if squash == "tanh":
        if ops not in ([], ["Tanh"], ["Tanh", "Mul"], ["Tanh", "Mul", "Add"], ["Tanh", "Add"]):
            raise UnsupportedPolicyError(f"--action-squash tanh, but the graph ends with {' -> '.join(ops)}")
        scale = next((p["c"] for op, p in actor.trailing if op == "Mul"), np.ones_like(low64))
        offset = next((p["c"] for op, p in actor.trailing if op == "Add"), np.zeros_like(low64))
        if len(ops) > 1 and not (
            np.allclose(scale, 0.5 * (high64 - low64), rtol=1e-5)
            and np.allclose(offset, 0.5 * (high64 + low64), atol=1e-6)
        ):
            raise UnsupportedPolicyError(
                f"the graph rescales its tanh by {scale} and {offset}, which does not map [-1, 1] to the env's "
                f"bounds [{low64}, {high64}]"
            )
        postprocess = "tanh_rescale"
    elif squash == "clip":
        if ops not in ([], ["Clip"]):
            raise UnsupportedPolicyError(f"--action-squash clip, but the graph ends with {' -> '.join(ops)}")
        if ops:
            p = actor.trailing[0][1]
            if not (np.allclose(p["low"], low64) and np.allclose(p["high"], high64)):
                raise UnsupportedPolicyError(
                    f"the graph clips actions to [{p['low']}, {p['high']}], not the env's bounds [{low64}, {high64}]"
                )
        postprocess = "clip"
    else:
        if ops == ["Tanh"] and np.all(low64 == -1.0) and np.all(high64 == 1.0):
            postprocess = "tanh_rescale"  # tanh into [-1, 1] is the whole post-processing here
        elif ops:
            raise UnsupportedPolicyError(
                f"--action-squash none, but the graph ends with {' -> '.join(ops)}; pass --action-squash tanh "
                f"(actions rescaled from [-1, 1] to the env's bounds) or clip"
            )
        else:
            postprocess = "none"
    name, params = actor.activation
    return PolicySpec(
        layers=actor.layers,
        activation=name,
        activation_params=params,
        postprocess=postprocess,
        action_low=low64,
        action_high=high64,
        obs_norm=actor.obs_norm,
    )


def run_original(data: bytes, actor: ForeignActor, obs: np.ndarray) -> np.ndarray:
    """The original graph's action output on ``obs`` (one call per row when its batch is fixed at 1)."""
    import onnxruntime as ort  # heavy: loaded only to run the original graph, not when the CLI starts

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    dtype = np.float64 if inputs[actor.input_name].type == "tensor(double)" else np.float32
    x = obs.astype(dtype)
    if actor.batch_one:
        rows = [session.run([actor.output_name], {actor.input_name: x[i : i + 1]})[0] for i in range(len(x))]
        return np.concatenate(rows).reshape(len(x), -1).astype(np.float64)
    return np.asarray(session.run([actor.output_name], {actor.input_name: x})[0], np.float64).reshape(
        len(x), -1
    )


def squashed(actions: np.ndarray, actor: ForeignActor, spec: PolicySpec) -> np.ndarray:
    """What the user's tool did after the original graph: the same post-processing, in numpy."""
    ops = [op for op, _ in actor.trailing]
    low, high = spec.action_low.astype(np.float64), spec.action_high.astype(np.float64)
    if spec.postprocess == "tanh_rescale":
        if not ops:
            actions = np.tanh(actions)
        if ops in ([], ["Tanh"]):
            actions = low + 0.5 * (actions + 1.0) * (high - low)
        return actions
    if spec.postprocess == "clip":
        return np.clip(actions, low, high)
    return actions


class _ChainReader:
    """Reads the input-to-output chain node by node: normaliser, then layers and activations, then the ending."""

    def __init__(self, graph: _Graph, width: int) -> None:
        self.graph = graph
        self.width = width
        self.norm = _Affine(np.ones(width), np.zeros(width))
        self.layers: list[DenseLayer] = []
        self.hidden: list[tuple[str, dict[str, float]]] = []
        self.trailing: list[onnx.NodeProto] = []
        self.current = graph.input.name

    def read(self, node: onnx.NodeProto) -> None:
        op = node.op_type
        if op in ("Gemm", "MatMul"):
            self._layer(node)
        elif op in _PASS_THROUGH:
            pass
        elif op == "Add" and self.layers and not self.trailing and _is_bias_add(self.graph, node, self.width):
            last = self.layers[-1]
            bias = _vector(self.graph.consts[_const_input(self.graph, node)], self.width, node)
            self.layers[-1] = DenseLayer(last.weight, last.bias.astype(np.float64) + bias)
        elif not self.layers and op in _ELEMENTWISE | {"Clip"}:
            _fold_normaliser(self.graph, node, self.norm, self.width)
        elif self.layers:
            self.trailing.append(node)
        else:
            raise UnsupportedPolicyError(
                f"{_where(node)} comes before the first layer and is not part of an observation normaliser "
                f"(Sub, Add, Mul, Div by constants, then Clip)"
            )
        self.current = node.output[0]

    def _layer(self, node: onnx.NodeProto) -> None:
        if self.layers:
            if not self.trailing:
                raise UnsupportedPolicyError(
                    f"{_where(node)} follows a layer with no activation between them"
                )
            if len(self.trailing) > 1:
                offender = next((n for n in self.trailing if n.op_type not in _ACTIVATIONS), self.trailing[1])
                raise UnsupportedPolicyError(
                    f"{_where(offender)} sits between two layers; drlc reads one activation there"
                )
            self.hidden.append(_activation(self.trailing.pop()))
        layer = _linear(self.graph, node, self.current)
        if layer.in_features != self.width:
            raise UnsupportedPolicyError(
                f"{_where(node)} takes {layer.in_features} features, gets {self.width}"
            )
        self.layers.append(layer)
        self.width = layer.out_features


def _const_input(graph: _Graph, node: onnx.NodeProto) -> str:
    return next(name for name in node.input if name in graph.consts)


def _is_bias_add(graph: _Graph, node: onnx.NodeProto, width: int) -> bool:
    names = [name for name in node.input if name in graph.consts]
    return len(names) == 1 and np.size(graph.consts[names[0]]) in (1, width)


def _activation(node: onnx.NodeProto) -> tuple[str, dict[str, float]]:
    name = _ACTIVATIONS.get(node.op_type)
    if name is None:
        raise UnsupportedPolicyError(
            f"{_where(node)} is not a hidden activation drlc can express ({', '.join(_ACTIVATIONS)})"
        )
    attrs = _attrs(node)
    if name in ("elu", "leaky_relu"):
        default = 1.0 if name == "elu" else 0.01
        return name, {"alpha": float(attrs.get("alpha", default))}
    if name == "selu" and ("alpha" in attrs or "gamma" in attrs):
        if (
            abs(attrs.get("alpha", 1.67326) - 1.6732632) > 1e-5
            or abs(attrs.get("gamma", 1.0507) - 1.0507009) > 1e-5
        ):
            raise UnsupportedPolicyError(f"{_where(node)} is a Selu with non-standard alpha/gamma")
    return name, {}


def _fold_normaliser(graph: _Graph, node: onnx.NodeProto, norm: _Affine, width: int) -> None:
    if node.op_type == "Clip":
        low, high = _clip_bounds(graph, node)
        if low is None or high is None or np.size(low) != 1 or np.size(high) != 1:
            raise UnsupportedPolicyError(
                f"{_where(node)} clips the observation with non-scalar or missing bounds"
            )
        if not np.isclose(float(low), -float(high)):
            raise UnsupportedPolicyError(
                f"{_where(node)} clips the observation asymmetrically to [{low}, {high}]"
            )
        norm.clip = (float(low), float(high))
        return
    if norm.clip is not None:
        raise UnsupportedPolicyError(f"{_where(node)} changes the observation after it was clipped")
    consts = [name for name in node.input if name in graph.consts]
    if len(consts) != 1 or (node.input[0] in graph.consts and node.op_type in ("Sub", "Div")):
        raise UnsupportedPolicyError(f"{_where(node)} is not observation {node.op_type} constant")
    c = _vector(graph.consts[consts[0]], width, node)
    if node.op_type == "Sub":
        norm.b = norm.b - c
    elif node.op_type == "Add":
        norm.b = norm.b + c
    elif node.op_type == "Mul":
        norm.a, norm.b = norm.a * c, norm.b * c
    else:
        norm.a, norm.b = norm.a / c, norm.b / c
    norm.seen = True


def _obs_norm(norm: _Affine) -> ObsNorm | None:
    if not norm.seen and norm.clip is None:
        return None
    if np.any(norm.a <= 0):
        raise UnsupportedPolicyError(
            "the observation normaliser scales some entries by a zero or negative factor; drlc expresses "
            "(obs - mean) / std with std > 0"
        )
    mean = -norm.b / norm.a
    var = 1.0 / norm.a**2
    clip = norm.clip[1] if norm.clip is not None else NO_CLIP
    return ObsNorm(mean=mean, var=var, clip_obs=clip, epsilon=0.0)
