"""Job records on disk: a small head rewritten atomically, and the episodes appended, never rewritten.

A job with ``keep_latencies`` and long episodes carries megabytes per episode; rewriting the whole
record on every episode wrote tens of GiB for a one-hour job. The head (``<id>.pb``: the request,
state, started event, summary or failure, with no episodes) changes a handful of times per job and
is replaced atomically (temp file, fsync, rename). Each episode is appended to ``<id>.episodes`` as
a 4-byte little-endian length and the EpisodeResult bytes, then flushed to disk; a power cut can
only tear the last entry, which reading drops.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import DecodeError

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.store.files import write_atomically

LENGTH = struct.Struct("<I")


class DamagedRecord(Exception):
    """A record whose head cannot be parsed."""


class RecordFiles:
    """The files of every job record in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def head_path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.pb"

    def episodes_path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.episodes"

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.pb"))

    def clean_temporary(self) -> None:
        for tmp in self.folder.glob(".job-*"):
            tmp.unlink(missing_ok=True)

    def save_head(self, record: pb.JobRecord) -> None:
        head = pb.JobRecord()
        head.CopyFrom(record)
        head.ClearField("episodes")
        write_atomically(self.head_path(record.job_id), head.SerializeToString(), prefix=".job-")

    def start_episodes(self, job_id: str) -> None:
        """A new job: no episodes yet (a stale file of a pruned job with the same id is dropped)."""
        self.episodes_path(job_id).unlink(missing_ok=True)

    def append_episode(self, job_id: str, episode: pb.EpisodeResult) -> None:
        data = episode.SerializeToString()
        with self.episodes_path(job_id).open("ab") as fh:
            fh.write(LENGTH.pack(len(data)) + data)
            fh.flush()
            os.fsync(fh.fileno())

    def _episodes(self, job_id: str) -> Iterator[pb.EpisodeResult]:
        path = self.episodes_path(job_id)
        if not path.is_file():
            return
        with path.open("rb") as fh:
            while len(prefix := fh.read(LENGTH.size)) == LENGTH.size:
                (size,) = LENGTH.unpack(prefix)
                data = fh.read(size)
                if len(data) < size:
                    return  # torn by a power cut mid-append: the episode never finished being written
                try:
                    yield pb.EpisodeResult.FromString(data)
                except DecodeError:
                    return

    def load(self, job_id: str) -> pb.JobRecord | None:
        """The whole record (head and episodes); None when there is none; DamagedRecord when its head is."""
        path = self.head_path(job_id)
        if not path.is_file():
            return None
        try:
            record = pb.JobRecord.FromString(path.read_bytes())
        except DecodeError as exc:
            raise DamagedRecord(str(exc)) from exc
        if not record.episodes:  # (a record written whole by an older agent keeps its own episodes)
            record.episodes.extend(self._episodes(job_id))
        return record

    def set_aside(self, job_id: str) -> Path:
        damaged = self.folder / "damaged"
        damaged.mkdir(exist_ok=True)
        for path in (self.head_path(job_id), self.episodes_path(job_id)):
            if path.exists():
                path.replace(damaged / path.name)
        return damaged

    def remove(self, job_id: str) -> None:
        self.head_path(job_id).unlink(missing_ok=True)
        self.episodes_path(job_id).unlink(missing_ok=True)
