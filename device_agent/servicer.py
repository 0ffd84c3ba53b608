"""The gRPC servicer: converts messages, streams events, maps errors to status codes.

No work happens here: storage, jobs and device facts live in their own modules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import grpc

from device_agent._proto import agent_pb2 as pb
from device_agent._proto import agent_pb2_grpc
from device_agent.device_info import device_info
from device_agent.errors import (
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
from device_agent.jobs import JobManager
from device_agent.settings import AgentLimits
from device_agent.storage import ModelStore

log = logging.getLogger(__name__)

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

    def GetDeviceInfo(self, request: pb.GetDeviceInfoRequest, context: grpc.ServicerContext) -> pb.DeviceInfo:
        return device_info(self.data_dir, self.limits, self.providers)

    def HasModels(self, request: pb.HasModelsRequest, context: grpc.ServicerContext) -> pb.HasModelsResponse:
        return pb.HasModelsResponse(present=[sha for sha in request.sha256 if self.store.has(sha)])

    def UploadModel(
        self, request_iterator: Iterator[pb.UploadModelRequest], context: grpc.ServicerContext
    ) -> pb.UploadModelResponse:
        try:
            first = next(request_iterator, None)
            if first is None or not first.HasField("header"):
                raise UploadError("an upload must start with a header message (sha256, size_bytes)")
            header = first.header
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
                    if not message.HasField("chunk"):
                        raise UploadError("only data chunks may follow the header")
                    yield message.chunk

            manifest = self.store.put(header.sha256, header.size_bytes, chunks())
            return pb.UploadModelResponse(
                sha256=header.sha256, size_bytes=header.size_bytes, manifest_json=manifest.to_json()
            )
        except Exception as exc:
            abort(context, exc)

    def RunProfile(
        self, request: pb.ProfileRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ProfileEvent]:
        try:
            job_id, reattached = self.jobs.submit(request)
        except Exception as exc:
            abort(context, exc)
        yield from self.jobs.follow(job_id, context.is_active, reattached=reattached)

    def WatchJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> Iterator[pb.ProfileEvent]:
        try:
            self.jobs.record(request.job_id)
        except Exception as exc:
            abort(context, exc)
        yield from self.jobs.follow(request.job_id, context.is_active, reattached=True)

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.JobRecord:
        try:
            return self.jobs.record(request.job_id)
        except Exception as exc:
            abort(context, exc)

    def CancelJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.JobRecord:
        try:
            return self.jobs.cancel(request.job_id)
        except Exception as exc:
            abort(context, exc)
