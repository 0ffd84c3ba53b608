"""The ONNX Runtime session a worker times, and how it is called: bound once to preallocated buffers.

Between ``env.step`` and the inference call the loop does only what the measurement needs: copy the observation
into the preallocated float32 input buffer, read the clock, run the session (bound once to that buffer and to a
preallocated output buffer through ONNX Runtime's IO binding), read the clock. docs/performance.md has the
measurements behind each choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from device_agent.contract.errors import InvalidModelError, InvalidRequestError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.settings import MeasurementSettings
from device_agent.measure.providers import provider_options


class Policy(Protocol):
    """Anything that maps a (1, obs_dim) float32 buffer to a (1, act_dim) action array."""

    def __call__(self) -> np.ndarray: ...


def session_options(settings: MeasurementSettings) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(
    model_path: Path | bytes,
    settings: MeasurementSettings,
    trt_cache_dir: Path | None = None,
    options: Any = None,
) -> Any:
    """The session every phase runs: the job's providers, each with its options (``device_agent.measure.providers``).

    :param options: SessionOptions to use instead of ``session_options(settings)`` (the operator profile's)
    """
    options = options or session_options(settings)
    providers, provider_opts = provider_options(settings, trt_cache_dir)
    try:
        source = model_path if isinstance(model_path, bytes) else str(model_path)
        return ort.InferenceSession(
            source, sess_options=options, providers=providers, provider_options=provider_opts
        )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise InvalidModelError(f"ONNX Runtime cannot load the model: {type(exc).__name__}: {exc}") from exc


def bind_session(session: Any, obs_buffer: np.ndarray, action_shape: tuple[int, ...]) -> tuple[Policy, str]:
    """Bind the session once to the preallocated input buffer and a preallocated output buffer.

    :return: (infer, how): ``infer()`` runs the model on whatever ``obs_buffer`` holds and returns the
        action buffer (the same array every call: copy it to keep it); ``how`` is "io_binding", or
        "session_run" where IO binding does not suit the provider or the model (then each call allocates
        its output, as a plain ``session.run`` does).
    """
    in_name = session.get_inputs()[0].name
    out_name = session.get_outputs()[0].name
    feeds = {in_name: obs_buffer}
    run = session.run

    def session_run() -> np.ndarray:
        return run([out_name], feeds)[0]

    bound = _io_binding_call(session, in_name, out_name, obs_buffer, action_shape)
    if bound is not None:
        try:  # the bound call must give exactly what session.run gives, or we do not use it
            expected = session_run()
            if np.array_equal(bound(), expected, equal_nan=True):
                return bound, "io_binding"
        except Exception:  # a model session.run rejects fails below, with session.run's own error
            pass
    return session_run, "session_run"


def _io_binding_call(
    session: Any, in_name: str, out_name: str, obs_buffer: np.ndarray, action_shape: tuple[int, ...]
) -> Policy | None:
    """``session.run_with_iobinding`` on buffers bound once, or None where binding is refused.

    Calls the C++ session's ``run_with_iobinding`` directly when the Python wrapper exposes it (``_sess``,
    ``_iobinding``, stable since ONNX Runtime 1.x): the public method forwards to the same call after WebGPU
    graph-capture bookkeeping, which costs about 1 µs a call here and is never used by drlc.
    """
    if session.get_outputs()[0].type != "tensor(float)" or not obs_buffer.flags.c_contiguous:
        return None
    action = np.zeros((1, *action_shape), dtype=np.float32)
    try:
        binding = session.io_binding()
        binding.bind_cpu_input(in_name, obs_buffer)
        binding.bind_output(out_name, "cpu", 0, np.float32, list(action.shape), action.ctypes.data)
    except Exception:
        return None
    c_session, c_binding = getattr(session, "_sess", None), getattr(binding, "_iobinding", None)
    capture = getattr(c_session, "is_webgpu_graph_capture_enabled", None)
    if c_binding is not None and hasattr(c_session, "run_with_iobinding") and not (capture and capture()):
        run_c = c_session.run_with_iobinding

        def infer_c(binding: Any = binding, action: np.ndarray = action) -> np.ndarray:
            run_c(c_binding, None)
            return action

        return infer_c
    run_bound = session.run_with_iobinding

    def infer(binding: Any = binding, action: np.ndarray = action) -> np.ndarray:
        run_bound(binding)
        return action

    return infer


def make_infer(session: Any, obs_buffer: np.ndarray, action_shape: tuple[int, ...] | None = None) -> Policy:
    """``bind_session`` without the how; ``action_shape`` defaults to the model's declared output width."""
    if action_shape is None:
        width = session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            return bind_session(session, obs_buffer, (0,))[0]  # dynamic width: session.run it is
        action_shape = (width,)
    return bind_session(session, obs_buffer, action_shape)[0]


def open_partner(
    reference_path: Path | None,
    obs_buffer: np.ndarray,
    manifest: ArtifactManifest,
    settings: MeasurementSettings,
    trt_cache_dir: Path | None,
) -> Policy:
    """The reference model of a paired latency phase, bound to the job's own input buffer. Its shapes were
    checked against the job's model when the job was accepted (``jobs.manager``: from the stored manifests,
    which the store checked against each graph)."""
    if reference_path is None:
        raise InvalidRequestError(
            f"paired_with_sha256={settings.paired_with_sha256[:12]}... names no stored model; upload it first"
        )
    session = open_session(reference_path, settings, trt_cache_dir)
    infer, _ = bind_session(session, obs_buffer, tuple(manifest.action_shape))
    return infer
