"""Where a batch of independent tasks (training runs, sweeps) runs: in this process, in a local process
pool, or on a Ray cluster.

Every executor takes a picklable module-level ``fn(task, report) -> result`` and a list of tasks, and
yields an :class:`Outcome` per task as each one finishes (not in submission order). ``report`` is how a
task sends progress back while it runs: whatever it is given comes out of ``on_progress(index,
payload)`` in the calling process, a few times a second at most. A failing task does not stop the
others; its outcome carries the error.

- :class:`InlineExecutor`: one task after another in this process (the default for one worker).
- :class:`LocalPoolExecutor`: a pool of spawned worker processes on this machine, sized to its cores.
- :class:`RayExecutor`: Ray tasks on the cluster at ``address`` (``ray.init`` semantics: None starts
  a local instance unless ``RAY_ADDRESS`` is set; ``"auto"`` joins the one running here). The cluster's
  nodes need drlc installed. Needs ``pip install "drlc[ray]"``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from host.errors import DrlcError

T = TypeVar("T")
R = TypeVar("R")

Report = Callable[[Any], None]
"""What a task calls with a progress payload (picklable)."""
TaskFn = Callable[[T, Report], R]
ProgressCallback = Callable[[int, Any], None]
"""``(task index, payload)``, called in the executor's process."""

#: How often the calling process looks for progress and finished tasks, in seconds.
POLL_S = 0.2


class ExecutorError(DrlcError):
    """An executor cannot start (Ray missing or unreachable) or lost its workers."""


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """A finished task: its result, or the error it failed with.

    :param error: one line for a :class:`DrlcError` (a user error), else the traceback (a bug)
    """

    index: int
    task: T
    result: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Failure:
    error: str


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DrlcError):
        return str(exc)
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def _call(fn: TaskFn, task: Any, report: Report) -> Any:
    """Run one task where it lands; errors come back as values so the message survives any transport."""
    try:
        return fn(task, report)
    except Exception as exc:
        return _Failure(_describe(exc))


def _outcome(index: int, task: Any, value: Any) -> Outcome:
    if isinstance(value, _Failure):
        return Outcome(index, task, error=value.error)
    return Outcome(index, task, result=value)


class Executor(ABC):
    """Runs tasks and yields their outcomes as they finish."""

    name: str

    @abstractmethod
    def run(
        self, fn: TaskFn, tasks: Sequence[T], on_progress: ProgressCallback | None = None
    ) -> Iterator[Outcome[T, Any]]: ...


class InlineExecutor(Executor):
    """Each task in turn, in this process: progress arrives directly, Ctrl-C stops at once."""

    name = "inline"

    def run(
        self, fn: TaskFn, tasks: Sequence[T], on_progress: ProgressCallback | None = None
    ) -> Iterator[Outcome[T, Any]]:
        for index, task in enumerate(tasks):

            def report(payload: Any, index: int = index) -> None:
                if on_progress is not None:
                    on_progress(index, payload)

            yield _outcome(index, task, _call(fn, task, report))


# --------------------------------------------------------------------------------------------
# Local process pool
# --------------------------------------------------------------------------------------------

_worker_queue: Any = None


def _init_pool_worker(progress_queue: Any) -> None:
    global _worker_queue
    _worker_queue = progress_queue


class _QueueReport:
    """A task's ``report``: puts ``(index, payload)`` on a queue; never blocks or fails the task."""

    def __init__(self, progress_queue: Any, index: int) -> None:
        self.queue = progress_queue
        self.index = index

    def __call__(self, payload: Any) -> None:
        try:
            self.queue.put_nowait((self.index, payload))
        except Exception:  # a full or closed queue only loses a progress update
            pass


def _pool_call(fn: TaskFn, index: int, task: Any) -> Any:
    return _call(fn, task, _QueueReport(_worker_queue, index))


def _drain(progress_queue: Any, on_progress: ProgressCallback | None, empty: type[Exception]) -> None:
    while True:
        try:
            index, payload = progress_queue.get_nowait()
        except empty:
            return
        if on_progress is not None:
            on_progress(index, payload)


class LocalPoolExecutor(Executor):
    """A pool of ``workers`` spawned processes on this machine (spawned, not forked: torch and fork do
    not mix). ``workers`` None or 0: one per core."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def run(
        self, fn: TaskFn, tasks: Sequence[T], on_progress: ProgressCallback | None = None
    ) -> Iterator[Outcome[T, Any]]:
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")
        progress_queue = ctx.Queue()
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=ctx,
            initializer=_init_pool_worker,
            initargs=(progress_queue,),
        )
        try:
            pending: dict[Future, int] = {
                pool.submit(_pool_call, fn, index, task): index for index, task in enumerate(tasks)
            }
            while pending:
                done, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                _drain(progress_queue, on_progress, queue_module.Empty)
                for future in done:
                    index = pending.pop(future)
                    try:
                        value = future.result()
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        value = _Failure(f"worker process failed: {exc!r}")
                    yield _outcome(index, tasks[index], value)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            progress_queue.close()


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------


def _ray_call(fn: TaskFn, index: int, task: Any, progress_queue: Any) -> Any:
    return _call(fn, task, _QueueReport(progress_queue, index))


class RayExecutor(Executor):
    """Ray tasks, each reserving ``cpus_per_task`` CPUs; at most ``max_concurrent`` in flight (None: as
    many as the cluster schedules). Joins a running Ray (this process's, or ``address``'s), or starts
    a local instance and stops it when done.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, max_concurrent: int | None = None, cpus_per_task: float = 1.0
    ) -> None:
        self.address = address
        self.max_concurrent = max_concurrent
        self.cpus_per_task = cpus_per_task

    def _init(self) -> tuple[Any, bool]:
        try:
            import ray  # optional extra (drlc[ray]): only the ray executor needs it
        except ImportError:
            raise ExecutorError(
                'the ray executor needs Ray: pip install "drlc[ray]" (or run without --executor ray)'
            ) from None
        if ray.is_initialized():
            return ray, False
        try:
            # The workers' output would tear through the progress display; their errors come back as values.
            options: dict[str, Any] = {"log_to_driver": False}
            if self.address is None:
                options["include_dashboard"] = False
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(
                f"cannot connect to Ray at {self.address or 'a new local instance'}: {exc}"
            ) from exc
        return ray, True

    def run(
        self, fn: TaskFn, tasks: Sequence[T], on_progress: ProgressCallback | None = None
    ) -> Iterator[Outcome[T, Any]]:
        if not tasks:
            return
        ray, started_here = self._init()
        from ray.util.queue import Empty, Queue  # optional extra (drlc[ray]), imported by _init above

        progress_queue = Queue()
        pending: dict[Any, int] = {}
        try:
            remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_ray_call)
            waiting = list(enumerate(tasks))
            limit = self.max_concurrent or len(tasks)
            while waiting or pending:
                while waiting and len(pending) < limit:
                    index, task = waiting.pop(0)
                    pending[remote.remote(fn, index, task, progress_queue)] = index
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                _drain(progress_queue, on_progress, Empty)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except Exception as exc:  # the worker died, or the task could not be deserialized
                        value = _Failure(f"ray task failed: {exc}")
                    yield _outcome(index, tasks[index], value)
        finally:
            for ref in pending:  # interrupted: a cluster that outlives this process must not keep training
                ray.cancel(ref, force=True)
            progress_queue.shutdown()
            if started_here:
                ray.shutdown()


def make_executor(name: str, workers: int | None = None, ray_address: str | None = None) -> Executor:
    """``local`` with one worker: :class:`InlineExecutor`; ``local``: :class:`LocalPoolExecutor`
    (``workers`` 0 or None: one per core); ``ray``: :class:`RayExecutor` (``workers``: at most this many
    at once, 0 or None: no limit)."""
    if name == "local":
        return InlineExecutor() if workers == 1 else LocalPoolExecutor(workers)
    if name == "ray":
        return RayExecutor(address=ray_address, max_concurrent=workers or None)
    raise ExecutorError(f"unknown executor {name!r}; choose local or ray")
