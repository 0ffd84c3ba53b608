"""What `drlc-host deploy` prints about the rounds it added: which variants, how many rounds, which are still
unsettled and why, by model name."""

from __future__ import annotations

from host.cli.deploy_cmd import more_rounds_line
from host.measure.deploy import DeployOutcome


def test_more_rounds_line_names_the_variants_their_rounds_and_what_is_still_unsettled() -> None:
    names = {"a" * 64: "sac-l1-10", "b" * 64: "sac-l2-10"}
    outcome = DeployOutcome("local", "f" * 16)
    assert more_rounds_line(outcome, names) is None  # nothing added, nothing said
    outcome.more_rounds = {"a" * 64: 14, "b" * 64: 21}
    line = more_rounds_line(outcome, names)
    assert line == "more rounds for 2 unsettled variant(s) (rounds in all): sac-l1-10 (14), sac-l2-10 (21)"
    outcome.unsettled = {"b" * 64: "CI crosses -5% after 20 paired rounds", "c" * 64: "undecided"}
    line = more_rounds_line(outcome, names)
    assert line is not None and line.endswith(
        "; still unsettled at --max-rounds: sac-l2-10: CI crosses -5% after 20 paired rounds, cccccccccccc: undecided"
    )
