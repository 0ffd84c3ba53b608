"""Read a drlc fp32 artifact back into a :class:`PolicySpec`, so compression can start from the file alone.

Only graphs made by :func:`host.policies.onnx_builder.build_onnx` are read (their initializer
and node names are fixed); a compressed variant is not a starting point for another
compression, because compressing twice would hide which method did what.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from device_agent.contract.manifest import MANIFEST_KEY, ArtifactManifest
from device_agent.contract.vocabulary import BASELINE
from host.errors import ExportError
from host.policies.spec import DenseLayer, ObsNorm, PolicySpec


def load_model(data: bytes) -> tuple[onnx.ModelProto, ArtifactManifest]:
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ExportError(f"not an ONNX model: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if MANIFEST_KEY not in meta:
        raise ExportError("the ONNX model carries no drlc manifest; import or train it with drlc-host first")
    return model, ArtifactManifest.from_json(meta[MANIFEST_KEY])


def spec_from_onnx(data: bytes) -> tuple[PolicySpec, ArtifactManifest]:
    """The actor a baseline artifact holds, with the manifest it carries."""
    model, manifest = load_model(data)
    if manifest.method != BASELINE:
        raise ExportError(
            f"this artifact is already a {manifest.method} variant; compress its baseline "
            f"(sha256 {manifest.parent_sha256 or '?'}) instead"
        )
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = []
    i = 0
    while f"layers.{i}.weight" in weights:
        weight = weights[f"layers.{i}.weight"]
        # the Gemm form stores [out, in]; the MatMul form stores the transpose
        if any(n.name == f"layers.{i}.matmul" for n in model.graph.node):
            weight = weight.T
        layers.append(DenseLayer(weight, weights[f"layers.{i}.bias"]))
        i += 1
    if not layers:
        raise ExportError("no layers.{i}.weight initializers found: this graph was not built by drlc")
    params: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type in ("Elu", "LeakyRelu"):
            params = {a.name: a.f for a in node.attribute if a.name == "alpha"}
            break
    norm = manifest.obs_normalization
    pre_clip = weights.get("action.pre_clip_max")
    spec = PolicySpec(
        layers=tuple(layers),
        activation=manifest.activation,
        postprocess=manifest.action_postprocess,
        action_low=manifest.action_low,
        action_high=manifest.action_high,
        obs_norm=ObsNorm(norm.mean, norm.var, norm.clip_obs, norm.epsilon) if norm else None,
        activation_params=params,
        pre_squash_clip=float(pre_clip) if pre_clip is not None else None,
    )
    return spec, manifest
