"""Policies: from a trained actor (SB3 / RL Zoo, CleanRL, a foreign ONNX file) to drlc's
self-describing ONNX artifact.

- :mod:`host.policies.spec`: :class:`PolicySpec`, the framework-neutral actor description;
- :mod:`host.policies.algorithms`: the one registry of the algorithms drlc trains and imports;
- :mod:`host.policies.sb3`: SB3 / RL Zoo checkpoints and VecNormalize statistics -> PolicySpec;
- :mod:`host.policies.onnx_builder` / :mod:`host.policies.onnx_reader`: PolicySpec <-> ONNX bytes;
- :mod:`host.policies.env_setup` / :mod:`host.policies.env_choice`: the env a policy runs in (options,
  observation wrappers) and, for an old checkpoint, the newest env version that fits it;
- :mod:`host.policies.foreign_onnx` / :mod:`host.policies.cleanrl`: actors from other tools;
- :mod:`host.policies.importer` / :mod:`host.policies.foreign`: tie them together for
  ``drlc-host import`` and for training; :mod:`host.policies.reference`: the return an imported
  policy is expected to reach.

The package itself imports nothing, so reading a :class:`PolicySpec` does not load torch.
"""
