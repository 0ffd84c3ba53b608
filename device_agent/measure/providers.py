"""The execution providers a session is opened with, and the options each is given.

Only TensorRT takes options from a job today: its engine cache, fp16 and int8 flags. The cache
directory is the agent's own (its data dir, or ``drlc-agent serve --trt-cache-dir``): a host asks for
a cache, never for a path on the device.
"""

from __future__ import annotations

from pathlib import Path

from device_agent.contract.settings import MeasurementSettings
from device_agent.contract.vocabulary import TENSORRT

TRT_CACHE_DIRNAME = "trt_engines"
"""The engine cache's folder under the agent's data dir, unless ``--trt-cache-dir`` names another."""

ENGINE_SUFFIX = ".engine"
"""What ONNX Runtime's TensorRT provider names the engines it caches."""


def provider_options(
    settings: MeasurementSettings, trt_cache_dir: Path | None
) -> tuple[list[str], list[dict[str, str]]]:
    """(providers, options) for ``ort.InferenceSession(providers=..., provider_options=...)``, one options dict
    per provider: TensorRT's from the job's ``trt_*`` settings, every other provider's empty.

    :param trt_cache_dir: the agent's engine cache directory; needed only when ``trt_engine_cache`` is asked for
        with TensorRT among the providers
    """
    providers = list(settings.execution_providers)
    options: list[dict[str, str]] = []
    for name in providers:
        if name != TENSORRT:
            options.append({})
            continue
        trt: dict[str, str] = {}
        if settings.trt_engine_cache:
            if trt_cache_dir is None:
                raise ValueError("trt_engine_cache needs the agent's cache directory; none was given")
            trt_cache_dir.mkdir(parents=True, exist_ok=True)
            trt.update(
                trt_engine_cache_enable="True",
                trt_engine_cache_path=str(trt_cache_dir),
                trt_timing_cache_enable="True",
                trt_timing_cache_path=str(trt_cache_dir),
            )
        if settings.trt_fp16:
            trt["trt_fp16_enable"] = "True"
        if settings.trt_int8:
            trt["trt_int8_enable"] = "True"
        options.append(trt)
    return providers, options


def cached_engines(trt_cache_dir: Path | None) -> set[str]:
    """The engine files in the cache now: compared before and after a session is made, they say whether it
    built a new engine or reused one."""
    if trt_cache_dir is None or not trt_cache_dir.is_dir():
        return set()
    return {p.name for p in trt_cache_dir.iterdir() if p.name.endswith(ENGINE_SUFFIX)}


def engine_cache_outcome(
    provider: str, settings: MeasurementSettings, before: set[str], after: set[str]
) -> str:
    """Say "built" or "reused" when TensorRT ran the session with its cache on; "" otherwise."""
    if provider != TENSORRT or not settings.trt_engine_cache:
        return ""
    return "built" if after - before else "reused"
