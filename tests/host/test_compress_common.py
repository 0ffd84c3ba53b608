"""The parts every compression method shares: reading a baseline back, finalizing a variant."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from host.compress import make_variant, method_config
from host.compress.variant import Baseline, CompressionContext, MethodOutput, finalize
from host.errors import CompressionError
from host.policies.onnx_builder import build_onnx
from host.policies.onnx_reader import spec_from_onnx
from host.policies.random_policies import random_policy


def test_reading_a_baseline_back_rebuilds_the_same_bytes() -> None:
    data, _, manifest = random_policy("Hopper-v5", hidden=(32, 16))
    spec, read_manifest = spec_from_onnx(data)
    assert read_manifest == manifest
    assert spec.hidden_sizes == [32, 16] and spec.obs_dim == 11 and spec.act_dim == 3
    assert build_onnx(spec, manifest) == data


def test_finalize_records_lineage_and_action_error() -> None:
    data, sha, _ = random_policy("Hopper-v5", hidden=(32, 16))
    baseline = Baseline.from_bytes(data)
    ctx = CompressionContext(baseline, held_out_episodes=1)
    # a "method" that perturbs the first layer's weights: a real, different graph
    spec = baseline.spec
    layers = list(spec.layers)
    layers[0] = type(layers[0])(layers[0].weight + 0.05, layers[0].bias)
    model = onnx.load_from_string(build_onnx(spec.replace(layers=tuple(layers))))
    out = MethodOutput(model=model, params={"ratio": 0.3}, hidden_sizes=[32, 16], n_params=spec.n_params)
    variant = finalize(baseline, "l2", out, ctx)
    m = variant.manifest
    assert m.parent_sha256 == sha and m.method == "l2" and m.method_params == {"ratio": 0.3}
    assert m.name.endswith("-l2-30")
    assert 0 < m.metrics["action_error_mean_abs"] <= m.metrics["action_error_max_abs"]
    assert m.metrics["action_error_eval"]["seed"] >= 1_000_000
    # deterministic: finalizing the same output again gives the same bytes
    assert finalize(baseline, "l2", out, ctx).sha256 == variant.sha256
    with pytest.raises(Exception, match="already a l2 variant"):
        Baseline.from_bytes(variant.data)


def test_finalize_refuses_nan_actions() -> None:
    data, _, _ = random_policy("Hopper-v5", hidden=(8,))
    baseline = Baseline.from_bytes(data)
    model = onnx.load_from_string(data)
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == "layers.1.weight":  # a method that broke the weights
            broken = np.full_like(onnx.numpy_helper.to_array(tensor), np.nan)
            model.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(broken, tensor.name))
    out = MethodOutput(model=model, params={}, hidden_sizes=[8], n_params=baseline.spec.n_params)
    with pytest.raises(CompressionError, match="non-finite"):
        finalize(baseline, "qat", out, CompressionContext(baseline, held_out_episodes=1))


def test_unknown_method_is_refused() -> None:
    data, _, _ = random_policy()
    with pytest.raises(CompressionError, match="unknown compression method 'zip'"):
        make_variant(Baseline.from_bytes(data), "zip", None)
    with pytest.raises(CompressionError, match="unknown compression method"):
        method_config("zip")
