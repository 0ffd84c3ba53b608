"""The names both sides use, each declared once: algorithms and compression methods a manifest may name, and
the ONNX Runtime execution providers a job may ask for.

The agent does not train or compress; it carries these names in manifests and reports. They live here, in
the contract, so the host's registries (which algorithm class, which compression routine) key on the same
spelling the agent stores and sends back.
"""

from __future__ import annotations

ALGORITHMS: tuple[str, ...] = ("ppo", "a2c", "sac", "td3", "ddpg", "trpo", "tqc")
"""SB3 / sb3-contrib algorithm names, lower case, as a manifest's ``algo`` holds them."""

BASELINE = "baseline"
"""The ``method`` of an uncompressed policy: every variant is compared with it."""
INT8_METHODS: tuple[str, ...] = ("ptdq", "ptsq", "qat")
"""Quantization to int8: post-training dynamic, post-training static, quantization-aware training."""
PRUNING_METHODS: tuple[str, ...] = ("l1", "l2")
"""Structural pruning by the L1 or L2 norm of each hidden unit."""
COMPRESSION_METHODS: tuple[str, ...] = INT8_METHODS + PRUNING_METHODS
"""Every compression method, in the order reports list them."""
METHODS: tuple[str, ...] = (BASELINE, *COMPRESSION_METHODS)
"""Every ``method`` a manifest may hold."""

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
COREML = "CoreMLExecutionProvider"

PROVIDER_PREFERENCE: tuple[str, ...] = (TENSORRT, CUDA, COREML, CPU)
"""When a job names no provider: the fastest kind first, CPU last (ONNX Runtime's own last resort)."""
NVIDIA_PROVIDERS: tuple[str, ...] = (CUDA, TENSORRT)
"""Providers that run on an NVIDIA GPU: NVML reports their device memory and energy."""
