"""The measurement protocol's defaults, declared once (host.deploy runs the protocol; study files and the
CLI default to these). README, "Measurement protocol", says what they mean."""

from __future__ import annotations

ROUNDS_DEFAULT = 5
"""Rounds of a deploy: five paired latency samples per model, one per fresh worker process (pyperf runs 20
processes; drlc's later rounds are cheap latency-only jobs, tools/bench_rounds.py measures what they cost)."""
MAX_SPOILED_RETRIES_DEFAULT = 2
"""How often a round whose timing the validity rule spoiled is run again before it is kept, flagged."""
ROUND_LATENCY_CALLS = 500
"""Timed in-loop calls of a later (latency-only) round. Half a latency phase: the rounds' worth is in their
number (each a fresh process, a paired sample), and a sweep's deploy stays within 1.5x of a single pass
(tools/bench_rounds.py). 500 calls put five beyond a round's p99; over the later rounds, twenty."""
