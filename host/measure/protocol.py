"""The measurement protocol's defaults, declared once (host.measure.deploy runs the protocol; study files and the
CLI default to these). README, "Measurement protocol", says what they mean."""

from __future__ import annotations

from device_agent.contract.settings import MeasurementSettings

N_EPISODES_DEFAULT: int = MeasurementSettings.n_episodes
"""Seeded episodes per model when neither the command line nor the target's profile says (``--episodes auto``
starts there too). Declared once, in the agent's settings type; the host always sends the number it resolved
(``host.measure.deploy.episodes_for``), so what counts as "already measured" never depends on an agent's default."""
WARMUP_CALLS_DEFAULT: int = MeasurementSettings.warmup_calls
"""Uncounted inference calls before timing when neither the command line (or study file) nor the profile says."""
MAX_STEPS_PER_EPISODE_DEFAULT: int = MeasurementSettings.max_steps_per_episode
"""Steps per episode when neither the command line nor the profile says: 0, the env's own time limit."""

ROUNDS_DEFAULT = 11
"""Rounds of a deploy: round 0 runs the episodes; each later round is a fresh worker process per model, and a
variant's later rounds time it against its baseline in that same process (paired latency, blocks alternating
ABBA), so a variant's latency verdict rests on ten paired rounds. Ten, not five: the trimmed CI of the effect
(host.decision.paired_ratio) narrows about 2.4x (twice the rounds, and t = 2.57 on 5 degrees of freedom instead
of 4.30 on 2: two rounds of ten trimmed at each end, one of five), and so does the band around the noise
threshold in which a verdict can differ from one deploy to the next. pyperf runs 20 processes; drlc's later rounds are cheap latency-only
jobs (tools/bench_rounds.py: 1.43x the single pass on SAC HalfCheetah's sweep, 1.27x with five)."""
MAX_SPOILED_RETRIES_DEFAULT = 2
"""How often a round whose timing the validity rule spoiled is run again before it is kept, flagged."""
ROUND_LATENCY_CALLS = 300
"""Timed in-loop calls of a later (latency-only) round, after the usual warm-up. The rounds' worth is in their
number (each a fresh process, a paired sample), not their length: a round's p50 from 300 calls varies far less
than p50s of different processes do. 300 keeps a sweep's deploy near 1.5x a single pass even where round 0's
episodes run in parallel (tools/bench_rounds.py); three calls lie beyond a round's p99, twelve over four rounds."""
EXTRA_ROUND_BASE = 1000
"""Round number of the first job of extra seeded episodes (``--episodes auto``); rounds from here on add returns
and never a latency sample (host.report leaves them out of every timing figure)."""

LATER_ROUNDS_CANDIDATES = "candidates"
LATER_ROUNDS_ALL = "all"
LATER_ROUNDS_MODES: tuple[str, ...] = (LATER_ROUNDS_CANDIDATES, LATER_ROUNDS_ALL)
"""Which models a deploy's later (latency) rounds time: ``candidates`` — every baseline and every variant that
can still be recommended (its return not shown to fall short after round 0); ``all`` — every model."""
LATER_ROUNDS_DEFAULT = LATER_ROUNDS_CANDIDATES
"""A variant shown to fall short on return can never be the answer, and on a quiet device a later round's
fresh worker costs more than its calls (tools/bench_rounds.py): its latency stays round 0's single figure.
Studies that want every variant's latency verdict set ``later_rounds = "all"``."""
