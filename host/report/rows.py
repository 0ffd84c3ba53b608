"""The rows of a report, loaded from the results database: one per (target fingerprint, model, settings).

Statistics are recomputed here from the stored per-episode returns (the agent's summary is
kept for the latency and memory figures only it could measure, read through
:class:`host.report.summary.JobSummary`). Everything a report shows starts from these rows
(``host.report.analysis`` compares them; the renderers draw the analysis).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from device_agent.contract.envs import describe_env
from device_agent.contract.manifest import ObsWrapper
from device_agent.contract.stats import ReturnStats, t_quantile_975
from device_agent.contract.vocabulary import BASELINE
from host.compress.methods import METHOD_ORDER, UNKNOWN_ORDER
from host.measure.protocol import EXTRA_ROUND_BASE
from host.report.summary import JobSummary
from host.store.results_db import ResultsDB


@dataclass(frozen=True)
class ReportRow:
    target: str
    model: str
    sha256: str
    baseline_sha256: str
    algo: str
    env_id: str
    method: str
    ratio: float | None
    params: str
    return_mean: float
    return_std: float
    return_ci95_low: float
    return_ci95_high: float
    return_pct_of_baseline: float | None
    n_episodes: int
    latency_p50_us: float
    latency_p99_us: float
    floor_p50_us: float
    env_step_us: float
    model_rss_mb: float
    peak_rss_mb: float
    file_kb: float
    n_params: int
    action_error_mean_abs: float | None
    execution_provider: str
    energy: str
    latency_p999_us: float
    deadline_misses: int | None
    """Control-rate jobs only: ticks whose work overran the env's control period."""
    energy_episode_j: float | None
    """Net joules per episode from the first meter that measured (GPU, CPU package, board rail, battery)."""
    energy_inference_j: float | None
    """Net joules per inference call from the inference-only phase, same meter."""
    returns: tuple[float, ...] = ()
    """Per-episode returns, in episode order (the sample every return statistic is computed from)."""
    latency_samples_us: tuple[float, ...] = ()
    """The sample latency tests and CIs use: each episode's median inference latency (episodes are independent
    runs, the calls within one are not); for a job whose episodes ran in parallel, untimed, the medians of
    LATENCY_BATCHES consecutive batches of its latency phase's calls (batch means, for correlated calls)."""
    target_fingerprint: str = ""
    settings_key: str = ""
    runtime_key: str = ""
    """ONNX Runtime, MuJoCo and Gymnasium versions and the execution provider that ran the job: part of what a
    variant must share with its baseline to be compared."""
    session_id: str | None = None
    """The deploy invocation the row's rounds come from; None for jobs measured before sessions existed."""
    seeds: tuple[int, ...] = ()
    """The seed of each entry of ``returns`` (a variant's episode pairs with the baseline's of the same seed)."""
    round_ids: tuple[int, ...] = ()
    """Rounds of the session whose timing counts (not spoiled), aligned with the round_* tuples."""
    round_p50_us: tuple[float, ...] = ()
    round_p99_us: tuple[float, ...] = ()
    round_paired: tuple[tuple[int, str, float, float], ...] = ()
    """(round, reference sha256, its p50 µs, its p99 µs) of every counted round timed in a paired latency phase:
    the reference's figures from the same worker process as this row's round figures."""
    round_model_mb: tuple[float, ...] = ()
    """Per round, what the model adds to the worker's RSS (MiB; see :attr:`JobSummary.model_memory_bytes`)."""
    round_energy: tuple[tuple[int, str, float], ...] = ()
    """(round, meter, net J per inference) of every usable reading: never below resolution, gross or negative."""
    energy_meter: str | None = None
    """The meter ``energy_*_j`` come from (chosen for the execution provider), with its scope when known."""
    n_spoiled: int = 0
    """Rounds of the session whose timing validity checks flagged (left out of every timing figure)."""
    job_ids: tuple[str, ...] = ()
    measured_at: str = ""
    """When its latest job finished (ISO time): which of a baseline's measurements is the newest."""
    op_profile: dict[str, Any] | None = None
    """Round 0's operator profile (agent.proto OpProfile as JSON: where the time of a call goes), if one was
    taken (``drlc-host deploy --op-profile``)."""
    env_setup: str = ""
    """The env as the device built it: the id with its options and observation wrappers, e.g.
    ``Ant-v4(use_contact_forces=True)``; the id alone when the policy needs none."""


SHOWN_PARAMS = ("ratio", "mode", "fp32_first_layer", "per_channel", "finetune_steps", "calibration")
"""The parameters that tell variants of one baseline apart; the manifest holds the rest."""


def params_text(params: dict[str, Any]) -> str:
    shown = []
    for key in SHOWN_PARAMS:
        value = params.get(key)
        if isinstance(value, dict):
            value = value.get("method")
        if value in (None, False, 0):
            continue
        shown.append(key if value is True else f"{key}={value}")
    return ", ".join(shown)


@dataclass(frozen=True)
class Moments:
    """What every statistic of a report needs from a sample: its size, mean and unbiased variance."""

    n: int
    mean: float
    var: float


@lru_cache(maxsize=65536)
def moments(values: tuple[float, ...]) -> Moments:
    """Plain Python on purpose: for the 10-ish episodes of a job it is ~20x faster than numpy's small-array
    overhead, which dominated a 10 000-result report. Cached: a baseline's sample meets every variant."""
    n = len(values)
    if n == 0:
        return Moments(0, math.nan, math.nan)
    mean = math.fsum(values) / n
    var = math.fsum((x - mean) ** 2 for x in values) / (n - 1) if n > 1 else 0.0
    return Moments(n, mean, var)


def return_stats(returns: tuple[float, ...]) -> ReturnStats:
    """device_agent.stats.return_stats (mean, sample std, Student-t 95 % CI), from cached moments."""
    m = moments(returns)
    if m.n == 0:
        return ReturnStats(0, math.nan, math.nan, math.nan, math.nan)
    std = math.sqrt(m.var)
    half = t_quantile_975(m.n - 1) * std / math.sqrt(m.n) if m.n > 1 else math.nan
    return ReturnStats(m.n, m.mean, std, m.mean - half, m.mean + half)


def _episodes_by_job(
    db: ResultsDB, session_id: str | None = None
) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """(seeds, returns, p50 latencies in µs) of every job's episodes (of one session, when given), in episode
    order: one query for all jobs."""
    out: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for job_id, seed, ret, p50 in db.succeeded_episodes(session_id):
        seeds, returns, latencies = out.setdefault(job_id, ([], [], []))
        seeds.append(seed)
        returns.append(ret)
        if p50 is not None and p50 > 0:
            latencies.append(p50 / 1e3)
    return out


def _metrics_by_model(manifests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each model's manifest metrics (action error etc.), without building the full manifest objects."""
    return {sha: manifest.get("metrics") or {} for sha, manifest in manifests.items()}


def _env_by_model(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each model's env as its manifest has the device build it (options and wrappers included)."""
    out = {}
    for sha, manifest in manifests.items():
        try:
            wrappers = [ObsWrapper(**w) for w in manifest.get("obs_wrappers") or []]
            out[sha] = describe_env(manifest["env_id"], manifest.get("env_kwargs") or {}, wrappers)
        except (ValueError, AttributeError, KeyError, TypeError):
            continue
    return out


def _session_jobs(jobs: list[Any]) -> list[Any]:
    """The jobs one row is made of: every round of the latest session (rounds in order), or for jobs measured
    before sessions existed the latest job alone (one "round", which no timing test can use)."""
    latest = max(jobs, key=lambda j: (j["finished_at"] or "", j["created_at"] or ""))
    session = latest["session_id"]
    if session is None:
        return [latest]
    chosen = [j for j in jobs if j["session_id"] == session]
    return sorted(chosen, key=lambda j: (j["round"] if j["round"] is not None else 0, j["finished_at"] or ""))


def _extra(job: Any) -> bool:
    return (job["round"] or 0) >= EXTRA_ROUND_BASE


def collect_rows(db: ResultsDB, session_id: str | None = None) -> list[ReportRow]:
    """One row per (target fingerprint, model, measurement settings): the rounds of its latest session (or its
    latest job, for jobs from before sessions), statistics recomputed from the stored episodes. Returns are
    taken once per seed (seeded episodes are deterministic, so a seed repeated in a later round adds nothing);
    timing figures per round come from the rounds that validity checks did not spoil. A few bulk queries, so
    10 000 jobs take about a second. ``session_id``: that session's rows only (as if it were the latest), for
    comparing the verdicts of two sessions."""
    episodes = _episodes_by_job(db, session_id)
    manifests = db.manifest_dicts()
    metrics = _metrics_by_model(manifests)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for job in db.profile_jobs(session_id):
        groups.setdefault((job["model_sha256"], job["target_fingerprint"], job["settings_key"]), []).append(
            job
        )
    envs = _env_by_model(manifests)
    raw: list[dict[str, Any]] = []
    for jobs in groups.values():
        jobs = _session_jobs(jobs)
        summaries = [JobSummary.parse(j["summary"]) for j in jobs]
        by_seed: dict[int, float] = {}
        episode_p50s: list[float] = []
        for j in jobs:
            seeds, returns, latencies = episodes.get(j["job_id"], ([], [], []))
            for seed, ret in zip(seeds, returns, strict=True):
                by_seed.setdefault(seed, ret)
            if not j["spoiled"] and not _extra(j):
                episode_p50s += latencies
        # extra seeded episodes (--episodes auto) add returns only: their timing is no round of the protocol
        clean = [(j, s) for j, s in zip(jobs, summaries, strict=True) if not j["spoiled"] and not _extra(j)]
        job, summary = clean[-1] if clean else (jobs[-1], summaries[-1])
        if len(episode_p50s) < 2:
            episode_p50s = summary.latency_phase_batches()
        returns = tuple(by_seed.values())
        stats = return_stats(returns)
        params = json.loads(job["method_params"])
        meter = summary.energy_meter()
        episode_j, inference_j = summary.energy_per_item()
        round_energy = []
        for j, s in clean:
            m = s.energy_meter()
            value = s.energy_per_item()[1]
            if m is not None and value is not None:
                round_energy.append((j["round"] or 0, s.meter_scope(m), value))
        raw.append(
            {
                "target": job["target"],
                "model": job["model_name"],
                "sha256": job["model_sha256"],
                "baseline_sha256": job["parent_sha256"] or job["model_sha256"],
                "algo": job["algo"],
                "env_id": job["env_id"],
                "method": job["method"],
                "ratio": float(params["ratio"]) if "ratio" in params else None,
                "params": params_text(params),
                "return_mean": stats.mean,
                "return_std": stats.std,
                "return_ci95_low": stats.ci95_low,
                "return_ci95_high": stats.ci95_high,
                "n_episodes": stats.n,
                "latency_p50_us": float(np.median([s.p50_us for _, s in clean])) if clean else math.nan,
                "latency_p99_us": float(np.median([s.p99_us for _, s in clean])) if clean else math.nan,
                # the floor is timed in round 0 only (later rounds are latency only): the latest job that timed it
                "floor_p50_us": next((s for s in reversed(summaries) if s.has_floor), summary).floor_p50_us,
                "env_step_us": summary.env_step_us,
                "model_rss_mb": summary.model_mb,
                "peak_rss_mb": summary.peak_rss_mb,
                "file_kb": job["file_bytes"] / 1024,
                "n_params": job["n_params"],
                "action_error_mean_abs": metrics.get(job["model_sha256"], {}).get("action_error_mean_abs"),
                "execution_provider": summary.execution_provider,
                "energy": summary.energy_text(),
                "latency_p999_us": summary.p999_us,
                "deadline_misses": summary.deadline_misses,
                "energy_episode_j": episode_j,
                "energy_inference_j": inference_j,
                "returns": returns,
                "latency_samples_us": tuple(episode_p50s),
                "target_fingerprint": job["target_fingerprint"],
                "settings_key": job["settings_key"],
                "runtime_key": summary.runtime_key,
                "session_id": job["session_id"],
                "seeds": tuple(by_seed),
                "round_ids": tuple(j["round"] or 0 for j, _ in clean),
                "round_p50_us": tuple(s.p50_us for _, s in clean),
                "round_p99_us": tuple(s.p99_us for _, s in clean),
                "round_paired": tuple(
                    (j["round"] or 0, *paired) for j, s in clean if (paired := s.paired) is not None
                ),
                "round_model_mb": tuple(s.model_mb for _, s in clean),
                "round_energy": tuple(round_energy),
                "energy_meter": summary.meter_scope(meter) if meter else None,
                "n_spoiled": sum(1 for j in jobs if j["spoiled"]),
                "job_ids": tuple(j["job_id"] for j in jobs),
                "measured_at": max((j["finished_at"] or "" for j in jobs), default=""),
                "env_setup": envs.get(job["model_sha256"], job["env_id"]),
                "op_profile": next(
                    (json.loads(j["op_profile"]) for j in reversed(jobs) if j["op_profile"]), None
                ),
            }
        )
    baseline_return = {
        (r["target_fingerprint"], r["settings_key"], r["sha256"]): r["return_mean"]
        for r in raw
        if r["method"] == BASELINE
    }
    rows = []
    for r in raw:
        base = baseline_return.get((r["target_fingerprint"], r["settings_key"], r["baseline_sha256"]))
        pct = 100.0 * r["return_mean"] / base if base is not None and base > 0 else None
        rows.append(ReportRow(**r, return_pct_of_baseline=pct))
    return sorted(rows, key=sort_key)


@dataclass(frozen=True)
class ReportFilter:
    """Which rows a report shows; an empty tuple lets everything through. Matching is case-insensitive.

    :param targets: target names
    :param algos: algorithms (``sac``)
    :param envs: env ids (``HalfCheetah-v5``) or their prefix before the version (``HalfCheetah``)
    :param baselines: baseline names or sha256 prefixes; a baseline brings all its variants
    :param latest_only: of a baseline measured on one target more than one way (other settings, another
        agent runtime, an interrupted deploy under an older protocol), only the newest measurement and the
        variants measured with it; False shows every one, each compared with its own baseline
    """

    targets: tuple[str, ...] = ()
    algos: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    latest_only: bool = False

    def apply(self, rows: Iterable[ReportRow]) -> list[ReportRow]:
        rows = list(rows)
        targets = {t.lower() for t in self.targets}
        algos = {a.lower() for a in self.algos}
        envs = {e.lower() for e in self.envs}
        wanted = [b.lower() for b in self.baselines]
        base_names = {r.sha256: r.model.lower() for r in rows if r.method == BASELINE}

        def base_ok(row: ReportRow) -> bool:
            name = base_names.get(row.baseline_sha256, "")
            return any(row.baseline_sha256.startswith(b) or name == b for b in wanted)

        def env_ok(row: ReportRow) -> bool:
            env = row.env_id.lower()
            return env in envs or env.rsplit("-v", 1)[0] in envs

        chosen = [
            r
            for r in rows
            if (not targets or r.target.lower() in targets)
            and (not algos or r.algo.lower() in algos)
            and (not envs or env_ok(r))
            and (not wanted or base_ok(r))
        ]
        return latest_measurements(chosen) if self.latest_only else chosen


def measurement_key(row: ReportRow) -> tuple[str, str, str]:
    """What distinguishes two measurements of one model on one target (the report compares within one)."""
    return (row.target_fingerprint, row.settings_key, row.runtime_key)


def latest_measurements(rows: Iterable[ReportRow]) -> list[ReportRow]:
    """Per (target, baseline), the rows measured the way its newest baseline measurement was. A row is left out
    only when its baseline was also measured its way, earlier: rows of a baseline never measured, or measured
    some way only for the variant (a variant re-measured alone under new settings), stay, and the report says
    they have nothing to compare with. Ties in time go to the later job."""
    rows = list(rows)
    newest: dict[tuple[str, str], ReportRow] = {}
    measured: set[tuple[str, str, tuple[str, str, str]]] = set()
    for r in rows:
        if r.method == BASELINE:
            key = (r.target, r.sha256)
            measured.add((*key, measurement_key(r)))
            if key not in newest or (r.measured_at, r.job_ids) > (
                newest[key].measured_at,
                newest[key].job_ids,
            ):
                newest[key] = r
    kept = []
    for r in rows:
        base = newest.get((r.target, r.baseline_sha256))
        own_way = (r.target, r.baseline_sha256, measurement_key(r))
        if base is None or measurement_key(r) == measurement_key(base) or own_way not in measured:
            kept.append(r)
    return kept


def device_infos(db: ResultsDB, rows: Iterable[ReportRow]) -> dict[str, dict[str, Any]]:
    """Target name -> what its agent reported about the device (the latest fingerprint measured under it)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.target not in out and row.target_fingerprint:
            info = db.device_info(row.target_fingerprint)
            if info is not None:
                out[row.target] = info
    return out


def sort_key(row: ReportRow) -> tuple:
    return (
        row.target,
        row.algo,
        row.env_id,
        row.baseline_sha256,
        METHOD_ORDER.get(row.method, UNKNOWN_ORDER),
        row.ratio or 0.0,
        row.model,
    )
