"""Random-weight MLP actors exported through the real ONNX builder: real drlc artifacts of any size.

Tests, benchmarks (``tools/``) and probes use them where the weights do not matter but the artifact must
be real (the agent checks, loads and runs it like any other). Their manifest says ``source.origin = "test"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from device_agent.contract.envs import build_env
from device_agent.contract.manifest import ArtifactManifest, ObsWrapper, sha256_bytes
from host.policies.onnx_builder import build_onnx
from host.policies.spec import DenseLayer, PolicySpec


def random_policy(
    env_id: str = "InvertedPendulum-v5",
    hidden: tuple[int, ...] = (16, 16),
    seed: int = 0,
    name: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    obs_wrappers: Sequence[ObsWrapper] = (),
) -> tuple[bytes, str, ArtifactManifest]:
    """A random tanh-rescaled MLP for ``env_id`` (with those options and wrappers): (onnx bytes, sha256, manifest)."""
    env = build_env(env_id, env_kwargs, obs_wrappers)
    obs_dim = int(env.observation_space.shape[0])
    act_dim = int(env.action_space.shape[0])
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng(seed)
    sizes = [obs_dim, *hidden, act_dim]
    layers = tuple(
        DenseLayer(rng.normal(0, 1 / np.sqrt(i), size=(o, i)).astype(np.float32), np.zeros(o, np.float32))
        for i, o in itertools.pairwise(sizes)
    )
    spec = PolicySpec(
        layers=layers, activation="relu", postprocess="tanh_rescale", action_low=low, action_high=high
    )
    manifest = ArtifactManifest(
        name=name or f"random-{env_id}-{seed}",
        algo="sac",
        env_id=env_id,
        env_kwargs=dict(env_kwargs or {}),
        obs_wrappers=list(obs_wrappers),
        observation_shape=[obs_dim],
        action_shape=[act_dim],
        action_low=[float(x) for x in low],
        action_high=[float(x) for x in high],
        hidden_sizes=list(hidden),
        activation="relu",
        action_postprocess="tanh_rescale",
        n_params=spec.n_params,
        source={"origin": "test", "seed": seed},
    )
    data = build_onnx(spec, manifest)
    return data, sha256_bytes(data), manifest
