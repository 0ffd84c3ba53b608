"""Imported once by the agent's worker server (multiprocessing's forkserver), never by the agent itself.

Everything a job's worker needs is imported here, before any job, so that a worker forked for
a job starts in milliseconds instead of paying about 1.5 s of imports (numpy, ONNX Runtime,
onnx, Gymnasium, MuJoCo and the env modules, psutil). Nothing here creates a session, an env
or a thread: a forked worker starts from a clean, single-threaded process that holds no model.

Last, every object made so far is moved out of the cyclic garbage collector's reach
(``gc.freeze``): a worker's collections then never walk the server's modules, which would
both cost time and touch (so copy) every shared page of them.
"""

from __future__ import annotations

import gc
import importlib
import pkgutil

import gymnasium.envs.mujoco
import numpy  # noqa: F401
import onnx  # noqa: F401  (the runtime floor's trivial graph is built with it)
import onnxruntime  # noqa: F401
import psutil  # noqa: F401

import device_agent.energy.recorder
import device_agent.jobs.worker
import device_agent.measure.job
import device_agent.measure.op_profile
import device_agent.measure.process


def _import_mujoco_envs() -> None:
    """The env classes are imported lazily by gymnasium.make; import the current (v5) ones now."""
    for module in pkgutil.iter_modules(gymnasium.envs.mujoco.__path__):
        if module.name.endswith("_v5"):
            importlib.import_module(f"gymnasium.envs.mujoco.{module.name}")


_import_mujoco_envs()
device_agent.measure.process.cached_library_versions()  # reads package metadata: ~20 ms a job otherwise
gc.freeze()
