"""The one step loop: every phase that steps the env with the policy runs it.

One step is: copy the observation into the bound input buffer, read the clock, call the policy, read the clock,
check the action (finite, right shape), step the env with it, read the clock, record both durations. Between the
two clock reads around the call there is nothing else, whatever the options:

- ``calls``: None runs one episode, to its end (the episodes); a number runs that many calls over throw-away
  episodes reset with seed, seed + 1, ... as they end (the warm-up, the latency phase, the floor, a recording);
- ``period_ns``: pace the loop as a control loop, one tick per control period, counting ticks whose work
  overran it (control-rate mode);
- ``partner``: alternate the job's model with a second one in blocks of ``block`` calls ordered ABBA (a paired
  latency phase); each env step takes the action of the call just before it.

The options are read once per step outside the timed call; the loop keeps its clock, its appends and its
policy in locals, as the measurements in docs/performance.md ask.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from device_agent.contract.errors import WorkerError
from device_agent.contract.settings import PAIRED_BLOCK_CALLS
from device_agent.measure.session import Policy


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a timed region, as ``timeit`` does: a collection (0.1-0.2 ms,
    a few per thousand steps) landing inside an inference call would be reported as the policy's latency.
    What the region leaves behind is collected after it, in untimed time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_action(action: np.ndarray, expected: tuple[int, ...]) -> None:
    """Say what is wrong with an action the loop's fast check refused."""
    if action.shape != expected:
        raise WorkerError(
            f"the model returned actions of shape {list(action.shape)}, expected {list(expected)}"
        )
    if not np.isfinite(action).all():
        raise WorkerError("the model returned a non-finite action (NaN or inf)")


@dataclasses.dataclass
class Stepped:
    """What one run of the step loop saw: raw times (ns), the reward summed in step order, pacing totals."""

    seed: int
    """The first episode's seed; later ones (``calls`` runs) are seed + 1, seed + 2, ..."""
    calls_ns: list[int]
    """The job's own model's calls."""
    steps_ns: list[int]
    """Every env step, after either model's call."""
    partner_calls_ns: list[int]
    """A paired run's other model's calls; empty otherwise."""
    total_reward: float
    terminated: bool
    """The last step ended its episode by termination (not by truncation)."""
    wall_s: float
    """The loop alone, before any statistic is computed."""
    deadline_misses: int = 0
    max_overrun_ns: float = 0.0


def abba(calls: int, block: int) -> list[bool]:
    """Whose turn each step of a paired run is (True: the partner's): blocks of ``block`` calls ordered ABBA
    (own, partner, partner, own, ...), a block cut short where a model already has its ``calls``, so each model
    gets exactly ``calls`` whatever the block size divides."""
    turns: list[bool] = []
    have = {False: 0, True: 0}
    k = 0
    while have[False] < calls or have[True] < calls:
        whose = k % 4 in (1, 2)
        take = min(block, calls - have[whose])
        turns += [whose] * take
        have[whose] += take
        k += 1
    return turns


def step_loop(
    env: Any,
    infer: Policy,
    obs_buffer: np.ndarray,
    seed: int,
    calls: int | None = None,
    period_ns: int | None = None,
    partner: Policy | None = None,
    block: int = PAIRED_BLOCK_CALLS,
    sleep: Callable[[float], None] = time.sleep,
) -> Stepped:
    """Step ``env`` with ``infer`` from ``env.reset(seed=seed)``; see the module's docstring for the options.

    Pacing: tick k is due at start + k x period. Its work (observation copy, inference, env step) must finish
    before tick k + 1 is due, or it is a deadline miss; the loop then starts the next tick at once and keeps the
    period from there (no burst of catch-up ticks). Between ticks it sleeps, as a robot's timer would, so the
    call meets whatever caches and clocks a spaced-out call meets. A new episode restarts the ticks.

    Pairing: ``calls`` calls of each model, so 2 x ``calls`` steps; whatever changes over the run (the clock,
    another tenant of the CPU) falls on both alike.
    """
    clock = time.perf_counter_ns
    isfinite = math.isfinite
    own_ns: list[int] = []
    partner_ns: list[int] = []
    steps_ns: list[int] = []
    record_own, record_partner, record_step = own_ns.append, partner_ns.append, steps_ns.append
    call, record_call = infer, record_own
    expected = (1, *env.action_space.shape)
    one_episode = calls is None
    limit = sys.maxsize if calls is None else calls if partner is None else 2 * calls
    partner_turn = abba(calls or 0, block) if partner is not None else []
    total = 0.0
    misses, worst = 0, 0
    episode = i = 0
    terminated = False
    wall0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    tick = clock()
    while i < limit:
        if partner is not None:  # ABBA, each model exactly ``calls`` times (see abba)
            call, record_call = (partner, record_partner) if partner_turn[i] else (infer, record_own)
        obs_buffer[0] = obs
        t0 = clock()
        action = call()
        t1 = clock()
        row = action[0]
        # sum of a short Python list: ~0.5 µs, where numpy's reductions cost ~2 µs per step
        if action.shape != expected or not isfinite(sum(row.tolist())):
            check_action(action, expected)
        obs, reward, terminated, truncated, _ = env.step(row)
        t2 = clock()
        record_call(t1 - t0)
        record_step(t2 - t1)
        total += float(reward)
        i += 1
        if period_ns is not None:
            due = tick + period_ns
            if t2 > due:
                misses += 1
                worst = max(worst, t2 - due)
                tick = t2
            else:
                sleep((due - t2) / 1e9)
                tick = due
        if terminated or truncated:
            if one_episode:
                break
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            tick = clock()
    wall = time.perf_counter() - wall0
    return Stepped(seed, own_ns, steps_ns, partner_ns, total, bool(terminated), wall, misses, float(worst))
