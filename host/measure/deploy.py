"""Ship policy variants to a target's agent, run profile jobs there, store results as they arrive.

The measurement protocol (README, "Measurement protocol"): a deploy is one *session*. Latency is taken
in ``rounds``; each round runs one fresh job (fresh worker process) per model, the models in an order
shuffled per round (seeded, recorded in the ``sessions`` table), so drift on the device hits every model
alike and a variant is compared with its baseline round by round, never across sessions. Round 0 runs
the episodes (returns, energy, floor); later rounds are latency-only jobs (seeded MuJoCo gives the same
returns every time). After each job the validity rule judges what the agent saw during its timed window;
a spoiled round is run again (at most ``max_spoiled_retries`` times) and stays flagged, never averaged in.

A deploy is resumable: models the device already holds are not uploaded again; the latest session on
this target with the same settings that holds every chosen model is continued, (model, round) by
(model, round), and one already complete is skipped. A job whose stream broke is re-attached by its id
(with backoff) rather than re-run, and episodes are stored with (job_id, index) as key, so nothing is
stored twice.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import grpc

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.settings import settings_request
from device_agent.contract.validity import ValidityRule
from host.measure.agent_checks import AgentSentInvalidData, JobCheck, check_device_info
from host.measure.agent_client import TRANSIENT_CODES, AgentClient, AgentUnavailableError, describe_rpc_error
from host.errors import DeviceError
from host.measure.local_agent import local_agent
from host.measure.profiles import TargetProfile
from host.measure.protocol import (
    EXTRA_ROUND_BASE,
    LATER_ROUNDS_ALL,
    LATER_ROUNDS_CANDIDATES,
    LATER_ROUNDS_DEFAULT,
    MAX_SPOILED_RETRIES_DEFAULT,
    MORE_ROUNDS_STEP,
    ROUND_LATENCY_CALLS,
    MAX_STEPS_PER_EPISODE_DEFAULT,
    N_EPISODES_DEFAULT,
    WARMUP_CALLS_DEFAULT,
    ROUNDS_DEFAULT,
)
from host.store.results_db import JobRow, ModelRow, ResultsDB, SessionRow
from host.measure.until_decided import falls_short, plan_extension
from host.store.workspace import Workspace


@dataclass(frozen=True)
class DeployConfig:
    n_episodes: int | None = None
    """Episodes per model (the study used >= 10); None: the profile's ``[measurement] n_episodes``, else
    :data:`~host.measure.protocol.N_EPISODES_DEFAULT` (:func:`episodes_for`)."""
    seed: int = 0
    warmup_calls: int | None = None
    """Uncounted inference calls before timing; None: the profile's, else
    :data:`~host.measure.protocol.WARMUP_CALLS_DEFAULT`."""
    max_steps_per_episode: int | None = None
    """0: the env's own time limit; None: the profile's, else
    :data:`~host.measure.protocol.MAX_STEPS_PER_EPISODE_DEFAULT` (0)."""
    force: bool = False
    """Run again even when this target already has a finished job with the same settings."""
    reattach_attempts: int = 5
    """How often a broken stream is re-attached (with exponential backoff) before the deploy gives up."""
    max_attempts: int = 8
    """How often one model is retried when the agent drops the connection or loses the job (restarts)."""
    quality_workers: int = 0
    """Worker processes that run each job's episodes for their returns (parallel quality phase, batch 1 each);
    latency is then measured alone in a quiet latency phase. 0: the device's CPU count (the agent resolves it,
    and keeps 1 where an energy meter works); 1: every episode alone and timed, as before. It changes what
    latency is computed from (every episode step, or the latency phase), so it is part of the settings key."""
    latency_calls: int | None = None
    """Timed in-loop calls of that latency phase, and of every later round; None: the agent's default (1000)."""
    rounds: int = ROUNDS_DEFAULT
    """Latency rounds (see the module docstring); 1: the single pass of before the protocol."""
    round_latency_calls: int = ROUND_LATENCY_CALLS
    """Timed in-loop calls of each later (latency-only) round."""
    order_seed: int | None = None
    """Seed of the per-round shuffles; None: a fresh one, recorded with the session."""
    max_spoiled_retries: int = MAX_SPOILED_RETRIES_DEFAULT
    op_profile_calls: int | None = None
    """Round 0's operator profile (ONNX Runtime's profiler over this many in-loop calls, after the timed phases,
    in a worker of its own); None: the profile's ``measurement.op_profile_calls``; 0: none."""
    validity_rule: ValidityRule = field(default_factory=ValidityRule)
    """When a job's timing is spoiled (device_agent.validity; ValidityRule.never() switches it off)."""
    auto_episodes_cap: int = 0
    """``--episodes auto``: after the rounds, add seeded episodes to variants whose return verdict is undecided
    (and to their baselines) until decided or this many episodes per model (host.measure.until_decided); 0: off."""
    later_rounds: str = LATER_ROUNDS_DEFAULT
    """Which models the later rounds time (``LATER_ROUNDS_MODES``): ``candidates`` leaves out the variants
    shown after round 0 to fall short on return; ``all`` times every model."""
    max_rounds: int = 0
    """After the ``rounds``, more paired rounds for the variants whose latency verdict is unsettled, up to this
    many rounds in all (:data:`~host.measure.protocol.MAX_ROUNDS_DEFAULT`, which the CLI and studies use); 0 or
    ``rounds`` and less: off. Needs :func:`deploy`'s ``unsettled``."""


@dataclass
class DeployOutcome:
    target: str
    fingerprint: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    session_id: str = ""
    rounds: int = 1
    orders: list[list[str]] = field(default_factory=list)
    spoiled: list[tuple[str, int, str]] = field(default_factory=list)
    """(sha256, round, reasons) of every job whose timing was spoiled in this deploy (then run again)."""
    kept_spoiled: list[tuple[str, int]] = field(default_factory=list)
    """(sha256, round) still spoiled after every retry: flagged, never used as a latency sample."""
    extended: dict[str, int] = field(default_factory=dict)
    """``--episodes auto``: sha256 -> episodes it has in all after the extra seeded episodes it was given."""
    more_rounds: dict[str, int] = field(default_factory=dict)
    """``max_rounds``: sha256 -> rounds it has in all, for each variant that got more paired rounds."""
    unsettled: dict[str, str] = field(default_factory=dict)
    """``max_rounds``: sha256 -> why, for each variant still unsettled when its rounds reached the cap."""
    short: list[str] = field(default_factory=list)
    """Variants shown after round 0 to fall short on return, left out of the later rounds (``candidates``)."""

    def noisy_line(self) -> str | None:
        """One line when the device was noisy during this deploy, else None: counts, and the kinds of reason."""
        if not self.spoiled:
            return None
        kinds = Counter(
            " ".join(r.split()[:2]).rstrip(":") for _, _, why in self.spoiled for r in why.split("; ")
        )
        kept = (
            f", {len(self.kept_spoiled)} still spoiled after retries (flagged, not used)"
            if self.kept_spoiled
            else ""
        )
        top = ", ".join(f"{kind} ({n})" for kind, n in kinds.most_common(4))
        return f"device noisy: {len(self.spoiled)} job(s) spoiled and run again{kept}: {top}"


# Progress callbacks: (model, episodes done, episodes total). The CLI draws a rich bar with them.
ProgressFn = Callable[[ModelRow, int, int], None]


def episodes_for(profile: TargetProfile, cfg: DeployConfig) -> int:
    """Episodes per model on this target: the command line's, else the profile's, else the protocol's default."""
    return _chosen(cfg.n_episodes, profile.measurement.n_episodes, N_EPISODES_DEFAULT)


def _chosen(given: int | None, profile: int | None, default: int) -> int:
    """The one precedence of a setting both a command (or study file) and a profile may give: the command's,
    else the profile's, else the protocol's default (host.measure.protocol)."""
    if given is not None:
        return given
    return default if profile is None else profile


def profile_settings(profile: TargetProfile, cfg: DeployConfig) -> pb.ProfileSettings:
    """The job settings for one target, built by the contract's declared mapping (``settings_request``).
    Options the profile leaves unset (None) stay unset on the wire, so the agent's defaults apply and the
    settings key (what counts as already done) does not change."""
    m = profile.measurement
    return settings_request(
        n_episodes=episodes_for(profile, cfg),
        seed=cfg.seed,
        warmup_calls=_chosen(cfg.warmup_calls, m.warmup_calls, WARMUP_CALLS_DEFAULT),
        max_steps_per_episode=_chosen(
            cfg.max_steps_per_episode, m.max_steps_per_episode, MAX_STEPS_PER_EPISODE_DEFAULT
        ),
        execution_providers=profile.execution_providers,
        intra_op_threads=m.intra_op_threads,
        keep_latencies=m.keep_latencies,
        cpu_affinity=m.cpu_affinity,
        control_rate=m.control_rate,
        idle_s=m.idle_s,
        inference_phase_s=m.inference_phase_s,
        quality_workers=cfg.quality_workers,
        latency_calls=cfg.latency_calls,
        # 0 and unset are both "no profile": left unset, so the settings key of a deploy without one never changes
        op_profile_calls=(cfg.op_profile_calls if cfg.op_profile_calls is not None else m.op_profile_calls)
        or None,
        trt_engine_cache=m.trt_engine_cache,
        trt_fp16=m.trt_fp16,
        trt_int8=m.trt_int8,
    )


def latency_round_settings(settings: pb.ProfileSettings, calls: int) -> pb.ProfileSettings:
    """A later round's job: the same settings, latency only, ``calls`` timed in-loop calls. n_episodes = 1 so
    an agent from before ``latency_only`` (which ignores it) runs one episode, not the whole set again."""
    later = pb.ProfileSettings()
    later.CopyFrom(settings)
    later.latency_only = True
    later.n_episodes = 1
    later.latency_calls = calls
    later.ClearField("op_profile_calls")  # the operator profile is round 0's alone
    return later


def settings_key(
    settings: pb.ProfileSettings,
    rounds: int = 1,
    round_calls: int = ROUND_LATENCY_CALLS,
    later_rounds: str = LATER_ROUNDS_DEFAULT,
    max_rounds: int = 0,
) -> str:
    """Jobs with equal keys measure the same thing; the key decides what is already done and which jobs are
    compared. Everything that changes what is measured is in it: every setting sent (quality_workers and
    latency_calls included: they decide what latency is computed from), the number of rounds and, with more
    than one, the calls of a later round, which models it times and how far unsettled variants go."""
    later = (
        f"|round_calls={round_calls}|paired"
        + ("" if later_rounds == LATER_ROUNDS_ALL else f"|later={later_rounds}")
        + (f"|max_rounds={max_rounds}" if max_rounds > rounds else "")
    )
    protocol = f"|rounds={rounds}" + (later if rounds > 1 else "")
    payload = settings.SerializeToString(deterministic=True) + protocol.encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def deploy_key(profile: TargetProfile, cfg: DeployConfig) -> str:
    """The settings key of a deploy of ``cfg`` to ``profile``."""
    return settings_key(
        profile_settings(profile, cfg), cfg.rounds, cfg.round_latency_calls, cfg.later_rounds, cfg.max_rounds
    )


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
    """Store events as they arrive, each checked first (host.measure.agent_checks): a value that cannot be true fails
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
                if event.failed.error_type == AGENT_RESTARTED:
                    raise JobLost(message)
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
                raise JobLost("NOT_FOUND") from None  # e.g. its data dir was wiped: the caller re-submits
            attempt += 1
            if attempt > cfg.reattach_attempts:
                raise AgentUnavailableError(
                    f"lost job {job_id} on {client.address} after {attempt - 1} re-attach attempts: {exc}"
                ) from exc
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
            request = None  # from now on, follow the job the agent already has


AGENT_RESTARTED = "AgentRestarted"
"""``JobFailed.error_type`` of a job the agent lost when it restarted (device_agent.jobs sets it)."""


class JobLost(Exception):
    """The agent lost the job (it restarted, or no longer knows the id), not that the model failed: the caller
    runs the job again. Internal to the deploy: never reaches a user."""


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
    total: int,
) -> tuple[str | None, bool, str | None]:
    """One model to the end: upload if missing, run or re-attach, re-run if the agent lost the job.

    :return: (error or None, whether the model was uploaded, the id of the job that ran last)
    """
    uploaded = False
    for attempt in range(cfg.max_attempts):
        try:
            if model.sha256 not in client.has_models([model.sha256]):
                client.upload(model.path, model.sha256)
                uploaded = True
            try:
                if reattach_id is not None:
                    error = run_job(client, db, reattach_id, None, model, total, cfg, progress)
                else:
                    request = new_request()
                    reattach_id = request.job_id  # if the connection drops from here on, follow this job
                    error = run_job(client, db, request.job_id, request, model, total, cfg, progress)
            except JobLost as lost:
                if reattach_id is not None:
                    db.fail_job(reattach_id, f"the agent lost this job ({lost}); it was run again")
                reattach_id = None
                continue
            return error, uploaded, reattach_id
        except (grpc.RpcError, DeviceError) as exc:
            if not _is_transient(exc) or attempt + 1 >= cfg.max_attempts:
                raise
            time.sleep(min(0.5 * 2**attempt, 10.0))
            client.wait_ready(timeout_s=60)
    return f"gave up after {cfg.max_attempts} attempts: the agent kept losing the job", uploaded, reattach_id


def plan_session(
    models: list[ModelRow], target: str, fingerprint: str, key: str, rounds: int, seed: int | None
) -> SessionRow:
    """A new session: the models in a fresh seeded shuffle for every round (round 0 included)."""
    order_seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    rng = random.Random(order_seed)
    orders = []
    for _ in range(rounds):
        order = [m.sha256 for m in models]
        rng.shuffle(order)
        orders.append(order)
    return SessionRow(f"s-{uuid.uuid4().hex[:16]}", target, fingerprint, key, rounds, order_seed, orders)


def _round_done(jobs: list[JobRow], cfg: DeployConfig) -> bool:
    """A (model, round) is done when a job of it succeeded unspoiled, or every allowed retry was spoiled."""
    done = [j for j in jobs if j.state == "succeeded"]
    return any(not j.spoiled for j in done) or len(done) > cfg.max_spoiled_retries


def find_session(db: ResultsDB, fingerprint: str, key: str, shas: set[str]) -> SessionRow | None:
    """The latest session on this target with these settings that holds every chosen model."""
    for session in db.sessions(fingerprint, key):
        if shas <= session.models:
            return session
    return None


def judge(db: ResultsDB, job_id: str, rule: ValidityRule) -> list[str]:
    """Apply the validity rule to what the agent saw during the job's timed window; store facts and verdict.
    An agent that sends no facts (from before validity) is not held to them: its jobs are not spoiled."""
    job = db.job(job_id)
    facts = (job.summary or {}).get("validity") if job else None
    reasons = rule.reasons(facts) if facts else []
    validity = None if facts is None else {**facts, "reasons": reasons, "rule": rule.__dict__}
    db.set_validity(job_id, validity, bool(reasons))
    return reasons


@dataclass
class _SessionRun:
    """One session being run on one connected agent: its jobs so far, and the outcome it builds."""

    client: AgentClient
    db: ResultsDB
    session: SessionRow
    profile: TargetProfile
    fingerprint: str
    cfg: DeployConfig
    settings: tuple[pb.ProfileSettings, pb.ProfileSettings]
    """(round 0, later rounds)"""
    rule: Callable[[str], list[str]]
    progress: ProgressFn
    outcome: DeployOutcome
    jobs: dict[tuple[str, int], list[JobRow]] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.settings[0].n_episodes + self.cfg.rounds - 1

    def partner(self, model: ModelRow, r: int) -> str | None:
        """The model a later round of ``model`` is timed against in the same worker: its baseline, when the
        session measures it and it did not fail (README, "Measurement protocol": paired latency)."""
        parent = model.parent_sha256
        members = self.session.orders[0] if self.session.orders else []
        if r == 0 or r >= EXTRA_ROUND_BASE or not parent or parent == model.sha256:
            return None
        return parent if parent in members and parent not in self.outcome.failed else None

    def new_request(
        self, model: ModelRow, r: int, settings: pb.ProfileSettings | None = None
    ) -> pb.ProfileRequest:
        """Recorded before it is sent: a host that dies right after can re-attach by this id."""
        key = self.session.settings_key
        job_id = f"{model.sha256[:12]}-{key[:8]}-r{r}-{uuid.uuid4().hex[:12]}"
        if settings is None:
            settings = self.settings[0 if r == 0 else 1]
            partner = self.partner(model, r)
            if partner is not None:
                settings = pb.ProfileSettings()
                settings.CopyFrom(self.settings[1])
                settings.paired_with_sha256 = partner
        request = pb.ProfileRequest(job_id=job_id, model_sha256=model.sha256, settings=settings)
        self.db.add_job(
            job_id,
            model.sha256,
            self.profile.name,
            self.fingerprint,
            key,
            request,
            self.session.session_id,
            r,
        )
        return request

    def run_round(self, model: ModelRow, r: int) -> None:
        """Model ``model``'s job of round ``r``, run again while the rule spoils it (bounded)."""
        sha = model.sha256
        while not _round_done(self.jobs.get((sha, r), []), self.cfg):
            previous = self.jobs.get((sha, r), [])
            pending = [j for j in previous if j.state in ("queued", "running")]
            if r == 0:
                self.progress(model, 0, self.total)
            self.ran.add(sha)
            error, uploaded, job_id = _profile_one(
                self.client,
                self.db,
                model,
                pending[-1].job_id if pending else None,
                lambda: self.new_request(model, r),
                self.cfg,
                self.progress,
                self.total,
            )
            if uploaded and sha not in self.outcome.uploaded:
                self.outcome.uploaded.append(sha)
            if error is not None or job_id is None:
                self.outcome.failed[sha] = error if r == 0 else f"round {r}: {error}"
                return
            reasons = self.rule(job_id)
            finished = self.db.job(job_id)
            assert finished is not None  # it was just stored
            self.jobs[(sha, r)] = [j for j in previous if j.job_id != job_id] + [finished]
            if reasons:
                self.outcome.spoiled.append((sha, r, "; ".join(reasons)))
                if _round_done(self.jobs[(sha, r)], self.cfg):
                    self.outcome.kept_spoiled.append((sha, r))
        if r < self.cfg.rounds:  # the extra rounds of unsettled variants are beyond the planned total
            self.progress(model, self.settings[0].n_episodes + r, self.total)

    def more_rounds(self, unsettled: Callable[[str], dict[str, str]], by_sha: dict[str, ModelRow]) -> None:
        """``max_rounds``: paired rounds ``rounds``, ``rounds + 1``, ... for the variants whose latency verdict
        is unsettled, judged again every ``MORE_ROUNDS_STEP`` rounds, until none is or the cap. Each extra
        round is a fresh worker per variant (timing it against its baseline, as every later round does), the
        variants in a seeded shuffle; a continued session runs only the (model, round) jobs not done yet. Only
        a variant whose baseline is in the session and did not fail can be paired, so only such are run."""
        rng = random.Random(f"{self.session.order_seed}:more-rounds")
        r = self.cfg.rounds
        ran: set[str] = set()
        while True:
            why = {
                sha: reason
                for sha, reason in unsettled(self.session.session_id).items()
                if sha in by_sha
                and sha not in self.outcome.short
                and self.partner(by_sha[sha], self.cfg.rounds) is not None  # a variant with its baseline here
                and sha not in self.outcome.failed
            }
            if r >= self.cfg.max_rounds or not why:
                self.outcome.unsettled = why
                # rounds each has in all (a variant named again after a pause has gaps in its numbers)
                self.outcome.more_rounds = {
                    sha: sum(
                        1 for (s, n), jobs in self.jobs.items() if s == sha and n < EXTRA_ROUND_BASE and jobs
                    )
                    for sha in ran
                }
                return
            end = min(r + MORE_ROUNDS_STEP, self.cfg.max_rounds)
            for k in range(r, end):
                order = sorted(why)
                rng.shuffle(order)
                for sha in order:
                    if sha not in self.outcome.failed and not _round_done(
                        self.jobs.get((sha, k), []), self.cfg
                    ):
                        self.run_round(by_sha[sha], k)
                        ran.add(sha)
            r = end

    def session_returns(self) -> dict[str, dict[int, float]]:
        """sha256 -> {seed: return} over every succeeded job of this session (a seed counted once)."""
        return self.db.session_returns(self.session.session_id)

    def extend_until_decided(self, by_sha: dict[str, ModelRow]) -> None:
        """``--episodes auto``: extra seeded episodes (continuing each model's seed sequence) for undecided
        variants and their baselines, planned again after each batch, until none asks or the cap is reached.
        Extra jobs are rounds ``EXTRA_ROUND_BASE + k``: their episodes count for the return, never for timing."""
        cap = self.cfg.auto_episodes_cap
        done_rounds = [r for (_, r) in self.jobs if r >= EXTRA_ROUND_BASE]
        k = max(done_rounds, default=EXTRA_ROUND_BASE - 1) + 1
        have_before = -1
        while True:
            returns = {
                s: r
                for s, r in self.session_returns().items()
                if s in by_sha and s not in self.outcome.failed
            }
            parents = {s: by_sha[s].parent_sha256 for s in returns}
            plan = plan_extension(returns, parents, cap)
            have_now = sum(len(r) for r in returns.values())
            if not plan.totals or have_now == have_before:
                return  # all decided (or at the cap), or the last batch added no episode: never loop on it
            have_before = have_now
            for sha, total in plan.totals.items():
                model, have = by_sha[sha], returns[sha]
                settings = pb.ProfileSettings()
                settings.CopyFrom(self.settings[0])
                settings.n_episodes = total - len(have)
                settings.seed = max(have) + 1
                settings.latency_calls = EXTRA_LATENCY_CALLS
                self.ran.add(sha)
                error, _, job_id = _profile_one(
                    self.client,
                    self.db,
                    model,
                    None,
                    lambda m=model, r=k, s=settings: self.new_request(m, r, s),
                    self.cfg,
                    self.progress,
                    settings.n_episodes,
                )
                if error is not None or job_id is None:
                    self.outcome.failed[sha] = f"extra episodes: {error}"
                    return
                self.outcome.extended[sha] = total
            k += 1


EXTRA_LATENCY_CALLS = 10
"""Timed calls of an extra-episodes job's latency phase: its timing is never used, so as few as the agent takes."""


def _more_rounds_on(
    cfg: DeployConfig, unsettled: Callable[[str], dict[str, str]] | None
) -> Callable[[str], dict[str, str]] | None:
    """The judge of unsettled variants when ``cfg`` asks for more rounds, else None; a config no deploy can run
    is refused here, before anything is sent."""
    if cfg.rounds < 1:
        raise ValueError(f"rounds={cfg.rounds}: a deploy needs at least 1 round")
    if cfg.max_rounds >= EXTRA_ROUND_BASE:
        raise ValueError(f"max_rounds={cfg.max_rounds}: at most {EXTRA_ROUND_BASE - 1} rounds")
    if not cfg.max_rounds > cfg.rounds > 1:
        return None
    if unsettled is None:
        raise ValueError(
            "max_rounds asks for more rounds: pass unsettled, the judge of the session's variants"
        )
    return unsettled


def deploy(
    models: list[ModelRow],
    profile: TargetProfile,
    workspace: Workspace,
    db: ResultsDB,
    cfg: DeployConfig,
    progress: ProgressFn | None = None,
    rule: Callable[[str], list[str]] | None = None,
    unsettled: Callable[[str], dict[str, str]] | None = None,
) -> DeployOutcome:
    """Run (or continue) one session: ``cfg.rounds`` rounds over ``models``, each round in its recorded order,
    then (``cfg.max_rounds``) more paired rounds for the variants whose latency verdict is unsettled.

    :param rule: given a finished job's id, why its timing is spoiled (default: ``judge`` with
        ``cfg.validity_rule``); tests pass their own to spoil by construction
    :param unsettled: given the session's id, the variants whose latency verdict more rounds could settle
        (sha256 -> why): the report's judgement (host.report.stats.session_unsettled), which this package
        cannot import; needed when ``cfg.max_rounds`` asks for more rounds
    """
    more = _more_rounds_on(cfg, unsettled)
    first = profile_settings(profile, cfg)
    key = deploy_key(profile, cfg)
    by_sha = {m.sha256: m for m in models}
    with connect(profile, workspace) as client:
        info = client.device_info()
        check_device_info(info)
        db.upsert_target(profile.name, info)
        session = None if cfg.force else find_session(db, info.fingerprint, key, set(by_sha))
        if session is None:
            session = plan_session(models, profile.name, info.fingerprint, key, cfg.rounds, cfg.order_seed)
            db.add_session(session)
        outcome = DeployOutcome(
            profile.name, info.fingerprint, session_id=session.session_id, rounds=cfg.rounds
        )
        outcome.orders = [[s for s in order if s in by_sha] for order in session.orders]
        run = _SessionRun(
            client,
            db,
            session,
            profile,
            info.fingerprint,
            cfg,
            (first, latency_round_settings(first, cfg.round_latency_calls)),
            rule or (lambda job_id: judge(db, job_id, cfg.validity_rule)),
            progress or (lambda *_: None),
            outcome,
        )
        for job in db.session_jobs(session.session_id):
            if job.state == "succeeded" and job.validity is None and (job.summary or {}).get("validity"):
                run.rule(job.job_id)  # finished before the last deploy could judge it
                job = db.job(job.job_id) or job
            run.jobs.setdefault((job.model_sha256, job.round or 0), []).append(job)
        for r, order in enumerate(outcome.orders):
            if r == 1 and cfg.later_rounds == LATER_ROUNDS_CANDIDATES:
                parents = {s: by_sha[s].parent_sha256 for s in by_sha}
                outcome.short = sorted(falls_short(run.session_returns(), parents))
            for sha in order:
                if sha not in outcome.failed and (r == 0 or sha not in outcome.short):
                    run.run_round(by_sha[sha], r)
        if more is not None:
            run.more_rounds(more, by_sha)
        if cfg.auto_episodes_cap > 0:
            run.extend_until_decided(by_sha)
        for sha in by_sha:
            if sha not in outcome.failed:
                (outcome.succeeded if sha in run.ran else outcome.skipped).append(sha)
        return outcome
