"""Entry points of a job's worker processes.

Each job gets fresh processes: a model that crashes ONNX Runtime takes down only its own
worker, and the memory figures describe a process that holds just this one model. The
agent forks them from a server process that has already imported what they need
(``device_agent.jobs._worker_preload``), so a job does not pay for the imports; where fork is
unavailable they are spawned.

``worker_main`` is the measuring worker (every job has one). With quality_workers > 1 the
agent also starts ``helper_main`` workers that run episodes for their returns only; the
measuring worker talks to the agent through ``PipeScheduler`` to wait for them and to claim
episodes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from device_agent.contract.errors import AgentError, WorkerError
from device_agent.contract.manifest import ArtifactManifest
from device_agent.measure.results import AwaitHelpers, ClaimEpisode, HelperReady, HelperStage, JobError
from device_agent.contract.settings import MeasurementSettings


class PipeScheduler:
    """The measuring worker's side of the agent's episode scheduling: each call is one request and its answer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def wait_helpers(self, stage: HelperStage) -> None:
        self.conn.send(AwaitHelpers(stage))
        if self.conn.recv() is not True:
            raise WorkerError(f"the agent did not confirm that the helper workers are {stage.value}")

    def claim(self) -> int | None:
        self.conn.send(ClaimEpisode())
        index = self.conn.recv()
        if index is not None and not isinstance(index, int):
            raise WorkerError(f"the agent answered an episode claim with {index!r}")
        return index


PR_SET_PDEATHSIG = 1


def bind_lifetime(lifetime_s: float) -> None:
    """Make sure this worker never outlives its job: it is killed when the process that forked it exits (the
    agent's worker server, which exits with the agent), and ends itself ``lifetime_s`` after it started
    (SIGALRM's default action) even if nobody is left to stop it."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if hasattr(signal, "alarm") and lifetime_s > 0:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, math.ceil(lifetime_s)))


def _report(conn: Connection, exc: BaseException) -> None:
    if isinstance(exc, AgentError):
        conn.send(JobError(type(exc).__name__, str(exc)))
    else:  # report anything else too: the agent turns it into a failed job
        conn.send(JobError(WorkerError.__name__, f"{type(exc).__name__}: {exc}"))


@contextmanager
def _serving(conn: Connection, lifetime_s: float) -> Iterator[None]:
    """What every worker process does around its work: bind its lifetime to the job, report any error to the
    agent as a failed job, and close its pipe."""
    bind_lifetime(lifetime_s)
    try:
        yield
    except Exception as exc:
        _report(conn, exc)
    finally:
        conn.close()


def _cache_dir(trt_cache_dir: str) -> Path | None:
    return Path(trt_cache_dir) if trt_cache_dir else None


def worker_main(
    conn: Connection,
    model_path: str,
    manifest_json: str,
    env_id: str,
    settings: MeasurementSettings,
    lifetime_s: float = 0.0,
    trt_cache_dir: str = "",
    reference_path: str = "",
) -> None:
    # in the worker only: the agent's own process never loads ONNX Runtime, onnx or MuJoCo
    from device_agent.measure.job import run_profile

    with _serving(conn, lifetime_s):
        run_profile(
            Path(model_path),
            ArtifactManifest.from_json(manifest_json),
            env_id,
            settings,
            conn.send,
            PipeScheduler(conn),
            trt_cache_dir=_cache_dir(trt_cache_dir),
            reference_path=Path(reference_path) if reference_path else None,
        )


def helper_main(
    conn: Connection,
    model_path: str,
    manifest_json: str,
    env_id: str,
    settings: MeasurementSettings,
    lifetime_s: float,
    worker: int,
    trt_cache_dir: str = "",
) -> None:
    from device_agent.measure.job import run_helper  # in the worker only, as above

    def next_index() -> int | None:
        index = conn.recv()
        if index is not None and not isinstance(index, int):
            raise WorkerError(f"the agent handed helper {worker} {index!r} instead of an episode index")
        return index

    with _serving(conn, lifetime_s):
        run_helper(
            Path(model_path),
            ArtifactManifest.from_json(manifest_json),
            env_id,
            settings,
            conn.send,
            next_index,
            worker,
            lambda: conn.send(HelperReady(worker, os.getpid())),
            trt_cache_dir=_cache_dir(trt_cache_dir),
        )


def op_profile_main(
    conn: Connection,
    model_path: str,
    manifest_json: str,
    env_id: str,
    settings: MeasurementSettings,
    lifetime_s: float,
    trt_cache_dir: str = "",
    timed_call_us: float | None = None,
) -> None:
    """The operator profile's worker: started after the measuring worker has exited; sends one OpProfileOutcome."""
    from device_agent.measure.op_profile import run_op_profile  # worker only, as above

    with _serving(conn, lifetime_s):
        conn.send(
            run_op_profile(
                Path(model_path),
                ArtifactManifest.from_json(manifest_json),
                env_id,
                settings,
                _cache_dir(trt_cache_dir),
                timed_call_us,
            )
        )
