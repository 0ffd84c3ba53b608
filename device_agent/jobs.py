"""Profile jobs: a queue that runs them one at a time, each in a fresh worker process.

Measurements on one device never overlap, so there is one runner thread. Every event of a
job is appended to its log and the job's record is rewritten on disk (atomically) as it
changes: a client that lost its connection, or an agent that restarted, can always fetch
what has finished.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from device_agent import convert
from device_agent._proto import agent_pb2 as pb
from device_agent.envs import check_env_allowed
from device_agent.errors import InvalidRequestError, JobConflictError, JobNotFoundError
from device_agent.manifest import ArtifactManifest
from device_agent.results import EpisodeOutcome, JobEnd, JobError, JobStart
from device_agent.settings import AgentLimits, MeasurementSettings, effective_settings
from device_agent.storage import ModelStore
from device_agent.worker import worker_main

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


def worker_rss(pid: int | None) -> int:
    import psutil

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
    ) -> None:
        self.jobs_dir = data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.limits = limits
        self.available_providers = available_providers
        self.fingerprint = fingerprint
        self.defaults = defaults or MeasurementSettings()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._mp = mp.get_context("spawn")
        self._recover()
        self._thread = threading.Thread(target=self._run_forever, name="drlc-job-runner", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ records on disk
    def _record_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.pb"

    def _save(self, job: Job) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".job-", dir=self.jobs_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(job.record.SerializeToString())
        os.replace(tmp, self._record_path(job.record.job_id))

    def _load(self, job_id: str) -> pb.JobRecord | None:
        path = self._record_path(job_id)
        if not path.is_file():
            return None
        record = pb.JobRecord()
        record.ParseFromString(path.read_bytes())
        return record

    def _recover(self) -> None:
        """Jobs that were queued or running when the agent stopped cannot finish: mark them failed."""
        for tmp in self.jobs_dir.glob(".job-*"):
            tmp.unlink(missing_ok=True)
        for path in self.jobs_dir.glob("*.pb"):
            record = pb.JobRecord()
            record.ParseFromString(path.read_bytes())
            if record.state not in TERMINAL:
                record.state = pb.JOB_STATE_FAILED
                record.failure.CopyFrom(
                    pb.JobFailed(
                        error_type="AgentRestarted",
                        message="the agent stopped before this job finished; run it again",
                    )
                )
                path.write_bytes(record.SerializeToString())

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
            requested = convert.settings_from_proto(request.settings, self.defaults)
            settings = effective_settings(requested, self.limits, self.available_providers)
            env_id = request.env_id or manifest.env_id
            check_env_allowed(env_id, self.limits.allowed_envs)
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
        for episode in record.episodes:
            seq += 1
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq, episode=episode)
        if record.HasField("summary"):
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq + 1, summary=record.summary)
        elif record.HasField("failure"):
            yield pb.ProfileEvent(job_id=record.job_id, sequence=seq + 1, failed=record.failure)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ the runner thread
    def _append(self, job: Job, event: pb.ProfileEvent, state: int | None = None) -> None:
        with job.changed:
            event.job_id = job.record.job_id
            event.sequence = len(job.events)
            job.events.append(event)
            if event.HasField("episode"):
                job.record.episodes.append(event.episode)
            elif event.HasField("summary"):
                job.record.summary.CopyFrom(event.summary)
            elif event.HasField("failed"):
                job.record.failure.CopyFrom(event.failed)
            if state is not None:
                job.record.state = state
            self._save(job)
            job.changed.notify_all()

    def _run_forever(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                with job.changed:
                    skip = job.done
                    if not skip:
                        job.record.state = pb.JOB_STATE_RUNNING
                if not skip:
                    self._run(job)
            except Exception as exc:  # the runner thread must survive anything a job does
                log.exception("job %s failed inside the agent", job.record.job_id)
                self._append(
                    job,
                    pb.ProfileEvent(failed=pb.JobFailed(error_type="AgentError", message=str(exc))),
                    pb.JOB_STATE_FAILED,
                )
            finally:
                with self._lock:
                    self._jobs.pop(job.record.job_id, None)

    def _run(self, job: Job) -> None:
        model_path = self.store.require(job.record.request.model_sha256)
        parent_conn, child_conn = self._mp.Pipe(duplex=False)
        process = self._mp.Process(
            target=worker_main,
            args=(child_conn, str(model_path), job.manifest.to_json(), job.env_id, job.settings),
            name=f"drlc-worker-{job.record.job_id}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        deadline = time.monotonic() + self.limits.max_job_duration_s
        requested = job.record.request.settings
        effective = convert.settings_to_proto(job.settings)
        runtime = pb.RuntimeInfo()
        try:
            while True:
                if job.cancel_requested.is_set():
                    self._cancelled(job)
                    return
                if time.monotonic() > deadline:
                    self._fail(
                        job,
                        "JobTimeout",
                        f"the job ran longer than this agent's limit of {self.limits.max_job_duration_s:.0f} s",
                    )
                    return
                if not parent_conn.poll(0.2):
                    if worker_rss(process.pid) > self.limits.max_worker_rss_bytes:
                        self._fail(
                            job,
                            "WorkerMemoryLimit",
                            f"the worker's memory passed this agent's limit of {self.limits.max_worker_rss_bytes >> 20} MiB",
                        )
                        return
                    if not process.is_alive() and not parent_conn.poll(0):
                        self._fail(
                            job,
                            "WorkerCrashed",
                            f"the worker process died (exit code {process.exitcode}) before the job finished",
                        )
                        return
                    continue
                try:
                    item = parent_conn.recv()
                except EOFError:
                    process.join(timeout=5)
                    self._fail(
                        job,
                        "WorkerCrashed",
                        f"the worker process died (exit code {process.exitcode}) before the job finished",
                    )
                    return
                if isinstance(item, JobStart):
                    runtime = convert.runtime_to_proto(item.runtime)
                    started = pb.JobStarted(runtime=runtime, memory=convert.memory_to_proto(item.memory))
                    self._append(job, pb.ProfileEvent(started=started))
                elif isinstance(item, EpisodeOutcome):
                    self._append(job, pb.ProfileEvent(episode=convert.episode_to_proto(item)))
                elif isinstance(item, JobEnd):
                    summary = convert.summary_to_proto(
                        item, list(job.record.episodes), runtime, requested, effective
                    )
                    self._append(job, pb.ProfileEvent(summary=summary), pb.JOB_STATE_SUCCEEDED)
                    return
                elif isinstance(item, JobError):
                    self._fail(job, item.error_type, item.message)
                    return
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
