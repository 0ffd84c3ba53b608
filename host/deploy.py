"""Ship policy variants to a target's agent, run profile jobs there, store results as they arrive.

A deploy is resumable: models the device already holds are not uploaded again, and a
model that already has a finished job on this target with the same settings is skipped.
A job whose stream broke is re-attached by its id (with backoff) rather than re-run, and
episodes are stored with (job_id, index) as key, so nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import grpc

from device_agent._proto import agent_pb2 as pb
from host.agent_checks import AgentSentInvalidData, JobCheck, check_device_info
from host.agent_client import TRANSIENT_CODES, AgentClient, AgentUnavailableError, describe_rpc_error
from host.errors import DeviceError
from host.local_agent import local_agent
from host.profiles import TargetProfile
from host.results_db import ModelRow, ResultsDB
from host.workspace import Workspace


@dataclass(frozen=True)
class DeployConfig:
    n_episodes: int = 10
    """Episodes per model; the study used >= 10."""
    seed: int = 0
    warmup_calls: int = 100
    max_steps_per_episode: int = 0
    """0: the env's own time limit."""
    force: bool = False
    """Run again even when this target already has a finished job with the same settings."""
    reattach_attempts: int = 5
    """How often a broken stream is re-attached (with exponential backoff) before the deploy gives up."""
    max_attempts: int = 8
    """How often one model is retried when the agent drops the connection or loses the job (restarts)."""
    quality_workers: int = 0
    """Worker processes that run each job's episodes for their returns (parallel quality phase, batch 1 each);
    latency is then measured alone in a quiet latency phase. 0: the device's CPU count (the agent resolves it,
    and keeps 1 where an energy meter works); 1: every episode alone and timed, as before. It changes how fast
    a job runs, not what it measures, so it is not part of the settings key."""
    latency_calls: int | None = None
    """Timed in-loop calls of that latency phase; None: the agent's default (1000)."""


@dataclass
class DeployOutcome:
    target: str
    fingerprint: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


# Progress callbacks: (model, episodes done, episodes total). The CLI draws a rich bar with them.
ProgressFn = Callable[[ModelRow, int, int], None]


def profile_settings(profile: TargetProfile, cfg: DeployConfig) -> pb.ProfileSettings:
    """The job settings for one target. Options the profile leaves unset stay unset on the wire, so the
    agent's defaults apply and the settings key (what counts as already done) does not change."""
    m = profile.measurement
    return pb.ProfileSettings(
        n_episodes=cfg.n_episodes,
        seed=cfg.seed,
        warmup_calls=cfg.warmup_calls if m.warmup_calls is None else m.warmup_calls,
        max_steps_per_episode=cfg.max_steps_per_episode
        if m.max_steps_per_episode is None
        else m.max_steps_per_episode,
        execution_providers=profile.execution_providers,
        intra_op_threads=m.intra_op_threads or 0,
        keep_latencies=True if m.keep_latencies is None else m.keep_latencies,
        cpu_affinity=m.cpu_affinity or [],
        control_rate=bool(m.control_rate),
        idle_s=m.idle_s,
        inference_phase_s=m.inference_phase_s,
        quality_workers=cfg.quality_workers,
        latency_calls=cfg.latency_calls,
    )


KEY_IGNORES = ("quality_workers",)
"""Settings that change how fast a job runs but not what it measures (the same seeds give the same returns,
and latency is measured alone either way): jobs that differ only in these count as the same measurement."""


def settings_key(settings: pb.ProfileSettings) -> str:
    """Jobs with equal settings measure the same thing; their key decides what is already done."""
    keyed = pb.ProfileSettings()
    keyed.CopyFrom(settings)
    for name in KEY_IGNORES:
        keyed.ClearField(name)
    return hashlib.sha256(keyed.SerializeToString(deterministic=True)).hexdigest()[:16]


@contextmanager
def connect(profile: TargetProfile, workspace: Workspace) -> Iterator[AgentClient]:
    with ExitStack() as stack:
        address = (
            stack.enter_context(local_agent(workspace.local_agent_dir, profile.address)).address
            if profile.spawn_local
            else profile.address
        )
        client = stack.enter_context(AgentClient(address, security=profile.client_security()))
        client.wait_ready()
        yield client


def _consume(
    db: ResultsDB,
    job_id: str,
    events: Iterator[pb.ProfileEvent],
    model: ModelRow,
    total: int,
    progress: ProgressFn,
) -> str | None:
    """Store events as they arrive, each checked first (host.agent_checks): a value that cannot be true fails
    the job and drops what was stored of it. Returns None on success, else the job's failure message."""
    request = db.job_request(job_id)
    check = JobCheck(request if request is not None else pb.ProfileRequest())
    try:
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "episode":
                if check.episode(event.episode):
                    db.add_episode(job_id, event.episode)
                progress(model, db.count_episodes(job_id), total)
            elif kind == "summary":
                check.summary(event.summary)
                db.finish_job(job_id, event.summary)
                return None
            elif kind == "failed":
                message = check.failure(event.failed)
                db.fail_job(job_id, message)
                return message
    except AgentSentInvalidData as exc:
        db.discard_job(job_id, str(exc))
        return str(exc)
    raise AgentUnavailableError(f"the stream of job {job_id} ended without a summary (the agent stopped?)")


def run_job(
    client: AgentClient,
    db: ResultsDB,
    job_id: str,
    request: pb.ProfileRequest | None,
    model: ModelRow,
    total: int,
    cfg: DeployConfig,
    progress: ProgressFn,
) -> str | None:
    """Run (or re-attach to) one job until it ends; survives broken streams by re-attaching."""
    attempt = 0
    while True:
        try:
            events = client.run_profile(request) if request is not None else client.watch_job(job_id)
            return _consume(db, job_id, events, model, total, progress)
        except (grpc.RpcError, DeviceError) as exc:
            if isinstance(exc, grpc.RpcError) and exc.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNAUTHENTICATED,
            ):
                message = describe_rpc_error(exc, client.address)
                db.fail_job(job_id, message)
                return message
            if isinstance(exc, grpc.RpcError) and exc.code() is grpc.StatusCode.NOT_FOUND and request is None:
                return "NOT_FOUND"  # the agent lost this job (e.g. its data dir was wiped): the caller re-submits
            attempt += 1
            if attempt > cfg.reattach_attempts:
                raise AgentUnavailableError(
                    f"lost job {job_id} on {client.address} after {attempt - 1} re-attach attempts: {exc}"
                ) from exc
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
            request = None  # from now on, follow the job the agent already has


TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
)
RESTARTED = ("NOT_FOUND", "AgentRestarted")
"""Job outcomes that mean the agent lost the job (not that the model failed): run it again."""


def _is_transient(exc: Exception) -> bool:
    """A dropped connection or an agent being restarted, as opposed to a refusal."""
    if isinstance(exc, grpc.RpcError):
        return exc.code() in TRANSIENT_CODES
    return isinstance(exc, AgentUnavailableError)


def _profile_one(
    client: AgentClient,
    db: ResultsDB,
    model: ModelRow,
    reattach_id: str | None,
    new_request: Callable[[], pb.ProfileRequest],
    cfg: DeployConfig,
    progress: ProgressFn,
) -> tuple[str | None, bool]:
    """One model to the end: upload if missing, run or re-attach, re-run if the agent lost the job.

    :return: (error or None, whether the model was uploaded)
    """
    uploaded = False
    for attempt in range(cfg.max_attempts):
        try:
            if model.sha256 not in client.has_models([model.sha256]):
                client.upload(model.path, model.sha256)
                uploaded = True
            if reattach_id is not None:
                error = run_job(client, db, reattach_id, None, model, cfg.n_episodes, cfg, progress)
            else:
                request = new_request()
                reattach_id = request.job_id  # if the connection drops from here on, follow this job
                error = run_job(client, db, request.job_id, request, model, cfg.n_episodes, cfg, progress)
            if error is not None and error.startswith(RESTARTED):
                if reattach_id is not None:
                    db.fail_job(reattach_id, f"the agent lost this job ({error}); it was run again")
                reattach_id = None
                continue
            return error, uploaded
        except (grpc.RpcError, DeviceError) as exc:
            if not _is_transient(exc) or attempt + 1 >= cfg.max_attempts:
                raise
            time.sleep(min(0.5 * 2**attempt, 10.0))
            client.wait_ready(timeout_s=60)
    return f"gave up after {cfg.max_attempts} attempts: the agent kept losing the job", uploaded


def deploy(
    models: list[ModelRow],
    profile: TargetProfile,
    workspace: Workspace,
    db: ResultsDB,
    cfg: DeployConfig,
    progress: ProgressFn | None = None,
) -> DeployOutcome:
    progress = progress or (lambda *_: None)
    settings = profile_settings(profile, cfg)
    key = settings_key(settings)
    with connect(profile, workspace) as client:
        info = client.device_info()
        check_device_info(info)
        db.upsert_target(profile.name, info)
        outcome = DeployOutcome(profile.name, info.fingerprint)
        for model in models:
            previous = db.jobs_for(model.sha256, info.fingerprint, key)
            if not cfg.force and any(j.state == "succeeded" for j in previous):
                outcome.skipped.append(model.sha256)
                continue
            pending = [j for j in previous if j.state in ("queued", "running")]
            reattach_id = pending[-1].job_id if pending and not cfg.force else None

            def new_request(model: ModelRow = model) -> pb.ProfileRequest:
                # recorded before it is sent: a host that dies right after can re-attach by this id
                job_id = f"{model.sha256[:12]}-{key[:8]}-{uuid.uuid4().hex[:12]}"
                request = pb.ProfileRequest(job_id=job_id, model_sha256=model.sha256, settings=settings)
                db.add_job(job_id, model.sha256, profile.name, info.fingerprint, key, request)
                return request

            progress(model, 0, cfg.n_episodes)
            error, uploaded = _profile_one(client, db, model, reattach_id, new_request, cfg, progress)
            if uploaded:
                outcome.uploaded.append(model.sha256)
            if error is None:
                outcome.succeeded.append(model.sha256)
            else:
                outcome.failed[model.sha256] = error
        return outcome
