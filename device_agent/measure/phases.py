"""The phases of a job, each a use of the one step loop (``device_agent.measure.loop``) or, for the
inference-only phase, a replay without the env.

Every phase that times anything runs with Python's garbage collector paused and alone on the device; energy
meters are read only between phases and between episodes, never inside one. Each phase steps episodes with
seeds of its own (``seed`` + an offset below), so no phase replays another's starts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from device_agent.contract.errors import InvalidRequestError
from device_agent.contract.settings import INFERENCE_PHASE_DEFAULT_S, PAIRED_BLOCK_CALLS, MeasurementSettings
from device_agent.contract.stats import latency_summary
from device_agent.energy.recorder import EnergyFigure, EnergyRecorder, Marks
from device_agent.measure.loop import Stepped, gc_paused, step_loop
from device_agent.measure.results import (
    ControlRateOutcome,
    EpisodeOutcome,
    HelperStage,
    InferencePhaseOutcome,
)
from device_agent.measure.session import Policy

Emit = Callable[[object], None]

WARMUP_SEED_OFFSET = 1_000_003
"""Seeds of the warm-up's throw-away episodes: far from the measured episodes' seed + i."""
REPLAY_SEED_OFFSET = 2_000_003
"""Seeds of the rollout recorded for the inference-only phase."""
LATENCY_SEED_OFFSET = 3_000_003
"""Seeds of the latency phase's throw-away episodes."""
FLOOR_SEED_OFFSET = 4_000_003
"""Seeds of the runtime floor's episodes."""
OP_PROFILE_SEED_OFFSET = 5_000_003
"""Seeds of the operator profile's episodes (its own worker, after the timed phases)."""


def warm_up(env: Any, infer: Policy, obs_buffer: np.ndarray, n_calls: int, seed: int) -> None:
    """Step ``n_calls`` untimed in-loop calls so caches, allocators and clocks settle before anything is timed.
    They run through the same loop as the timed calls, so they warm exactly what will be timed."""
    step_loop(env, infer, obs_buffer, seed, calls=n_calls)


def run_episode(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    index: int,
    seed: int,
    keep_latencies: bool,
    period_ns: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[EpisodeOutcome, Stepped]:
    """One seeded episode, every call and env step timed; paced as a control loop when ``period_ns`` is set.
    Returns its outcome and the loop's raw times."""
    run = step_loop(env, infer, obs_buffer, seed, period_ns=period_ns, sleep=sleep)
    paced = period_ns is not None
    outcome = EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=run.total_reward,
        length=len(run.calls_ns),
        terminated=run.terminated,
        inference=latency_summary(run.calls_ns),
        env_step=latency_summary(run.steps_ns),
        wall_s=run.wall_s,
        inference_ns=run.calls_ns if keep_latencies else [],
        deadline_misses=run.deadline_misses if paced else None,
        max_overrun_ns=run.max_overrun_ns if paced else None,
    )
    return outcome, run


EMPTY_LATENCY = latency_summary([])
"""What a returns-only episode reports for its (unmeasured) inference and env-step times."""


def run_returns_episode(
    env: Any, infer: Policy, obs_buffer: np.ndarray, index: int, seed: int, worker: int
) -> EpisodeOutcome:
    """One seeded episode for its return only (parallel quality phase): the same loop, its times dropped. The
    return is summed in the same order, so it equals the sequential run's to the bit."""
    run = step_loop(env, infer, obs_buffer, seed)
    return EpisodeOutcome(
        index=index,
        seed=seed,
        episode_return=run.total_reward,
        length=len(run.steps_ns),
        terminated=run.terminated,
        inference=EMPTY_LATENCY,
        env_step=EMPTY_LATENCY,
        wall_s=run.wall_s,
        returns_only=True,
        worker=worker,
    )


def latency_phase(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    n_calls: int,
    seed: int,
    period_ns: int | None,
    sleep: Callable[[float], None] = time.sleep,
    partner: Policy | None = None,
    block: int = PAIRED_BLOCK_CALLS,
) -> Stepped:
    """``n_calls`` timed inference calls, each followed by a timed env step, exactly as inside an episode;
    throw-away episodes reset with seed, seed + 1, ... as they end. Runs while the device is quiet (no helper is
    stepping). With a ``partner`` (paired latency), ``n_calls`` calls of each model, in ABBA blocks of ``block``."""
    return step_loop(
        env,
        infer,
        obs_buffer,
        seed,
        calls=n_calls,
        period_ns=period_ns,
        partner=partner,
        block=block,
        sleep=sleep,
    )


def control_period_ns(env: Any, env_id: str) -> int:
    dt = getattr(env.unwrapped, "dt", None)
    if not dt or dt <= 0:
        raise InvalidRequestError(
            f"control-rate mode needs the env's control period (dt), and {env_id} does not define one; "
            "run without control_rate"
        )
    return round(float(dt) * 1e9)


def record_observations(env: Any, infer: Policy, obs_buffer: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded rollout of the policy (its times unused): the observations the inference-only phase replays."""
    recorded = np.empty((n, *obs_buffer.shape[1:]), dtype=np.float32)
    rows = iter(recorded)

    def recording() -> np.ndarray:
        next(rows)[...] = obs_buffer[0]
        return infer()

    step_loop(env, recording, obs_buffer, seed, calls=n)
    return recorded


def inference_phase(
    infer: Policy,
    obs_buffer: np.ndarray,
    observations: np.ndarray,
    min_s: float,
    energy: EnergyRecorder | None,
) -> InferencePhaseOutcome:
    """Replay ``observations`` through the model back-to-back, in whole passes, for at least ``min_s``.

    Only the pass loop is timed (one clock read per pass); the meters are read before and after it.
    """
    clock = time.perf_counter
    start = energy.mark() if energy else {}
    t0 = clock()
    calls = 0
    while True:
        for row in observations:
            obs_buffer[0] = row
            infer()
        calls += len(observations)
        if clock() - t0 >= min_s:
            break
    wall = clock() - t0
    end = energy.mark() if energy else {}
    figures = energy.figures(start, end, n_items=calls) if energy else []
    distinct = len(np.unique(observations, axis=0))
    return InferencePhaseOutcome(calls=calls, wall_s=wall, distinct_observations=distinct, energy=figures)


def inference_phase_length_s(settings: MeasurementSettings, energy: EnergyRecorder | None) -> float:
    """0 when the phase is skipped; else its minimum length (at least 10 updates of the slowest meter)."""
    has_meter = bool(energy and energy.meters)
    if settings.inference_phase_s == 0 or (settings.inference_phase_s is None and not has_meter):
        return 0.0
    wanted = INFERENCE_PHASE_DEFAULT_S if settings.inference_phase_s is None else settings.inference_phase_s
    return max(wanted, energy.min_window_s * 1.05 if energy else 0.0)


@dataclasses.dataclass
class EpisodesPhase:
    """What the episodes phase pooled: raw times, the whole phase's energy, control-rate totals."""

    calls_ns: list[int] = dataclasses.field(default_factory=list)
    steps_ns: list[int] = dataclasses.field(default_factory=list)
    energy: list[EnergyFigure] = dataclasses.field(default_factory=list)
    deadline_misses: int = 0
    max_overrun_ns: float = 0.0

    def control_rate(self, period_ns: int | None) -> ControlRateOutcome | None:
        if period_ns is None:
            return None
        return ControlRateOutcome(
            period_ns / 1e9, len(self.calls_ns), self.deadline_misses, self.max_overrun_ns
        )


def run_episodes(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    settings: MeasurementSettings,
    period_ns: int | None,
    energy: EnergyRecorder | None,
    emit: Emit,
) -> EpisodesPhase:
    """Every episode, each emitted as it ends; meters are read between episodes, never inside one."""
    phase = EpisodesPhase()
    first: Marks = {}
    before: Marks = {}
    after: Marks = {}
    for i in range(settings.n_episodes):
        if energy:
            before = energy.mark()
            first = first or before
        with gc_paused():
            outcome, run = run_episode(
                env, infer, obs_buffer, i, settings.seed + i, settings.keep_latencies, period_ns
            )
        if energy:
            after = energy.mark()
            outcome = dataclasses.replace(outcome, energy=energy.figures(before, after, n_items=1))
        phase.calls_ns += run.calls_ns
        phase.steps_ns += run.steps_ns
        phase.deadline_misses += outcome.deadline_misses or 0
        phase.max_overrun_ns = max(phase.max_overrun_ns, outcome.max_overrun_ns or 0.0)
        emit(outcome)
    if energy:
        phase.energy = energy.figures(first, after, n_items=settings.n_episodes)
    return phase


class Scheduler(Protocol):
    """How the measuring worker shares a job's episodes with its helper workers (quality_workers > 1)."""

    def wait_helpers(self, stage: HelperStage) -> None:
        """Block until every helper is at ``stage``: the device is quiet."""
        ...

    def claim(self) -> int | None:
        """The next episode index to run, or None when every episode is taken."""
        ...


class SoloScheduler:
    """No helpers: the measuring worker claims every episode itself (quality_workers > 1 in one process,
    which is how tests and tools exercise the parallel path without an agent)."""

    def __init__(self, n_episodes: int) -> None:
        self._next = 0
        self._n = n_episodes

    def wait_helpers(self, stage: HelperStage) -> None:
        return None

    def claim(self) -> int | None:
        if self._next >= self._n:
            return None
        self._next += 1
        return self._next - 1


def run_returns_episodes(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    settings: MeasurementSettings,
    scheduler: Scheduler,
    emit: Emit,
    worker: int = 0,
) -> None:
    """Claim episodes until none is left, run each for its return, emit each as it ends."""
    while (index := scheduler.claim()) is not None:
        emit(run_returns_episode(env, infer, obs_buffer, index, settings.seed + index, worker))
