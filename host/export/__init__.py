"""Export: from an SB3 model to drlc's self-describing ONNX artifact.

- :mod:`host.export.policy_spec`: :class:`PolicySpec`, the framework-neutral actor description;
- :mod:`host.export.sb3_loader`: SB3 / RL Zoo checkpoints and VecNormalize statistics -> PolicySpec;
- :mod:`host.export.onnx_builder`: PolicySpec (+ manifest) -> ONNX bytes, built by hand;
- :mod:`host.export.env_setup` / :mod:`host.export.env_choice`: the env a policy runs in (options,
  observation wrappers) and, for an old checkpoint, the newest env version that fits it;
- :mod:`host.export.foreign_onnx` / :mod:`host.export.cleanrl_loader`: actors from other tools.

:mod:`host.importer` ties them together for ``drlc-host import`` and for training.
"""

from host.export.onnx_builder import OPSET, build_graph, build_onnx, read_manifest
from host.export.policy_spec import ACTIVATIONS, DenseLayer, ObsNorm, PolicySpec
from host.export.sb3_loader import (
    ALGOS,
    LoadedCheckpoint,
    load_checkpoint,
    load_vecnormalize_stats,
    read_vecnormalize,
    spec_from_model,
)

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "OPSET",
    "DenseLayer",
    "LoadedCheckpoint",
    "ObsNorm",
    "PolicySpec",
    "build_graph",
    "build_onnx",
    "load_checkpoint",
    "load_vecnormalize_stats",
    "read_manifest",
    "read_vecnormalize",
    "spec_from_model",
]
