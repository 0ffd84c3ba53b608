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

ROUNDS_DEFAULT = 9
"""Rounds of a deploy: round 0 runs the episodes; each later round is a fresh worker process per model, and a
variant's later rounds time it against its baseline in that same process (paired latency, blocks alternating
ABBA), so a variant's latency verdict rests on eight paired rounds, and on up to twenty when it is unsettled
after them (MAX_ROUNDS_DEFAULT). Eight, not five: the trimmed CI of the effect (host.decision.paired_ratio)
narrows about 2.2x (t = 2.57 on 5 degrees of freedom instead of 4.30 on 2: one round of eight trimmed at each
end, one of five), and eight, not ten (the version before): with ten, one round more at each end is trimmed
and the degrees of freedom stay 5, so two rounds more buy only about 12 % in width, while the variants that
need the width get it from the extra rounds. Simulated at this VM's noise, eight + up to twenty for the
unsettled agree between two deploys about as often as ten + up to twenty, for 10 % fewer jobs; measured,
four deploys of SAC HalfCheetah's sweep agreed on every verdict, and tools/bench_rounds.py puts the cost at
1.41x the single pass (goal <= 1.5x)."""
MAX_ROUNDS_DEFAULT = 21
"""The most rounds a variant gets when its latency verdict is unsettled after the ``rounds`` (its CI crosses
the ±5 % noise threshold, or it is undecided: host.decision.unsettled): the deploy adds paired rounds for those
variants alone, MORE_ROUNDS_STEP at a time, until settled or at this many (twenty paired rounds). Why: the
verdicts that differed between two deploys of SAC HalfCheetah's sweep were those whose effect sits within a
CI of the threshold (L1/L2 10 % at 0.945, PTDQ with an fp32 first layer at 1.03); more rounds narrow that
band as 1/sqrt(n) where it matters, and cost nothing for the variants already clear. Simulated with this
VM's measured round noise (tests/host/report/test_verdicts.py), up to twenty paired rounds for the unsettled
ones took two deploys agreeing on all but at most one variant from 46 % to 86 % of pairs (about 23 extra rounds
a deploy); forty, 91 %: the rest is effects on the threshold itself, which no number of rounds settles. ``rounds`` or less: off."""
MORE_ROUNDS_STEP = 5
"""Extra rounds run before the deploy judges the unsettled variants again (each judgement reads the session)."""
MAX_SPOILED_RETRIES_DEFAULT = 2
"""How often a round whose timing the validity rule spoiled is run again before it is kept, flagged."""
ROUND_LATENCY_CALLS = 200
"""Timed in-loop calls of a later (latency-only) round, after the usual warm-up. The rounds' worth is in their
number (each a fresh process, a paired sample), not their length. Measured on SAC HalfCheetah's baseline
timed against itself in fresh processes: the spread of a round's paired log ratio was 0.81 % with 300 calls
per model and 0.71 % with 1200, i.e. about 0.67 % from the process and (0.78 %)^2 * 100 / calls from the
calls; 200 calls give 0.87 %, which for the same time buys as narrow a CI as 300 (a round costs about 0.1 s,
13 ms of it per 100 calls of both models) and keeps a sweep's deploy within 1.5x a single pass with the
unsettled variants' extra rounds (tools/bench_rounds.py). Two calls lie beyond a round's p99."""
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
