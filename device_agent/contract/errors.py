"""Errors the agent raises; the servicer maps each to one gRPC status code. A failed job names its kind in
``JobFailed.error_type`` (``JobFailure``, or the error class's name), so a client can tell them apart by type."""

from __future__ import annotations

from enum import Enum


class AgentError(Exception):
    """Base of every error the agent reports to a client."""


class InvalidModelError(AgentError):
    """The uploaded bytes are not a drlc policy graph this agent will run."""


class ModelNotFoundError(AgentError):
    """The device holds no model with the requested sha256."""


class UploadError(AgentError):
    """An upload broke the protocol: wrong hash, too large, chunks out of order."""


class InvalidRequestError(AgentError):
    """A job request asks for something impossible or outside the agent's limits."""


class EnvUnavailableError(AgentError):
    """The requested Gymnasium env cannot be built on this device."""


class JobNotFoundError(AgentError):
    """No job with that id is known to this agent."""


class JobConflictError(AgentError):
    """A job id was reused for a different request."""


class WorkerError(AgentError):
    """The worker process running a job failed (crash, NaN actions, env error)."""


class EnvNotAllowedError(AgentError):
    """The requested env is not on this agent's allow-list."""


class JobFailure(str, Enum):
    """``JobFailed.error_type`` values the agent itself sets when a job ends without a result. Otherwise the
    error type is the name of the AgentError subclass the job raised (``InvalidModelError``...), or
    ``WorkerError`` for anything else a worker raised."""

    AGENT_RESTARTED = "AgentRestarted"
    """The agent stopped (or died) while the job was queued or running; found so when it started again."""
    AGENT_STOPPED = "AgentStopped"
    """The agent was shut down while the job was queued or running."""
    JOB_TIMEOUT = "JobTimeout"
    """The job ran longer than the agent's ``max_job_duration_s``."""
    WORKER_CRASHED = "WorkerCrashed"
    """A worker process died (a signal, a crash in native code) before the job finished."""
    WORKER_MEMORY_LIMIT = "WorkerMemoryLimit"
    """The job's workers together held more memory than the agent allows."""

    def __str__(self) -> str:
        return self.value
