"""The one step loop keeps its timed region bare, and its options do what they say."""

from __future__ import annotations

import ast
import re
import inspect
import textwrap

import gymnasium as gym
import numpy as np

from device_agent.measure import loop
from device_agent.measure.loop import step_loop


def test_nothing_but_the_call_sits_between_the_two_clock_reads() -> None:
    """Whatever options the loop grows, the timed call stays `t0 = clock(); action = call(); t1 = clock()`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(loop.step_loop)))
    bodies = [n.body for n in ast.walk(tree) if isinstance(n, ast.While)]
    assert len(bodies) == 1, "one loop"
    body = [ast.unparse(s) for s in bodies[0]]
    start = body.index("t0 = clock()")
    assert body[start : start + 3] == ["t0 = clock()", "action = call()", "t1 = clock()"]
    reads = [line for line in body if re.fullmatch(r"\w+ = clock\(\)", line)]
    assert reads == ["t0 = clock()", "t1 = clock()", "t2 = clock()"]  # nothing else reads the clock per step


def test_one_episode_or_a_number_of_calls_over_reseeded_episodes() -> None:
    env = gym.make("InvertedPendulum-v5", max_episode_steps=7)
    obs_buffer = np.zeros((1, 4), dtype=np.float32)
    action = np.zeros((1, 1), dtype=np.float32)
    one = step_loop(env, lambda: action, obs_buffer, seed=3)
    assert len(one.calls_ns) == len(one.steps_ns) == 7 and one.partner_calls_ns == []
    many = step_loop(env, lambda: action, obs_buffer, seed=3, calls=20)
    assert len(many.calls_ns) == 20 and many.seed == 3
    again = step_loop(env, lambda: action, obs_buffer, seed=3, calls=20)
    assert again.total_reward == many.total_reward  # episodes reset with seed, seed + 1, ...
    env.close()


def test_pacing_sleeps_to_each_tick_and_counts_overruns() -> None:
    env = gym.make("InvertedPendulum-v5", max_episode_steps=5)
    obs_buffer = np.zeros((1, 4), dtype=np.float32)
    action = np.zeros((1, 1), dtype=np.float32)
    slept: list[float] = []
    quick = step_loop(env, lambda: action, obs_buffer, seed=0, period_ns=10**12, sleep=slept.append)
    # the sleep here returns at once, so tick k is still due k periods after the start
    assert quick.deadline_misses == 0 and len(slept) == 5
    assert all(1000.0 * k < s <= 1000.0 * (k + 1) for k, s in enumerate(slept))
    slept.clear()
    late = step_loop(env, lambda: action, obs_buffer, seed=0, period_ns=1, sleep=slept.append)
    assert late.deadline_misses == 5 and late.max_overrun_ns > 0 and slept == []
    env.close()


def test_a_paired_run_gives_each_model_exactly_its_calls_whatever_the_block() -> None:
    """40 calls each in blocks of 25 (a later round's calls need not be a multiple of two blocks): ABBA cut
    short where a model has its calls, never 50 for one and 30 for the other."""
    from device_agent.measure.loop import abba

    for calls, block in [(40, 25), (300, 25), (7, 3), (1, 25), (0, 25)]:
        turns = abba(calls, block)
        assert turns.count(True) == turns.count(False) == calls, (calls, block)
    assert abba(4, 2) == [False, False, True, True, True, True, False, False]
    assert abba(3, 2) == [False, False, True, True, True, False]
