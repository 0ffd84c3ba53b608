"""The gRPC servicer: converts messages, streams events, maps errors to status codes.

No work happens here: storage, jobs and device facts live in their own modules.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import grpc

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.proto import agent_pb2_grpc
from device_agent.service.device_info import device_info
from device_agent.contract.errors import (
    AgentError,
    EnvNotAllowedError,
    EnvUnavailableError,
    InvalidModelError,
    InvalidRequestError,
    JobConflictError,
    JobNotFoundError,
    ModelNotFoundError,
    UploadError,
)
from device_agent.jobs.manager import JobManager
from device_agent.limits import AgentLimits
from device_agent.store.storage import ModelStore

log = logging.getLogger(__name__)

REPLY_LIMIT_BYTES = 48 << 20
"""Largest reply sent whole; the server's message limit is 64 MiB."""

STATUS_OF: dict[type[AgentError], grpc.StatusCode] = {
    InvalidModelError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    UploadError: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    JobNotFoundError: grpc.StatusCode.NOT_FOUND,
    JobConflictError: grpc.StatusCode.ALREADY_EXISTS,
    EnvUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
    EnvNotAllowedError: grpc.StatusCode.PERMISSION_DENIED,
}


class Busy(AgentError):
    """Too many uploads or streams at once: try again later."""


STATUS_OF[Busy] = grpc.StatusCode.RESOURCE_EXHAUSTED


@contextmanager
def slot(semaphore: threading.BoundedSemaphore, what: str, limit: int) -> Iterator[None]:
    """Hold one of ``limit`` places for ``what``, or refuse at once: a caller never waits for a thread."""
    if not semaphore.acquire(blocking=False):
        raise Busy(f"this agent already has {limit} {what} open, its limit; try again when one has finished")
    try:
        yield
    finally:
        semaphore.release()


class IdleWatch:
    """Ends an RPC whose client stops sending: each message re-arms a timer that cancels the call."""

    def __init__(self, context: grpc.ServicerContext, idle_s: float) -> None:
        self.context = context
        self.idle_s = idle_s
        self.timer: threading.Timer | None = None
        self.expired = False

    def _expire(self) -> None:
        self.expired = True
        log.warning("an upload sent nothing for %.0f s; the agent ended it", self.idle_s)
        self.context.cancel()

    def arm(self) -> None:
        self.stop()
        self.timer = threading.Timer(self.idle_s, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def fit_in_one_reply(record: pb.JobRecord) -> pb.JobRecord:
    """A record too large for one message loses its per-call latency lists (and says so): any job the agent
    accepted can be fetched again, in full event by event with WatchJob."""
    if record.ByteSize() <= REPLY_LIMIT_BYTES:
        return record
    for episode in record.episodes:
        episode.ClearField("inference_ns")
    if record.HasField("summary") and record.summary.HasField("latency_phase"):
        record.summary.latency_phase.ClearField("inference_ns")
    record.latencies_omitted = True
    return record


def abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    code = STATUS_OF.get(type(exc), grpc.StatusCode.INTERNAL)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("internal error")
    context.abort(code, f"{type(exc).__name__}: {exc}")
    raise AssertionError("context.abort returns only by raising")  # for type checkers


class AgentServicer(agent_pb2_grpc.AgentServicer):
    def __init__(
        self, data_dir: Path, store: ModelStore, jobs: JobManager, limits: AgentLimits, providers: list[str]
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.jobs = jobs
        self.limits = limits
        self.providers = providers
        self._uploads = threading.BoundedSemaphore(limits.max_concurrent_uploads)
        self._streams = threading.BoundedSemaphore(limits.max_streams)

    def GetDeviceInfo(self, request: pb.GetDeviceInfoRequest, context: grpc.ServicerContext) -> pb.DeviceInfo:
        return device_info(self.data_dir, self.limits, self.providers)

    def HasModels(self, request: pb.HasModelsRequest, context: grpc.ServicerContext) -> pb.HasModelsResponse:
        return pb.HasModelsResponse(present=[sha for sha in request.sha256 if self.store.has(sha)])

    def UploadModel(
        self, request_iterator: Iterator[pb.UploadModelRequest], context: grpc.ServicerContext
    ) -> pb.UploadModelResponse:
        watch = IdleWatch(context, self.limits.upload_idle_s)
        try:
            with slot(self._uploads, "uploads", self.limits.max_concurrent_uploads):
                watch.arm()
                first = next(request_iterator, None)
                if first is None or not first.HasField("header"):
                    raise UploadError("an upload must start with a header message (sha256, size_bytes)")
                header = first.header
                watch.stop()
                if self.store.has(header.sha256):
                    manifest = self.store.manifest(header.sha256)
                    return pb.UploadModelResponse(
                        sha256=header.sha256,
                        already_present=True,
                        size_bytes=header.size_bytes,
                        manifest_json=manifest.to_json(),
                    )

                def chunks() -> Iterator[bytes]:
                    for message in request_iterator:
                        watch.arm()
                        if not message.HasField("chunk"):
                            raise UploadError("only data chunks may follow the header")
                        yield message.chunk
                    watch.stop()  # everything has arrived: checking the model is the agent's time, not idle

                watch.arm()
                manifest = self.store.put(header.sha256, header.size_bytes, chunks())
                return pb.UploadModelResponse(
                    sha256=header.sha256, size_bytes=header.size_bytes, manifest_json=manifest.to_json()
                )
        except Exception as exc:
            if watch.expired:  # the call is cancelled already (the client sees CANCELLED); nothing is stored
                return pb.UploadModelResponse()
            abort(context, exc)
        finally:
            watch.stop()

    def RunProfile(
        self, request: pb.ProfileRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ProfileEvent]:
        try:
            with slot(self._streams, "job streams", self.limits.max_streams):
                job_id, reattached = self.jobs.submit(request)
                yield from self.jobs.follow(job_id, context.is_active, reattached=reattached)
        except Exception as exc:
            abort(context, exc)

    def WatchJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> Iterator[pb.ProfileEvent]:
        try:
            with slot(self._streams, "job streams", self.limits.max_streams):
                self.jobs.record(request.job_id)
                yield from self.jobs.follow(request.job_id, context.is_active, reattached=True)
        except Exception as exc:
            abort(context, exc)

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.JobRecord:
        try:
            return fit_in_one_reply(self.jobs.record(request.job_id))
        except Exception as exc:
            abort(context, exc)

    def CancelJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.JobRecord:
        try:
            return self.jobs.cancel(request.job_id)
        except Exception as exc:
            abort(context, exc)

    def RemoveModels(
        self, request: pb.RemoveModelsRequest, context: grpc.ServicerContext
    ) -> pb.RemoveModelsResponse:
        try:
            return pb.RemoveModelsResponse(removed=[sha for sha in request.sha256 if self.store.remove(sha)])
        except Exception as exc:
            abort(context, exc)

    def PruneJobs(self, request: pb.PruneJobsRequest, context: grpc.ServicerContext) -> pb.PruneJobsResponse:
        try:
            return pb.PruneJobsResponse(removed=self.jobs.prune(request.older_than_days))
        except Exception as exc:
            abort(context, exc)
