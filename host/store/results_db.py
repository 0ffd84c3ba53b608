"""The host's results database (SQLite): models, targets, jobs and their episodes, training runs and
their curves. All of drlc's SQL lives here.

Rows are keyed by model sha256, target fingerprint and job id. Each write is one
transaction, so a crash mid-deploy leaves a consistent database, and episodes use
``INSERT OR IGNORE`` on (job_id, index) so a replayed stream never stores a result twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from device_agent.contract.proto import agent_pb2 as pb
from device_agent.contract.manifest import ArtifactManifest

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    sha256        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    algo          TEXT NOT NULL,
    env_id        TEXT NOT NULL,
    method        TEXT NOT NULL,
    method_params TEXT NOT NULL,
    parent_sha256 TEXT,
    path          TEXT NOT NULL,
    file_bytes    INTEGER NOT NULL,
    n_params      INTEGER NOT NULL,
    manifest      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    checkpoint    TEXT,
    recipe_key    TEXT
);
CREATE TABLE IF NOT EXISTS targets (
    fingerprint TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    device_info TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id             TEXT PRIMARY KEY,
    model_sha256       TEXT NOT NULL REFERENCES models(sha256),
    target             TEXT NOT NULL,
    target_fingerprint TEXT NOT NULL,
    settings_key       TEXT NOT NULL,
    request            TEXT NOT NULL,
    state              TEXT NOT NULL,
    summary            TEXT,
    error              TEXT,
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    session_id         TEXT,
    round              INTEGER,
    spoiled            INTEGER NOT NULL DEFAULT 0,
    validity           TEXT,
    op_profile         TEXT
);
CREATE INDEX IF NOT EXISTS models_by_recipe ON models(recipe_key);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs(session_id, model_sha256, round);
CREATE TABLE IF NOT EXISTS sessions (
    session_id         TEXT PRIMARY KEY,
    target             TEXT NOT NULL,
    target_fingerprint TEXT NOT NULL,
    settings_key       TEXT NOT NULL,
    rounds             INTEGER NOT NULL,
    order_seed         INTEGER NOT NULL,
    orders             TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_model_target ON jobs(model_sha256, target_fingerprint, settings_key);
CREATE TABLE IF NOT EXISTS episodes (
    job_id           TEXT NOT NULL REFERENCES jobs(job_id),
    idx              INTEGER NOT NULL,
    seed             INTEGER NOT NULL,
    episode_return   REAL NOT NULL,
    length           INTEGER NOT NULL,
    terminated       INTEGER NOT NULL,
    inference_p50_ns REAL,
    inference_p99_ns REAL,
    env_step_mean_ns REAL,
    wall_s           REAL,
    inference_ns     BLOB,
    PRIMARY KEY (job_id, idx)
);
"""

TRAINING_SCHEMA = """
CREATE TABLE IF NOT EXISTS training_runs (
    run_id            TEXT PRIMARY KEY,
    algo              TEXT NOT NULL,
    env_id            TEXT NOT NULL,
    seed              INTEGER NOT NULL,
    config_key        TEXT NOT NULL,
    total_steps       INTEGER NOT NULL,
    steps_done        INTEGER NOT NULL,
    hp_source         TEXT NOT NULL,
    plan              TEXT NOT NULL,
    model_sha256      TEXT,
    checkpoint        TEXT NOT NULL,
    vecnormalize      TEXT,
    final_return_mean REAL,
    final_return_std  REAL,
    final_returns     TEXT,
    wall_s            REAL,
    train_steps_per_s REAL,
    resumed_from_step INTEGER,
    finished_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS training_runs_by_key ON training_runs(config_key);
CREATE TABLE IF NOT EXISTS training_curve (
    run_id      TEXT NOT NULL REFERENCES training_runs(run_id),
    step        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    return_mean REAL NOT NULL,
    return_std  REAL NOT NULL,
    episodes    INTEGER NOT NULL,
    wall_s      REAL NOT NULL,
    PRIMARY KEY (run_id, kind, step)
);
"""
"""Training runs (``drlc-host train``, a study's trained baselines) and their curves: one row per finished run,
keyed by the run folder's name; ``plan`` is the run's whole plan as JSON (run.json)."""

TRAINING_RUN_COLUMNS = (
    "run_id",
    "algo",
    "env_id",
    "seed",
    "config_key",
    "total_steps",
    "steps_done",
    "hp_source",
    "plan",
    "model_sha256",
    "checkpoint",
    "vecnormalize",
    "final_return_mean",
    "final_return_std",
    "final_returns",
    "wall_s",
    "train_steps_per_s",
    "resumed_from_step",
    "finished_at",
)

JOB_COLUMNS_ADDED = (
    ("session_id", "TEXT"),
    ("round", "INTEGER"),
    ("spoiled", "INTEGER NOT NULL DEFAULT 0"),
    ("validity", "TEXT"),
    ("op_profile", "TEXT"),
)
"""jobs columns of the measurement protocol (README "Measurement protocol"): session_id is one deploy
invocation (every round of every model shares it), round is 0-based within it, spoiled = 1 when the
validity rule flagged the job's timing, validity the JSON of what was checked. Jobs from before the
protocol have NULL session and round. op_profile: the JSON of the job's operator profile (agent.proto OpProfile:
where the time of a call goes, by op type and by node), kept apart from the summary so a report reads it alone;
NULL when the job ran without one."""

STATE_NAMES = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelRow:
    sha256: str
    name: str
    algo: str
    env_id: str
    method: str
    method_params: dict[str, Any]
    parent_sha256: str | None
    path: Path
    file_bytes: int
    n_params: int
    checkpoint: Path | None = None

    @property
    def short(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class JobRow:
    job_id: str
    model_sha256: str
    target: str
    target_fingerprint: str
    settings_key: str
    state: str
    summary: dict[str, Any] | None
    error: str | None
    session_id: str | None = None
    round: int | None = None
    spoiled: bool = False
    validity: dict[str, Any] | None = None


@dataclass(frozen=True)
class SessionRow:
    """One deploy invocation's plan: the shuffled order of the models in every round, and its seed."""

    session_id: str
    target: str
    target_fingerprint: str
    settings_key: str
    rounds: int
    order_seed: int
    orders: list[list[str]]
    """orders[r]: the models' sha256 in the order round r runs them."""

    @property
    def models(self) -> set[str]:
        return set(self.orders[0]) if self.orders else set()


class ResultsDB:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.conn:
            self._migrate()
            self.conn.executescript(SCHEMA + TRAINING_SCHEMA)

    def _migrate(self) -> None:
        """Columns added after a database was first made (SQLite cannot add them in CREATE IF NOT EXISTS)."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(models)")}
        if columns:
            for name in ("checkpoint", "recipe_key"):
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE models ADD COLUMN {name} TEXT")
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(jobs)")}
        if columns:
            for name, decl in JOB_COLUMNS_ADDED:
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.conn:
            yield self.conn

    # ------------------------------------------------------------------ models
    def add_model(
        self,
        sha256: str,
        path: Path,
        manifest: ArtifactManifest,
        checkpoint: Path | None = None,
        recipe_key: str | None = None,
    ) -> ModelRow:
        """Register an artifact. ``checkpoint``: the SB3 zip it came from (QAT's rl mode needs it);
        ``recipe_key``: hash of (parent, method, requested config), so a sweep can skip what it made."""
        with self.transaction() as db:
            db.execute(
                """INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(sha256) DO UPDATE SET path=excluded.path,
                   checkpoint=COALESCE(excluded.checkpoint, models.checkpoint),
                   recipe_key=COALESCE(excluded.recipe_key, models.recipe_key)""",
                (
                    sha256,
                    manifest.name,
                    manifest.algo,
                    manifest.env_id,
                    manifest.method,
                    json.dumps(manifest.method_params, sort_keys=True),
                    manifest.parent_sha256,
                    str(path),
                    path.stat().st_size,
                    manifest.n_params,
                    manifest.to_json(),
                    now(),
                    str(checkpoint) if checkpoint else None,
                    recipe_key,
                ),
            )
        model = self.model(sha256)
        assert model is not None
        return model

    @staticmethod
    def _model(row: sqlite3.Row) -> ModelRow:
        return ModelRow(
            sha256=row["sha256"],
            name=row["name"],
            algo=row["algo"],
            env_id=row["env_id"],
            method=row["method"],
            method_params=json.loads(row["method_params"]),
            parent_sha256=row["parent_sha256"],
            path=Path(row["path"]),
            file_bytes=row["file_bytes"],
            n_params=row["n_params"],
            checkpoint=Path(row["checkpoint"]) if row["checkpoint"] else None,
        )

    def model_by_recipe(self, recipe_key: str) -> ModelRow | None:
        row = self.conn.execute("SELECT * FROM models WHERE recipe_key = ?", (recipe_key,)).fetchone()
        return self._model(row) if row else None

    def manifest(self, sha256: str) -> ArtifactManifest | None:
        row = self.conn.execute("SELECT manifest FROM models WHERE sha256 = ?", (sha256,)).fetchone()
        return ArtifactManifest.from_json(row[0]) if row else None

    def variants_of(self, parent_sha256: str) -> list[ModelRow]:
        rows = self.conn.execute(
            "SELECT * FROM models WHERE parent_sha256 = ? ORDER BY created_at, name", (parent_sha256,)
        )
        return [self._model(r) for r in rows]

    def model(self, sha256: str) -> ModelRow | None:
        row = self.conn.execute("SELECT * FROM models WHERE sha256 = ?", (sha256,)).fetchone()
        return self._model(row) if row else None

    def models(self) -> list[ModelRow]:
        return [self._model(r) for r in self.conn.execute("SELECT * FROM models ORDER BY created_at, name")]

    # ------------------------------------------------------------------ targets
    def upsert_target(self, name: str, info: pb.DeviceInfo) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT INTO targets VALUES (?,?,?,?)
                   ON CONFLICT(fingerprint) DO UPDATE SET name=excluded.name, device_info=excluded.device_info,
                   updated_at=excluded.updated_at""",
                (
                    info.fingerprint,
                    name,
                    json_format.MessageToJson(info, indent=None, preserving_proto_field_name=True),
                    now(),
                ),
            )

    def device_info(self, fingerprint: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT device_info FROM targets WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------------ jobs
    def add_job(
        self,
        job_id: str,
        model_sha256: str,
        target: str,
        fingerprint: str,
        settings_key: str,
        request: pb.ProfileRequest,
        session_id: str | None = None,
        round: int | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, model_sha256, target, target_fingerprint, settings_key, request,"
                " state, created_at, session_id, round) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    model_sha256,
                    target,
                    fingerprint,
                    settings_key,
                    json_format.MessageToJson(request, indent=None, preserving_proto_field_name=True),
                    "queued",
                    now(),
                    session_id,
                    round,
                ),
            )

    def set_validity(self, job_id: str, validity: dict[str, Any] | None, spoiled: bool) -> None:
        """What the validity checks saw over the job's timed window, and whether they spoil its timing."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET validity=?, spoiled=? WHERE job_id=?",
                (None if validity is None else json.dumps(validity, sort_keys=True), int(spoiled), job_id),
            )

    # ------------------------------------------------------------------ sessions
    def add_session(self, session: SessionRow) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                (
                    session.session_id,
                    session.target,
                    session.target_fingerprint,
                    session.settings_key,
                    session.rounds,
                    session.order_seed,
                    json.dumps(session.orders),
                    now(),
                ),
            )

    @staticmethod
    def _session(row: sqlite3.Row) -> SessionRow:
        return SessionRow(
            session_id=row["session_id"],
            target=row["target"],
            target_fingerprint=row["target_fingerprint"],
            settings_key=row["settings_key"],
            rounds=row["rounds"],
            order_seed=row["order_seed"],
            orders=json.loads(row["orders"]),
        )

    def sessions(self, fingerprint: str, settings_key: str) -> list[SessionRow]:
        """Every session on this target with these settings, the latest first."""
        rows = self.conn.execute(
            "SELECT * FROM sessions WHERE target_fingerprint=? AND settings_key=? ORDER BY created_at DESC, rowid DESC",
            (fingerprint, settings_key),
        )
        return [self._session(r) for r in rows]

    def session(self, session_id: str) -> SessionRow | None:
        row = self.conn.execute("SELECT * FROM sessions WHERE session_id=?", (session_id,)).fetchone()
        return self._session(row) if row else None

    def session_jobs(self, session_id: str) -> list[JobRow]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE session_id=? ORDER BY created_at, rowid", (session_id,)
        )
        return [self._job(r) for r in rows]

    def spoiled_counts(self) -> dict[str, tuple[int, int]]:
        """Per target name: (jobs whose timing was spoiled, jobs checked), over every succeeded protocol job."""
        rows = self.conn.execute(
            "SELECT target, SUM(spoiled), COUNT(*) FROM jobs WHERE state='succeeded' AND validity IS NOT NULL"
            " GROUP BY target"
        )
        return {r[0]: (int(r[1] or 0), int(r[2])) for r in rows}

    def spoiled_validity(self, target: str) -> list[dict[str, Any]]:
        """What the validity rule found on each spoiled job of ``target`` (device_agent.validity's JSON)."""
        rows = self.conn.execute(
            "SELECT validity FROM jobs WHERE target=? AND spoiled=1 AND validity IS NOT NULL", (target,)
        )
        return [json.loads(text) for (text,) in rows]

    def jobs_by_id(self, job_ids: list[str]) -> list[sqlite3.Row]:
        """The jobs with these ids (any state), each once, in no particular order; chunked under SQLite's
        limit on bound parameters."""
        out: list[sqlite3.Row] = []
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out += self.conn.execute(f"SELECT * FROM jobs WHERE job_id IN ({marks})", chunk)
        return out

    def succeeded_episodes(
        self, session_id: str | None = None
    ) -> Iterator[tuple[str, int, float, int | None]]:
        """(job id, seed, return, inference p50 in ns) of every episode of every succeeded job (of one session,
        when given), ordered by job and episode index: one query for a whole report."""
        where, args = ("AND j.session_id = ?", (session_id,)) if session_id is not None else ("", ())
        for job_id, seed, ret, p50 in self.conn.execute(
            "SELECT e.job_id, e.seed, e.episode_return, e.inference_p50_ns FROM episodes e"
            f" JOIN jobs j ON j.job_id = e.job_id WHERE j.state = 'succeeded' {where} ORDER BY e.job_id, e.idx",
            args,
        ):
            yield job_id, int(seed), ret, p50

    def session_returns(self, session_id: str) -> dict[str, dict[int, float]]:
        """sha256 -> {seed: return} over every succeeded job of a deploy session, rounds in order (a seed
        repeated in a later round keeps its first return: seeded episodes are deterministic)."""
        out: dict[str, dict[int, float]] = {}
        rows = self.conn.execute(
            "SELECT j.model_sha256, e.seed, e.episode_return FROM episodes e JOIN jobs j ON j.job_id = e.job_id"
            " WHERE j.session_id = ? AND j.state = 'succeeded' ORDER BY j.round, e.idx",
            (session_id,),
        )
        for sha, seed, ret in rows:
            out.setdefault(sha, {}).setdefault(int(seed), float(ret))
        return out

    def manifest_dicts(self) -> dict[str, dict[str, Any]]:
        """Every model's manifest as plain JSON (sha256 -> dict; {} for one that does not parse): cheaper than
        building every :class:`ArtifactManifest` when a report needs a field or two."""
        out: dict[str, dict[str, Any]] = {}
        for sha, text in self.conn.execute("SELECT sha256, manifest FROM models"):
            try:
                manifest = json.loads(text)
            except ValueError:
                manifest = None
            out[sha] = manifest if isinstance(manifest, dict) else {}
        return out

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        return JobRow(
            job_id=row["job_id"],
            model_sha256=row["model_sha256"],
            target=row["target"],
            target_fingerprint=row["target_fingerprint"],
            settings_key=row["settings_key"],
            state=row["state"],
            summary=json.loads(row["summary"]) if row["summary"] else None,
            error=row["error"],
            session_id=row["session_id"],
            round=row["round"],
            spoiled=bool(row["spoiled"]),
            validity=json.loads(row["validity"]) if row["validity"] else None,
        )

    def jobs_for(self, model_sha256: str, fingerprint: str, settings_key: str) -> list[JobRow]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE model_sha256=? AND target_fingerprint=? AND settings_key=? ORDER BY created_at",
            (model_sha256, fingerprint, settings_key),
        )
        return [self._job(r) for r in rows]

    def job(self, job_id: str) -> JobRow | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def add_episode(self, job_id: str, episode: pb.EpisodeResult) -> bool:
        """Store one episode; returns False when it was already stored (a replayed stream)."""
        blob = np.asarray(episode.inference_ns, dtype="<i8").tobytes() if episode.inference_ns else None
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO episodes VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    episode.index,
                    episode.seed,
                    episode.episode_return,
                    episode.length,
                    int(episode.terminated),
                    episode.inference.p50_ns,
                    episode.inference.p99_ns,
                    episode.env_step.mean_ns,
                    episode.wall_s,
                    blob,
                ),
            )
            if cur.rowcount:
                db.execute("UPDATE jobs SET state='running' WHERE job_id=? AND state='queued'", (job_id,))
            return bool(cur.rowcount)

    def finish_job(self, job_id: str, summary: pb.JobSummary) -> None:
        """Store the summary, and its operator profile (if any) in the op_profile column instead of in it."""
        profile = None
        if summary.HasField("op_profile"):
            profile = json_format.MessageToJson(
                summary.op_profile, indent=None, preserving_proto_field_name=True
            )
            summary = pb.JobSummary.FromString(summary.SerializeToString())
            summary.ClearField("op_profile")
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state='succeeded', summary=?, error=NULL, finished_at=?, op_profile=?"
                " WHERE job_id=?",
                (
                    json_format.MessageToJson(summary, indent=None, preserving_proto_field_name=True),
                    now(),
                    profile,
                    job_id,
                ),
            )

    def op_profile(self, job_id: str) -> dict[str, Any] | None:
        """The job's operator profile (agent.proto OpProfile as JSON), or None when it ran without one."""
        row = self.conn.execute("SELECT op_profile FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def job_request(self, job_id: str) -> pb.ProfileRequest | None:
        """The request the host sent for this job (recorded before it was sent)."""
        row = self.conn.execute("SELECT request FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return json_format.Parse(row[0], pb.ProfileRequest()) if row else None

    def discard_job(self, job_id: str, error: str) -> None:
        """Fail a job and drop every episode stored for it: what an agent sent for it cannot be trusted."""
        with self.transaction() as db:
            db.execute("DELETE FROM episodes WHERE job_id=?", (job_id,))
            db.execute(
                "UPDATE jobs SET state='failed', error=?, summary=NULL, finished_at=? WHERE job_id=?",
                (error, now(), job_id),
            )

    def fail_job(self, job_id: str, error: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state='failed', error=?, finished_at=? WHERE job_id=?",
                (error, now(), job_id),
            )

    def episode_returns(self, job_id: str) -> list[float]:
        rows = self.conn.execute("SELECT episode_return FROM episodes WHERE job_id=? ORDER BY idx", (job_id,))
        return [r[0] for r in rows]

    def count_episodes(self, job_id: str) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM episodes WHERE job_id=?", (job_id,)).fetchone()[0])

    def profile_jobs(self, session_id: str | None = None) -> list[sqlite3.Row]:
        """Every succeeded job (every round of every session, or of one session), joined with its model: a
        report groups them."""
        where, args = ("AND j.session_id = ?", (session_id,)) if session_id is not None else ("", ())
        return list(
            self.conn.execute(
                f"""SELECT j.*, m.name AS model_name, m.algo, m.env_id, m.method, m.method_params, m.parent_sha256,
                          m.file_bytes, m.n_params
                   FROM jobs j JOIN models m ON m.sha256 = j.model_sha256
                   WHERE j.state = 'succeeded' {where}
                   ORDER BY j.target, m.algo, m.env_id, m.name, j.finished_at, j.round""",
                args,
            )
        )

    def latest_episode(self, model_sha256: str) -> tuple[int, int, float] | None:
        """(seed, index, return) of the episode stored last for this model, on any job: what just arrived."""
        row = self.conn.execute(
            """SELECT e.seed, e.idx, e.episode_return FROM episodes e JOIN jobs j ON j.job_id = e.job_id
               WHERE j.model_sha256 = ? ORDER BY e.rowid DESC LIMIT 1""",
            (model_sha256,),
        ).fetchone()
        return (int(row[0]), int(row[1]), float(row[2])) if row else None

    def succeeded_jobs(self) -> list[sqlite3.Row]:
        """Per (model, target, settings): the latest succeeded job that ran the episodes (round 0 of a session,
        or a job from before rounds; a later round is latency only), a job whose timing was not spoiled first;
        joined with its model and target name."""
        return list(
            self.conn.execute(
                """SELECT * FROM (
                       SELECT j.*, m.name AS model_name, m.algo, m.env_id, m.method, m.method_params,
                              m.parent_sha256, m.file_bytes, m.n_params,
                              ROW_NUMBER() OVER (
                                  PARTITION BY j.model_sha256, j.target_fingerprint, j.settings_key
                                  ORDER BY j.spoiled, j.finished_at DESC, j.rowid DESC) AS pick
                       FROM jobs j JOIN models m ON m.sha256 = j.model_sha256
                       WHERE j.state = 'succeeded' AND (j.round IS NULL OR j.round = 0))
                   WHERE pick = 1
                   ORDER BY target, algo, env_id, model_name"""
            )
        )

    # ------------------------------------------------------------------ what a study has done
    def models_done_on(self, target: str, settings_key: str, rounds: int = 1) -> set[str]:
        """sha256 of every model with a succeeded job in each of ``rounds`` rounds of one session on
        ``target`` (by name) with these settings."""
        rows = self.conn.execute(
            """SELECT model_sha256 FROM jobs WHERE target = ? AND settings_key = ? AND state = 'succeeded'
               GROUP BY session_id, model_sha256 HAVING COUNT(DISTINCT COALESCE(round, 0)) >= ?""",
            (target, settings_key, rounds),
        )
        return {r[0] for r in rows}

    def mean_episode_wall_s(self, target: str, env_id: str) -> float | None:
        """Mean measured wall time of one episode of ``env_id`` on ``target`` (by name), None without any."""
        row = self.conn.execute(
            """SELECT AVG(e.wall_s) FROM episodes e JOIN jobs j ON j.job_id = e.job_id
               JOIN models m ON m.sha256 = j.model_sha256
               WHERE j.target = ? AND m.env_id = ? AND e.wall_s IS NOT NULL""",
            (target, env_id),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # ------------------------------------------------------------------ training runs
    def add_training_run(self, run: dict[str, Any], curve: Sequence[dict[str, Any]]) -> None:
        """Store a finished run (``run``: the training_runs columns by name) and replace its curve
        (``curve``: training_curve rows by column name, without run_id)."""
        columns = ", ".join(TRAINING_RUN_COLUMNS)
        marks = ", ".join("?" * len(TRAINING_RUN_COLUMNS))
        with self.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO training_runs ({columns}) VALUES ({marks})",
                tuple(run[c] for c in TRAINING_RUN_COLUMNS),
            )
            conn.execute("DELETE FROM training_curve WHERE run_id = ?", (run["run_id"],))
            conn.executemany(
                "INSERT OR REPLACE INTO training_curve VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        run["run_id"],
                        p["step"],
                        p["kind"],
                        p["return_mean"],
                        p["return_std"],
                        p["episodes"],
                        p["wall_s"],
                    )
                    for p in curve
                ],
            )

    def finished_training_run(self, config_key: str) -> dict[str, Any] | None:
        """The latest recorded run of a plan (by config key) whose artifact is still registered, or None."""
        row = self.conn.execute(
            """SELECT r.* FROM training_runs r JOIN models m ON m.sha256 = r.model_sha256
               WHERE r.config_key = ? ORDER BY r.finished_at DESC LIMIT 1""",
            (config_key,),
        ).fetchone()
        return dict(row) if row else None

    def training_runs(self) -> list[dict[str, Any]]:
        """Every recorded run, oldest first."""
        return [
            dict(r) for r in self.conn.execute("SELECT * FROM training_runs ORDER BY finished_at, run_id")
        ]

    def training_curve(self, run_id: str) -> list[dict[str, Any]]:
        """A run's curve points (step, kind, return_mean, return_std, episodes, wall_s), by step."""
        rows = self.conn.execute(
            "SELECT step, kind, return_mean, return_std, episodes, wall_s FROM training_curve WHERE run_id = ?"
            " ORDER BY step, kind",
            (run_id,),
        )
        return [dict(r) for r in rows]
