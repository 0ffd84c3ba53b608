"""Profile jobs: a queue that runs them one at a time, each in fresh worker processes.

Measurements on one device never overlap, so there is one runner thread. Every event of a
job is appended to its log and the job's record is rewritten on disk (atomically) as it
changes: a client that lost its connection, or an agent that restarted, can always fetch
what has finished.

A job has one measuring worker. With quality_workers = N > 1 it also has N - 1 helper
workers that run episodes for their returns only. The runner thread schedules them: the
helpers set up and wait while the measuring worker measures alone (timer, warm-up, latency
phase); its first episode claim releases them; episode indices are handed out one at a time
to whichever worker is free; once every helper has exited, the measuring worker finishes
alone (inference-only phase, floor). Workers are forked from a server process that holds
the imports already (see ``worker_context``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from device_agent.energy import probe
from device_agent.jobs import convert
from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.envs import check_env_allowed, check_env_setup
from device_agent.jobs.records import DamagedRecord, RecordFiles
from device_agent.contract.errors import (
    AgentError,
    InvalidRequestError,
    JobConflictError,
    JobFailure,
    JobNotFoundError,
    WorkerError,
)
from device_agent.contract.manifest import ArtifactManifest
from device_agent.measure.results import (
    AwaitHelpers,
    ClaimEpisode,
    EpisodeOutcome,
    HelperReady,
    HelperStage,
    JobEnd,
    JobError,
    JobStart,
    OpProfileOutcome,
)
from device_agent.contract.settings import MeasurementSettings, settings_from_proto, settings_to_proto
from device_agent.limits import AgentLimits, effective_settings, job_memory_limit
from device_agent.store.storage import ModelStore
from device_agent.measure.providers import TRT_CACHE_DIRNAME
from device_agent.jobs.worker import helper_main, op_profile_main, worker_main

log = logging.getLogger(__name__)

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TERMINAL = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})


@dataclass
class Job:
    record: pb.JobRecord
    manifest: ArtifactManifest
    settings: MeasurementSettings
    env_id: str
    events: list[pb.ProfileEvent] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.record.state in TERMINAL


WORKER_PRELOAD = ["device_agent.jobs._worker_preload"]
"""What the worker server imports before forking any worker (and nothing from the agent's own __main__)."""


WORKER_GRACE_S = 30.0
"""How long past the job limit a worker whose agent is gone keeps itself alive before it ends itself."""


def worker_context() -> mp.context.BaseContext:
    """Workers are forked from multiprocessing's forkserver, a single-threaded process started once that has
    imported ``WORKER_PRELOAD``: a worker starts in milliseconds, from a process that never held a model or a
    session, and still apart from the agent (whose gRPC threads make a plain fork unsafe). Where there is
    no forkserver (Windows), workers are spawned and import everything themselves."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def has_energy_meter() -> bool:
    """Whether any energy meter works here: then automatic quality_workers keeps episodes alone."""
    try:
        return any(s.available for s in probe.statuses())
    except Exception:  # a meter that cannot even be probed is no meter
        return False


@dataclass
class _Worker:
    """One process of a running job, as the runner thread sees it."""

    index: int
    """0: the measuring worker; 1..N-1: helpers."""
    process: mp.process.BaseProcess
    conn: multiprocessing.connection.Connection
    ready: bool = False
    """Helpers: set up and waiting for episodes."""
    told_to_stop: bool = False
    """Helpers: handed None (no episode left), so their exit is expected."""
    exited: bool = False


def worker_rss(pid: int | None) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss) if pid else 0
    except psutil.Error:
        return 0


class JobManager:
    """Owns the job queue, the runner thread and the job records on disk."""

    def __init__(
        self,
        data_dir: Path,
        store: ModelStore,
        limits: AgentLimits,
        available_providers: list[str],
        fingerprint: str,
        defaults: MeasurementSettings | None = None,
        trt_cache_dir: Path | None = None,
    ) -> None:
        self.jobs_dir = data_dir / "jobs"
        self.trt_cache_dir = trt_cache_dir or data_dir / TRT_CACHE_DIRNAME
        """The agent's own TensorRT engine cache (jobs ask for a cache, never name a path)."""
        self.files = RecordFiles(self.jobs_dir)
        self.store = store
        self.limits = limits
        self.available_providers = available_providers
        self.fingerprint = fingerprint
        self.defaults = defaults or MeasurementSettings()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._mp = worker_context()
        self._has_meter: bool | None = None
        self.stopping = threading.Event()
        """Set by ``stop``: the running job ends as AgentStopped and its workers are killed."""
        self.memory_limit = job_memory_limit(limits)
        self.damaged: list[str] = []
        """Job records that could not be read at start-up, set aside under jobs/damaged/."""
        self._recover()
        self._thread = threading.Thread(target=self._run_forever, name="drlc-job-runner", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ records on disk
    def _save(self, job: Job, episode: pb.EpisodeResult | None = None) -> None:
        """An episode is appended to the job's episode file; anything else rewrites its small head."""
        if episode is not None:
            self.files.append_episode(job.record.job_id, episode)
        else:
            self.files.save_head(job.record)

    def _load(self, job_id: str) -> pb.JobRecord | None:
        try:
            return self.files.load(job_id)
        except DamagedRecord:
            self._set_aside(job_id)
            return None

    def _set_aside(self, job_id: str) -> None:
        """Move a record that cannot be read to jobs/damaged/, say so in the log, and carry on."""
        damaged = self.files.set_aside(job_id)
        self.damaged.append(job_id)
        log.warning("job record %s is damaged and was set aside in %s", job_id, damaged)

    def _recover(self) -> None:
        """Jobs that were queued or running when the agent stopped cannot finish: mark them failed. A record
        that cannot be read is set aside: it is never a reason not to start."""
        self.files.clean_temporary()
        for job_id in self.files.ids():
            record = self._load(job_id)
            if record is not None and record.state not in TERMINAL:
                record.state = pb.JOB_STATE_FAILED
                record.failure.CopyFrom(
                    pb.JobFailed(
                        error_type=JobFailure.AGENT_RESTARTED,
                        message="the agent stopped before this job finished; run it again",
                    )
                )
                self.files.save_head(record)

    # ------------------------------------------------------------------ public API
    def submit(self, request: pb.ProfileRequest) -> tuple[str, bool]:
        """Queue a job, or re-attach to the job with this id if the request is the same.

        :return: (job_id, reattached)
        """
        if not JOB_ID_RE.match(request.job_id):
            raise InvalidRequestError(
                f"job id {request.job_id!r} must be 1-128 characters of letters, digits, '.', '_' or '-'"
            )
        with self._lock:
            existing = self._jobs.get(request.job_id)
            record = existing.record if existing else self._load(request.job_id)
            if record is not None:
                if record.request.SerializeToString(deterministic=True) != request.SerializeToString(
                    deterministic=True
                ):
                    raise JobConflictError(
                        f"job id {request.job_id!r} is already used by a different request"
                    )
                return request.job_id, True
            manifest = self.store.manifest(request.model_sha256)
            requested = settings_from_proto(request.settings, self.defaults)
            if requested.quality_workers == 0 and self._has_meter is None:
                self._has_meter = has_energy_meter()
            settings = effective_settings(
                requested, self.limits, self.available_providers, has_energy_meter=bool(self._has_meter)
            )
            if settings.paired_with_sha256:
                self._check_partner(manifest, settings.paired_with_sha256)
            env_id = request.env_id or manifest.env_id
            check_env_allowed(env_id, self.limits.allowed_envs)
            check_env_setup(env_id, manifest.env_kwargs, manifest.obs_wrappers)
            if sum(1 for j in self._jobs.values() if not j.done) >= self.limits.max_queued_jobs:
                raise InvalidRequestError(
                    f"this agent already has {self.limits.max_queued_jobs} jobs waiting; try again later"
                )
            record = pb.JobRecord(
                job_id=request.job_id,
                state=pb.JOB_STATE_QUEUED,
                request=request,
                device_fingerprint=self.fingerprint,
            )
            job = Job(record=record, manifest=manifest, settings=settings, env_id=env_id)
            self._jobs[request.job_id] = job
            self.files.start_episodes(request.job_id)
            self._append(
                job,
                pb.ProfileEvent(
                    accepted=pb.JobAccepted(job_id=request.job_id, queue_position=self._queue.qsize())
                ),
            )
            self._queue.put(job)
            return request.job_id, False

    def record(self, job_id: str) -> pb.JobRecord:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                with job.changed:
                    return pb.JobRecord.FromString(job.record.SerializeToString())
        record = self._load(job_id) if JOB_ID_RE.match(job_id) else None
        if record is None:
            raise JobNotFoundError(f"no job {job_id!r} on this device")
        return record

    def cancel(self, job_id: str) -> pb.JobRecord:
        """Cancel a queued or running job: the runner kills its worker within one poll (0.2 s)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.cancel_requested.set()
            with job.changed:  # an RLock: _append may take it again
                if job.record.state == pb.JOB_STATE_QUEUED:
                    self._cancelled(job)  # never started: the runner skips it when it comes up
                while not job.done:
                    job.changed.wait(timeout=0.5)
        return self.record(job_id)

    def follow(
        self, job_id: str, is_active: Callable[[], bool], reattached: bool = False
    ) -> Iterator[pb.ProfileEvent]:
        """Every event of the job so far, then each new one until the job ends or the client leaves."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            yield from self._replay(self.record(job_id))
            return
        sent = 0
        while True:
            with job.changed:
                while sent >= len(job.events) and not job.done and is_active():
                    job.changed.wait(timeout=0.5)
                pending = job.events[sent:]
                finished = job.done
            for event in pending:
                if sent == 0 and reattached and event.HasField("accepted"):
                    event = pb.ProfileEvent.FromString(event.SerializeToString())
                    event.accepted.reattached = True
                yield event
                sent += 1
            if (finished and sent >= len(job.events)) or not is_active():
                return

    @staticmethod
    def _replay(record: pb.JobRecord) -> Iterator[pb.ProfileEvent]:
        seq = 0
        yield pb.ProfileEvent(
            job_id=record.job_id, sequence=seq, accepted=pb.JobAccepted(job_id=record.job_id, reattached=True)
        )
        if record.HasField("started"):
            seq += 1
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq, started=record.started)
        for episode in record.episodes:
            seq += 1
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq, episode=episode)
        if record.HasField("summary"):
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq + 1, summary=record.summary)
        elif record.HasField("failure"):
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq + 1, failed=record.failure)

    def prune(self, older_than_days: float) -> list[str]:
        """Delete the records of finished jobs that ended more than ``older_than_days`` ago."""
        if not 0 <= older_than_days <= 36_500:
            raise InvalidRequestError(f"older_than_days={older_than_days} is outside 0..36500")
        cutoff = time.time_ns() - int(older_than_days * 86_400e9)
        removed = []
        with self._lock:
            live = {job_id for job_id, job in self._jobs.items() if not job.done}
            for job_id in self.files.ids():
                if job_id in live:
                    continue
                record = self._load(job_id)
                if record is None or record.state not in TERMINAL:
                    continue
                ended = record.ended_unix_ns or self.files.head_path(job_id).stat().st_mtime_ns
                if ended <= cutoff:
                    self.files.remove(job_id)
                    self._jobs.pop(job_id, None)
                    removed.append(job_id)
        return removed

    def stop(self) -> None:
        """End the running job (its workers are killed, it fails as AgentStopped), fail the queued ones, stop."""
        self.stopping.set()
        with self._lock:
            waiting = [job for job in self._jobs.values() if job.record.state == pb.JOB_STATE_QUEUED]
        for job in waiting:
            with job.changed:
                if not job.done:
                    self._fail(
                        job,
                        JobFailure.AGENT_STOPPED,
                        "the agent was shut down before this job ran; run it again",
                    )
        self._queue.put(None)
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the runner thread
    def _append(self, job: Job, event: pb.ProfileEvent, state: int | None = None) -> None:
        with job.changed:
            event.job_id = job.record.job_id
            event.sequence = len(job.events)
            job.events.append(event)
            episode = event.episode if event.HasField("episode") else None
            if episode is not None:
                job.record.episodes.append(episode)
            elif event.HasField("started"):
                job.record.started.CopyFrom(event.started)
            elif event.HasField("summary"):
                job.record.summary.CopyFrom(event.summary)
            elif event.HasField("failed"):
                job.record.failure.CopyFrom(event.failed)
            if state is not None:
                job.record.state = state
                if state in TERMINAL:
                    job.record.ended_unix_ns = time.time_ns()
            self._save(job, episode if state is None else None)
            job.changed.notify_all()

    def _run_forever(self) -> None:
        self._start_worker_server()
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                with job.changed:
                    skip = job.done
                    if not skip:
                        job.record.state = pb.JOB_STATE_RUNNING
                        job.record.started_unix_ns = time.time_ns()
                if not skip:
                    self._run(job)
            except Exception as exc:  # the runner thread must survive anything a job does
                log.exception("job %s failed inside the agent", job.record.job_id)
                self._append(
                    job,
                    pb.ProfileEvent(failed=pb.JobFailed(error_type=AgentError.__name__, message=str(exc))),
                    pb.JOB_STATE_FAILED,
                )
            finally:
                with self._lock:
                    self._jobs.pop(job.record.job_id, None)

    def _check_partner(self, manifest: ArtifactManifest, sha256: str) -> None:
        """A paired latency phase's reference is stored here and runs on the same observations and actions."""
        other = self.store.manifest(sha256)  # ModelNotFoundError: upload it first
        if (tuple(other.observation_shape), tuple(other.action_shape)) != (
            tuple(manifest.observation_shape),
            tuple(manifest.action_shape),
        ):
            raise InvalidRequestError(
                f"paired_with_sha256={sha256[:12]}… takes observations {list(other.observation_shape)} and gives "
                f"actions {list(other.action_shape)}, this job's model {list(manifest.observation_shape)} and "
                f"{list(manifest.action_shape)}: pair a variant only with its own baseline"
            )

    def _start_worker_server(self) -> None:
        """Start the forkserver (and its imports) now, while no job waits, rather than in the first job."""
        if self._mp.get_start_method() != "forkserver":
            return
        try:
            from multiprocessing import forkserver  # POSIX only: absent where there is no forkserver

            forkserver.ensure_running()
        except Exception:  # the first job starts it then, or fails with the reason
            log.exception("could not start the worker server ahead of the first job")

    def _start(self, job: Job, index: int, model_path: Path) -> _Worker:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        # a worker ends itself this long after it starts, even if the agent is gone and cannot stop it
        lifetime_s = self.limits.max_job_duration_s + WORKER_GRACE_S
        common = (str(model_path), job.manifest.to_json(), job.env_id, job.settings, lifetime_s)
        cache = str(self.trt_cache_dir)
        partner = job.settings.paired_with_sha256
        reference = str(self.store.require(partner)) if partner else ""
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=worker_main if index == 0 else helper_main,
            args=(child_conn, *common, cache, reference)
            if index == 0
            else (child_conn, *common, index, cache),
            name=f"drlc-worker-{job.record.job_id}" + (f"-{index}" if index else ""),
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(index, process, parent_conn)

    def _run(self, job: Job) -> None:
        model_path = self.store.require(job.record.request.model_sha256)
        n_workers = max(1, job.settings.quality_workers)
        workers: list[_Worker] = []
        try:
            workers.append(self._start(job, 0, model_path))
            workers += [self._start(job, i, model_path) for i in range(1, n_workers)]
            run = _JobRun(self, job, workers)
            run.supervise()
            if run.held is not None and not job.done:
                self._end_workers(workers)  # the timed phases' workers are gone before the profile starts
                wall_us = run.held.inference.p50_ns / 1e3 if run.held.inference.count else None
                profile = self._op_profile(job, model_path, run.deadline, wall_us)
                if profile is not None and not job.done:
                    run.held.op_profile.CopyFrom(convert.op_profile_to_proto(profile))
                    self._append(job, pb.ProfileEvent(summary=run.held), pb.JOB_STATE_SUCCEEDED)
            if not job.done:  # never leave a job running with no worker behind it
                self._fail(job, WorkerError.__name__, "the job's workers stopped without a result")
        finally:
            self._end_workers(workers)

    @staticmethod
    def _end_workers(workers: list[_Worker]) -> None:
        for w in workers:
            w.conn.close()
            if w.process.is_alive():
                w.process.join(timeout=5)  # the measuring worker exits by itself once it has sent JobEnd
            if w.process.is_alive():
                w.process.kill()
        for w in workers:
            w.process.join(timeout=5)

    def _op_profile(
        self, job: Job, model_path: Path, deadline: float, timed_call_us: float | None
    ) -> OpProfileOutcome | None:
        """Run the operator profile phase in a worker of its own; None when the job ended meanwhile (cancelled,
        stopped, over its time limit: then it has failed with the reason). A profile that fails leaves the
        timed figures standing: its error is reported in the profile."""
        parent_conn, child_conn = self._mp.Pipe(duplex=False)
        lifetime_s = self.limits.max_job_duration_s + WORKER_GRACE_S
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=op_profile_main,
            args=(
                child_conn,
                str(model_path),
                job.manifest.to_json(),
                job.env_id,
                job.settings,
                lifetime_s,
                str(self.trt_cache_dir),
                timed_call_us,
            ),
            name=f"drlc-worker-{job.record.job_id}-op-profile",
            daemon=True,
        )
        process.start()
        child_conn.close()
        try:
            while not parent_conn.poll(_JobRun.POLL_S):
                if job.cancel_requested.is_set():
                    self._cancelled(job)
                    return None
                if self.stopping.is_set():
                    self._fail(
                        job,
                        JobFailure.AGENT_STOPPED,
                        "the agent was shut down while this job ran; run it again",
                    )
                    return None
                if time.monotonic() > deadline:
                    self._fail(
                        job,
                        JobFailure.JOB_TIMEOUT,
                        f"the job ran longer than this agent's limit of {self.limits.max_job_duration_s:.0f} s "
                        "(in its operator profile phase)",
                    )
                    return None
                if not process.is_alive() and not parent_conn.poll(0):
                    return _failed_profile(f"its worker died (exit code {process.exitcode})")
            try:
                item = parent_conn.recv()
            except (EOFError, OSError):
                return _failed_profile(f"its worker died (exit code {process.exitcode})")
            if isinstance(item, OpProfileOutcome):
                return item
            if isinstance(item, JobError):
                return _failed_profile(f"{item.error_type}: {item.message}")
            return _failed_profile(f"its worker sent an unexpected {type(item).__name__}")
        finally:
            parent_conn.close()
            if process.is_alive():
                process.kill()
            process.join(timeout=5)

    def _cancelled(self, job: Job) -> None:
        failed = pb.JobFailed(error_type="Cancelled", message="the job was cancelled by a client")
        self._append(job, pb.ProfileEvent(failed=failed), pb.JOB_STATE_CANCELLED)

    def _fail(self, job: Job, error_type: str, message: str) -> None:
        self._append(
            job,
            pb.ProfileEvent(failed=pb.JobFailed(error_type=error_type, message=message)),
            pb.JOB_STATE_FAILED,
        )


def _failed_profile(why: str) -> OpProfileOutcome:
    return OpProfileOutcome(0, 0.0, 0.0, 0.0, 0.0, 0.0, error=f"the operator profile failed: {why}")


class _WorkerGone(Exception):
    """Sending to a worker failed: it died (its pipe is closed or reset)."""

    def __init__(self, worker: _Worker) -> None:
        super().__init__(f"worker {worker.index} is gone")
        self.worker = worker


def _send(worker: _Worker, message: object) -> None:
    try:
        worker.conn.send(message)
    except OSError as exc:
        raise _WorkerGone(worker) from exc


class _JobRun:
    """The runner thread's view of one running job: relays its workers' events, schedules their episodes,
    enforces the limits, and ends the job (succeeded, failed or cancelled) exactly once."""

    POLL_S = 0.2
    """How often limits and liveness are checked, however busy the pipes are; also the cancel latency."""

    def __init__(self, manager: JobManager, job: Job, workers: list[_Worker]) -> None:
        self.manager = manager
        self.job = job
        self.main, self.helpers = workers[0], workers[1:]
        self.workers = workers
        self.pending = list(range(job.settings.n_episodes))[::-1]  # pop() hands out 0, 1, 2, ...
        self.released = False
        """The measuring worker has claimed its first episode: its quiet phases are over, helpers may step."""
        self.main_waits: HelperStage | None = None
        """The stage the measuring worker is blocked on, if any."""
        self.runtime = pb.RuntimeInfo()
        self.held: pb.JobSummary | None = None
        """The summary, held back while the operator profile phase (op_profile_calls > 0) is still to run."""
        self.deadline = time.monotonic() + manager.limits.max_job_duration_s

    # ------------------------------------------------------------------ scheduling
    def next_index(self) -> int | None:
        return self.pending.pop() if self.pending else None

    def feed(self, helper: _Worker) -> None:
        index = self.next_index()
        helper.told_to_stop = index is None
        _send(helper, index)

    def answer_main(self) -> None:
        if (self.main_waits is HelperStage.READY and all(h.ready for h in self.helpers)) or (
            self.main_waits is HelperStage.DONE and all(h.exited for h in self.helpers)
        ):
            self.main_waits = None
            _send(self.main, True)

    # ------------------------------------------------------------------ the loop
    def supervise(self) -> None:
        try:
            self._loop()
        except _WorkerGone as gone:  # a worker died while the agent was sending to it
            gone.worker.process.join(timeout=5)
            self.fail_crashed(gone.worker)

    def _loop(self) -> None:
        by_conn = {id(w.conn): w for w in self.workers}
        next_check = 0.0
        while True:
            if self.job.cancel_requested.is_set():
                self.manager._cancelled(self.job)
                return
            if self.manager.stopping.is_set():
                self.manager._fail(
                    self.job,
                    JobFailure.AGENT_STOPPED,
                    "the agent was shut down while this job ran; run it again",
                )
                return
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.POLL_S
                if self.over_limits(now):
                    return
            live = [w.conn for w in self.workers if not w.exited]
            ready = multiprocessing.connection.wait(live, timeout=self.POLL_S)
            if not ready:
                if any(self.crashed(w) for w in self.workers if not w.exited and not w.process.is_alive()):
                    return
                continue
            for conn in ready:
                w = by_conn[id(conn)]
                try:
                    item = w.conn.recv()
                except (EOFError, OSError):  # OSError: a socket pipe reset by a killed worker
                    if w.index > 0 and w.told_to_stop:  # a helper that ran out of episodes and exited
                        w.exited = True
                        w.process.join(timeout=5)
                        self.answer_main()
                        continue
                    w.process.join(timeout=5)
                    self.fail_crashed(w)
                    return
                if self.handle(w, item):
                    return

    def over_limits(self, now: float) -> bool:
        limits = self.manager.limits
        if now > self.deadline:
            self.manager._fail(
                self.job,
                JobFailure.JOB_TIMEOUT,
                f"the job ran longer than this agent's limit of {limits.max_job_duration_s:.0f} s",
            )
            return True
        held = sum(worker_rss(w.process.pid) for w in self.workers if not w.exited)
        if held > self.manager.memory_limit:
            self.manager._fail(
                self.job,
                JobFailure.WORKER_MEMORY_LIMIT,
                f"the job's workers together held {held >> 20} MiB, past this agent's limit of "
                f"{self.manager.memory_limit >> 20} MiB per job",
            )
            return True
        return False

    def crashed(self, w: _Worker) -> bool:
        """A dead worker whose pipe is drained died without being told to stop: fail the job. If its last
        words (or the end of its pipe) are still to be read, the loop reads them first."""
        if w.conn.poll(0):
            return False
        self.fail_crashed(w)
        return True

    def fail_crashed(self, w: _Worker) -> None:
        who = "the worker process" if w.index == 0 else f"quality worker {w.index}"
        self.manager._fail(
            self.job,
            JobFailure.WORKER_CRASHED,
            f"{who} died (exit code {w.process.exitcode}) before the job finished",
        )

    def handle(self, w: _Worker, item: object) -> bool:
        """One message from worker ``w``; True when the job has ended."""
        job, manager = self.job, self.manager
        if isinstance(item, EpisodeOutcome):
            manager._append(job, pb.ProfileEvent(episode=convert.episode_to_proto(item)))
            if w.index > 0:
                self.feed(w)
        elif isinstance(item, ClaimEpisode) and w is self.main:
            if not self.released:
                self.released = True
                for h in self.helpers:
                    if h.ready:
                        self.feed(h)
            _send(self.main, self.next_index())
        elif isinstance(item, HelperReady) and w is not self.main:
            w.ready = True
            if self.released:
                self.feed(w)
            self.answer_main()
        elif isinstance(item, AwaitHelpers) and w is self.main:
            self.main_waits = item.stage
            self.answer_main()
        elif isinstance(item, JobStart) and w is self.main:
            self.runtime = convert.runtime_to_proto(item.runtime)
            self.runtime.quality_worker_pids.extend(h.process.pid or 0 for h in self.helpers)
            started = pb.JobStarted(runtime=self.runtime, memory=convert.memory_to_proto(item.memory))
            manager._append(job, pb.ProfileEvent(started=started))
        elif isinstance(item, JobEnd) and w is self.main:
            effective = settings_to_proto(job.settings)
            summary = convert.summary_to_proto(
                item, list(job.record.episodes), self.runtime, job.record.request.settings, effective
            )
            if job.settings.op_profile_calls > 0:
                self.held = summary
            else:
                manager._append(job, pb.ProfileEvent(summary=summary), pb.JOB_STATE_SUCCEEDED)
            return True
        elif isinstance(item, JobError):
            manager._fail(job, item.error_type, item.message)
            return True
        else:
            manager._fail(
                job, WorkerError.__name__, f"worker {w.index} sent an unexpected {type(item).__name__}"
            )
            return True
        return False
