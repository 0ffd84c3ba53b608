"""What the host believes of an agent: every value is checked before anything of it is stored.

An agent is a program on another machine, reached over a network; a bug, a mismatched build or a
hostile peer can send anything the wire contract can carry: NaN or infinite returns, episode
indices outside the job, the same index twice with different figures, more episodes than asked,
megabytes of text where a hostname belongs. Stored, such values become the report's figures
("inf ± nan"). So the host checks each message against the job it asked for and against plain
bounds, and a violation fails the job with "the agent sent …": nothing of that job is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from device_agent.contract.proto import agent_pb2 as pb
from host.errors import DrlcError

MAX_TEXT = 4096
"""Longest string the host stores from an agent (a failure message, a hostname, a version)."""
MAX_REPEATED = 10_000_000
"""Most entries of one repeated field (per-call latencies of the longest episode the agent allows, and then some)."""
MAX_EPISODE_STEPS = 1_000_000
"""An episode longer than this is not one the agent could have run (its own limit is 100 000 steps)."""

_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


class AgentSentInvalidData(DrlcError):
    """An agent sent a value that cannot be true; the job it belongs to is failed and nothing of it stored."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the agent sent {what}; nothing of this job was stored")


def check_message(message: Message, where: str) -> None:
    """No infinity anywhere; no NaN where a figure was measured; every string and repeated field bounded,
    recursively. (The agent writes NaN for what is not defined - the statistics of an empty sample, the
    interval of a single value - so NaN is refused only in measured figures and non-empty statistics.)"""
    nan_ok = not _measured(message)
    for desc, value in message.ListFields():
        name = f"{where}.{desc.name}"
        repeated = desc.is_repeated
        values = value if repeated else [value]
        if repeated and len(values) > MAX_REPEATED:
            raise AgentSentInvalidData(f"{len(values)} entries in {name}")
        if desc.type == FieldDescriptor.TYPE_MESSAGE:
            if desc.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    _check_scalar(k, f"{name}[key]")
                    if isinstance(v, Message):
                        check_message(v, f"{name}[{str(k)[:40]!r}]")
                    else:
                        _check_scalar(v, f"{name}[{str(k)[:40]!r}]")
                continue
            for item in values:
                check_message(item, name)
        elif desc.type in _FLOATS:
            bad = next((v for v in values if math.isinf(v) or (math.isnan(v) and not nan_ok)), None)
            if bad is not None:
                raise AgentSentInvalidData(f"a non-finite number ({bad}) in {name}")
        elif desc.type == FieldDescriptor.TYPE_STRING:
            for item in values:
                _check_scalar(item, name)


def _measured(message: Message) -> bool:
    """Whether every float of this message is a measured figure (so NaN cannot stand for "not defined")."""
    if isinstance(message, pb.EpisodeResult):
        return True
    if isinstance(message, pb.LatencyStats):
        return message.count > 0
    return False


def _check_scalar(value: object, name: str) -> None:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise AgentSentInvalidData(f"{len(value)} characters in {name} (at most {MAX_TEXT})")
    if isinstance(value, float) and not math.isfinite(value):
        raise AgentSentInvalidData(f"a non-finite number ({value}) in {name}")


def check_device_info(info: pb.DeviceInfo) -> None:
    check_message(info, "device info")
    if not info.fingerprint:
        raise AgentSentInvalidData("device info without a fingerprint")


@dataclass
class JobCheck:
    """The checks for one job's events, against what the host asked for."""

    request: pb.ProfileRequest
    seen: dict[int, bytes] = field(default_factory=dict)
    """Episode index -> the bytes first received for it (a replayed stream sends the same ones again)."""

    @property
    def n_episodes(self) -> int:
        return self.request.settings.n_episodes

    @property
    def latency_only(self) -> bool:
        """A later round's job: an agent that knows the setting runs no episode, an older one runs them all."""
        settings = self.request.settings
        return settings.HasField("latency_only") and settings.latency_only

    def episode(self, episode: pb.EpisodeResult) -> bool:
        """Check one episode; False when it is a replay of one already received (store nothing)."""
        check_message(episode, f"episode {episode.index}")
        if not 0 <= episode.index < self.n_episodes:
            raise AgentSentInvalidData(
                f"episode index {episode.index} for a job of {self.n_episodes} episodes (0..{self.n_episodes - 1})"
            )
        expected_seed = self.request.settings.seed + episode.index
        if episode.seed != expected_seed:
            raise AgentSentInvalidData(
                f"episode {episode.index} with seed {episode.seed}; the job resets it with {expected_seed}"
            )
        limit = self.request.settings.max_steps_per_episode or MAX_EPISODE_STEPS
        if not 1 <= episode.length <= limit:
            raise AgentSentInvalidData(f"episode {episode.index} of length {episode.length} (1..{limit})")
        if len(episode.inference_ns) > episode.length or any(ns < 0 for ns in episode.inference_ns):
            raise AgentSentInvalidData(
                f"episode {episode.index} with {len(episode.inference_ns)} call latencies for {episode.length} "
                "steps, or a negative one"
            )
        if episode.wall_s < 0:
            raise AgentSentInvalidData(
                f"episode {episode.index} with a negative wall time ({episode.wall_s} s)"
            )
        data = episode.SerializeToString(deterministic=True)
        first = self.seen.get(episode.index)
        if first is not None:
            if first != data:
                raise AgentSentInvalidData(f"episode {episode.index} twice, with different figures")
            return False
        self.seen[episode.index] = data
        return True

    def summary(self, summary: pb.JobSummary) -> None:
        check_message(summary, "the summary")
        if self.seen and not math.isfinite(summary.return_mean):
            raise AgentSentInvalidData(f"a non-finite mean return ({summary.return_mean}) in the summary")
        expected = (0, self.n_episodes) if self.latency_only else (self.n_episodes,)
        if len(self.seen) not in expected or summary.n_episodes != len(self.seen):
            raise AgentSentInvalidData(
                f"a summary of {summary.n_episodes} episodes after {len(self.seen)} episode results "
                f"for a job of {self.n_episodes}"
            )
        if summary.HasField("paired"):
            self.paired(summary)

    def paired(self, summary: pb.JobSummary) -> None:
        """A paired phase's reference is the model asked for, timed as often as the job's own model."""
        asked = self.request.settings.paired_with_sha256
        got = summary.paired
        if got.reference_sha256 != asked:
            raise AgentSentInvalidData(
                f"a paired latency phase against {got.reference_sha256[:12] or 'no model'} "
                f"when {asked[:12] or 'none'} was asked for"
            )
        if got.reference.count != summary.inference.count or got.block_calls < 1:
            raise AgentSentInvalidData(
                f"a paired latency phase of {got.reference.count} reference and {summary.inference.count} own "
                f"calls in blocks of {got.block_calls}"
            )

    def failure(self, failed: pb.JobFailed) -> str:
        """The failure as one bounded line of plain text (never markup)."""
        error_type = failed.error_type[:80] or "JobFailed"
        message = " ".join(failed.message.split())
        if len(message) > MAX_TEXT:
            message = message[:MAX_TEXT] + f"… ({len(failed.message)} characters)"
        return f"{error_type}: {message}"
