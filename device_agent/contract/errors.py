"""Errors the agent raises; the servicer maps each to one gRPC status code."""


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
