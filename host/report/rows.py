"""Reports from the results database: per target, variants grouped under their baseline.

Statistics are recomputed here from the stored per-episode returns (the agent's summary is
kept for the latency and memory figures only it could measure). The study's rule picks the
best pruning per (algorithm, env, target): the highest ratio whose mean return keeps at
least 90 % of the baseline's on the same target.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

import numpy as np

from device_agent.envs import describe_env
from device_agent.manifest import ObsWrapper
from device_agent.stats import ReturnStats, t_quantile_975
from host.decision import KEEP_FRACTION, NOISE_THRESHOLD
from host.measure.protocol import EXTRA_ROUND_BASE
from host.results_db import ResultsDB

PRUNING_METHODS = ("l1", "l2")


class ReportFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    html = "html"
    json = "json"


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
    round_model_mb: tuple[float, ...] = ()
    """Per round, what the model adds to the worker's RSS (MiB; see :func:`model_memory_bytes`)."""
    round_energy: tuple[tuple[int, str, float], ...] = ()
    """(round, meter, net J per inference) of every usable reading: never below resolution, gross or negative."""
    energy_meter: str | None = None
    """The meter ``energy_*_j`` come from (chosen for the execution provider), with its scope when known."""
    n_spoiled: int = 0
    """Rounds of the session whose timing validity checks flagged (left out of every timing figure)."""
    job_ids: tuple[str, ...] = ()
    op_profile: dict[str, Any] | None = None
    """Round 0's operator profile (agent.proto OpProfile as JSON: where the time of a call goes), if one was
    taken (``drlc-host deploy --op-profile``)."""
    env_setup: str = ""
    """The env as the device built it: the id with its options and observation wrappers, e.g.
    ``Ant-v4(use_contact_forces=True)``; the id alone when the policy needs none."""


@dataclass(frozen=True)
class BestPruning:
    target: str
    algo: str
    env_id: str
    baseline: str
    baseline_return: float
    method: str
    ratio: float
    return_pct_of_baseline: float


def _get(d: dict, *path: str, default: float = math.nan) -> float:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return float(d)


def _per_item(reading: dict | None) -> tuple[float | None, bool]:
    """(joules per item, net?) of one reading; None when it is below the meter's resolution."""
    if reading is None or reading.get("below_resolution") or not int(reading.get("n_items", 0)):
        return None, False
    if "net_j_per_item" in reading:
        return float(reading["net_j_per_item"]), True
    return float(reading.get("gross_j", 0.0)) / int(reading["n_items"]), False


def net_per_item(reading: dict | None) -> float | None:
    """Net joules per item of one reading, or None when it is no measurement to rank by: below the meter's
    resolution, gross only (idle power not subtracted), or not positive (idle power above the job's: noise)."""
    value, net = _per_item(reading)
    return value if net and value is not None and value > 0 else None


PROVIDER_METERS = {"CUDAExecutionProvider": "nvml", "TensorrtExecutionProvider": "nvml"}
"""The meter family that sees the work of an execution provider; anything else runs on the CPU (RAPL first)."""
CPU_METERS = ("rapl", "ina3221", "battery")


def meter_order(provider: str) -> tuple[str, ...]:
    """Meter families in the order that best covers ``provider``'s work: the GPU's own meter for a GPU
    provider, the CPU package (then a board rail, then the battery) for the CPU."""
    first = PROVIDER_METERS.get(provider)
    return (first, *CPU_METERS) if first else (*CPU_METERS, "nvml")


def energy_meter(summary: dict) -> str | None:
    """The meter a job's energy figures come from: the first, in the provider's :func:`meter_order`, with a
    usable net reading of the inference phase (else of the episodes)."""
    provider = summary.get("runtime", {}).get("execution_provider", "")
    episodes = {e["meter"]: e for e in summary.get("energy", [])}
    inference = {e["meter"]: e for e in summary.get("inference_phase", {}).get("energy", [])}
    meters = list(dict.fromkeys([*inference, *episodes]))
    for family in meter_order(provider):
        for meter in meters:
            if meter.split(":")[0] != family:
                continue
            if (
                net_per_item(inference.get(meter)) is not None
                or net_per_item(episodes.get(meter)) is not None
            ):
                return meter
    return None


def energy_per_item(summary: dict) -> tuple[float | None, float | None]:
    """Net J per episode and per inference from the meter that covers the job's execution provider
    (:func:`energy_meter`); never a below-resolution, gross-only or non-positive figure, and never two meters
    mixed. (None, None) when no such reading exists."""
    meter = energy_meter(summary)
    if meter is None:
        return None, None
    episodes = {e["meter"]: e for e in summary.get("energy", [])}
    inference = {e["meter"]: e for e in summary.get("inference_phase", {}).get("energy", [])}
    return net_per_item(episodes.get(meter)), net_per_item(inference.get(meter))


def model_memory_bytes(memory: dict) -> float:
    """What the model itself adds to the worker's RSS: past the runtime's start-up (a weightless graph of the
    same I/O loaded first), where the agent measured that split; else, from older agents, the whole growth
    when the model loaded (start-up included, so about equal for every variant)."""
    if "model_added_bytes" in memory:
        return float(memory["model_added_bytes"])
    return _get(memory, "rss_after_load_bytes") - _get(memory, "rss_before_load_bytes")


def energy_text(summary: dict) -> str:
    """The energy column: per meter, J per episode and µJ per inference (net of idle power unless marked
    gross), "below resolution" for windows too short for the meter, or why nothing was measured."""
    episodes = {e["meter"]: e for e in summary.get("energy", [])}
    inference = {e["meter"]: e for e in summary.get("inference_phase", {}).get("energy", [])}
    parts = []
    for meter in dict.fromkeys([*episodes, *inference]):
        shown = []
        for reading, scale, unit in (
            (episodes.get(meter), 1.0, "J/episode"),
            (inference.get(meter), 1e6, "µJ/inference"),
        ):
            if reading is None:
                continue
            value, net = _per_item(reading)
            if value is None:
                shown.append(f"{unit.split('/')[1]} below resolution")
            else:
                shown.append(f"{value * scale:.3g} {unit}" + ("" if net else " gross"))
        parts.append(f"{meter}: {', '.join(shown)}")
    if parts:
        return "; ".join(parts)
    meters = summary.get("energy_meters", [])
    if not meters:
        return "not measured"
    broken = [
        m for m in meters if m.get("available") or str(m.get("reason", "")).startswith("failed mid-job")
    ]
    if broken:
        return (
            "not measured ("
            + "; ".join(f"{m['name']}: {m.get('reason') or 'no reading'}" for m in broken)
            + ")"
        )
    return "not measured (no meter on this device)"


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


def _episodes_by_job(db: ResultsDB) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """(seeds, returns, p50 latencies in µs) of every job's episodes, in episode order: one query for all jobs."""
    out: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for job_id, seed, ret, p50 in db.conn.execute(
        "SELECT e.job_id, e.seed, e.episode_return, e.inference_p50_ns FROM episodes e"
        " JOIN jobs j ON j.job_id = e.job_id WHERE j.state = 'succeeded' ORDER BY e.job_id, e.idx"
    ):
        seeds, returns, latencies = out.setdefault(job_id, ([], [], []))
        seeds.append(int(seed))
        returns.append(ret)
        if p50 is not None and p50 > 0:
            latencies.append(p50 / 1e3)
    return out


def _metrics_by_model(db: ResultsDB) -> dict[str, dict[str, Any]]:
    """Each model's manifest metrics (action error etc.), without building the full manifest objects."""
    out = {}
    for sha, text in db.conn.execute("SELECT sha256, manifest FROM models"):
        try:
            out[sha] = json.loads(text).get("metrics") or {}
        except (ValueError, AttributeError):
            out[sha] = {}
    return out


def _env_by_model(db: ResultsDB) -> dict[str, str]:
    """Each model's env as its manifest has the device build it (options and wrappers included)."""
    out = {}
    for sha, text in db.conn.execute("SELECT sha256, manifest FROM models"):
        try:
            manifest = json.loads(text)
            wrappers = [ObsWrapper(**w) for w in manifest.get("obs_wrappers") or []]
            out[sha] = describe_env(manifest["env_id"], manifest.get("env_kwargs") or {}, wrappers)
        except (ValueError, AttributeError, KeyError, TypeError):
            continue
    return out


LATENCY_BATCHES = 10
"""Batches a latency phase's calls are cut into when the episodes have no latency of their own."""


def latency_phase_batches(summary: dict[str, Any]) -> list[float]:
    """Medians (µs) of consecutive batches of the latency phase's timed calls; [] when it kept none."""
    calls = summary.get("latency_phase", {}).get("inference_ns") or []
    n = min(LATENCY_BATCHES, len(calls) // 20)
    if n < 2:
        return []
    values = np.asarray(calls, dtype=np.float64) / 1e3
    return [float(np.median(batch)) for batch in np.array_split(values, n)]


def runtime_key(summary: dict[str, Any]) -> str:
    """What of the agent's software decides a timing: runtime versions and the provider that ran the job."""
    rt = summary.get("runtime", {})
    return " ".join(
        f"{k}={rt.get(k, '')}"
        for k in ("onnxruntime_version", "mujoco_version", "gymnasium_version", "execution_provider")
    )


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


def _meter_scope(summary: dict[str, Any], meter: str) -> str:
    scope = next((m.get("scope") for m in summary.get("energy_meters", []) if m.get("name") == meter), None)
    return f"{meter} ({scope})" if scope else meter


def collect_rows(db: ResultsDB, session_id: str | None = None) -> list[ReportRow]:
    """One row per (target fingerprint, model, measurement settings): the rounds of its latest session (or its
    latest job, for jobs from before sessions), statistics recomputed from the stored episodes. Returns are
    taken once per seed (seeded episodes are deterministic, so a seed repeated in a later round adds nothing);
    timing figures per round come from the rounds that validity checks did not spoil. A few bulk queries, so
    10 000 jobs take about a second. ``session_id``: that session's rows only (as if it were the latest), for
    comparing the verdicts of two sessions."""
    episodes = _episodes_by_job(db)
    metrics = _metrics_by_model(db)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for job in db.profile_jobs():
        if session_id is not None and job["session_id"] != session_id:
            continue
        groups.setdefault((job["model_sha256"], job["target_fingerprint"], job["settings_key"]), []).append(
            job
        )
    envs = _env_by_model(db)
    raw: list[dict[str, Any]] = []
    for jobs in groups.values():
        jobs = _session_jobs(jobs)
        summaries = [json.loads(j["summary"]) for j in jobs]
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
            episode_p50s = latency_phase_batches(summary)
        returns = tuple(by_seed.values())
        stats = return_stats(returns)
        memory = summary.get("memory", {})
        params = json.loads(job["method_params"])
        meter = energy_meter(summary)
        episode_j, inference_j = energy_per_item(summary)
        round_energy = []
        for j, s in clean:
            m = energy_meter(s)
            value = energy_per_item(s)[1]
            if m is not None and value is not None:
                round_energy.append((j["round"] or 0, _meter_scope(s, m), value))
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
                "latency_p50_us": float(np.median([_get(s, "inference", "p50_ns") / 1e3 for _, s in clean]))
                if clean
                else math.nan,
                "latency_p99_us": float(np.median([_get(s, "inference", "p99_ns") / 1e3 for _, s in clean]))
                if clean
                else math.nan,
                # the floor is timed in round 0 only (later rounds are latency only): the latest job that timed it
                "floor_p50_us": _get(
                    next((s for s in reversed(summaries) if "runtime_floor" in s), summary),
                    "runtime_floor",
                    "p50_ns",
                )
                / 1e3,
                "env_step_us": _get(summary, "env_step", "mean_ns") / 1e3,
                "model_rss_mb": _model_mb(memory),
                "peak_rss_mb": _get(memory, "peak_rss_bytes") / 2**20,
                "file_kb": job["file_bytes"] / 1024,
                "n_params": job["n_params"],
                "action_error_mean_abs": metrics.get(job["model_sha256"], {}).get("action_error_mean_abs"),
                "execution_provider": summary.get("runtime", {}).get("execution_provider", ""),
                "energy": energy_text(summary),
                "latency_p999_us": _get(summary, "inference", "p999_ns") / 1e3,
                "deadline_misses": int(summary["control_rate"].get("deadline_misses", 0))
                if "control_rate" in summary
                else None,
                "energy_episode_j": episode_j,
                "energy_inference_j": inference_j,
                "returns": returns,
                "latency_samples_us": tuple(episode_p50s),
                "target_fingerprint": job["target_fingerprint"],
                "settings_key": job["settings_key"],
                "runtime_key": runtime_key(summary),
                "session_id": job["session_id"],
                "seeds": tuple(by_seed),
                "round_ids": tuple(j["round"] or 0 for j, _ in clean),
                "round_p50_us": tuple(_get(s, "inference", "p50_ns") / 1e3 for _, s in clean),
                "round_p99_us": tuple(_get(s, "inference", "p99_ns") / 1e3 for _, s in clean),
                "round_model_mb": tuple(_model_mb(s.get("memory", {})) for _, s in clean),
                "round_energy": tuple(round_energy),
                "energy_meter": _meter_scope(summary, meter) if meter else None,
                "n_spoiled": sum(1 for j in jobs if j["spoiled"]),
                "job_ids": tuple(j["job_id"] for j in jobs),
                "env_setup": envs.get(job["model_sha256"], job["env_id"]),
                "op_profile": next(
                    (json.loads(j["op_profile"]) for j in reversed(jobs) if j["op_profile"]), None
                ),
            }
        )
    baseline_return = {
        (r["target_fingerprint"], r["settings_key"], r["sha256"]): r["return_mean"]
        for r in raw
        if r["method"] == "baseline"
    }
    rows = []
    for r in raw:
        base = baseline_return.get((r["target_fingerprint"], r["settings_key"], r["baseline_sha256"]))
        pct = 100.0 * r["return_mean"] / base if base is not None and base > 0 else None
        rows.append(ReportRow(**r, return_pct_of_baseline=pct))
    return sorted(rows, key=sort_key)


def _model_mb(memory: dict[str, Any]) -> float:
    return model_memory_bytes(memory) / 2**20


@dataclass(frozen=True)
class ReportFilter:
    """Which rows a report shows; an empty tuple lets everything through. Matching is case-insensitive.

    :param targets: target names
    :param algos: algorithms (``sac``)
    :param envs: env ids (``HalfCheetah-v5``) or their prefix before the version (``HalfCheetah``)
    :param baselines: baseline names or sha256 prefixes; a baseline brings all its variants
    """

    targets: tuple[str, ...] = ()
    algos: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()

    def apply(self, rows: Iterable[ReportRow]) -> list[ReportRow]:
        rows = list(rows)
        targets = {t.lower() for t in self.targets}
        algos = {a.lower() for a in self.algos}
        envs = {e.lower() for e in self.envs}
        wanted = [b.lower() for b in self.baselines]
        base_names = {r.sha256: r.model.lower() for r in rows if r.method == "baseline"}

        def base_ok(row: ReportRow) -> bool:
            name = base_names.get(row.baseline_sha256, "")
            return any(row.baseline_sha256.startswith(b) or name == b for b in wanted)

        def env_ok(row: ReportRow) -> bool:
            env = row.env_id.lower()
            return env in envs or env.rsplit("-v", 1)[0] in envs

        return [
            r
            for r in rows
            if (not targets or r.target.lower() in targets)
            and (not algos or r.algo.lower() in algos)
            and (not envs or env_ok(r))
            and (not wanted or base_ok(r))
        ]


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
    order = {"baseline": 0, "ptdq": 1, "ptsq": 2, "qat": 3, "l1": 4, "l2": 5}
    return (
        row.target,
        row.algo,
        row.env_id,
        row.baseline_sha256,
        order.get(row.method, 9),
        row.ratio or 0.0,
        row.model,
    )


def best_pruning(rows: Iterable[ReportRow]) -> list[BestPruning]:
    """Per (target, baseline): the highest pruning ratio that keeps >= 90 % of the baseline's return."""
    rows = list(rows)
    out = []
    for base in (r for r in rows if r.method == "baseline"):
        if base.return_mean <= 0:
            continue  # a percentage of a non-positive return says nothing
        kept = [
            r
            for r in rows
            if r.target == base.target
            and r.baseline_sha256 == base.sha256
            and r.method in PRUNING_METHODS
            and r.ratio is not None
            and r.return_mean >= KEEP_FRACTION * base.return_mean
        ]
        if not kept:
            continue
        top = max(r.ratio for r in kept if r.ratio is not None)
        for r in sorted((r for r in kept if r.ratio == top), key=lambda r: r.method):
            out.append(
                BestPruning(
                    base.target,
                    base.algo,
                    base.env_id,
                    base.model,
                    base.return_mean,
                    r.method,
                    top,
                    r.return_pct_of_baseline or math.nan,
                )
            )
    return out


HEADERS = [
    "model",
    "method",
    "return mean ± std",
    "95% CI",
    "% base",
    "n",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "floor µs",
    "step µs",
    "misses",
    "model MB",
    "peak MB",
    "file KB",
    "params",
    "mean abs Δa",
    "energy",
]
"""Latency is the inference call alone (p99.9 needs >= 1000 calls to mean anything); misses counts the
control-rate ticks that overran the env's control period ("–": the job ran back-to-back); floor is the p50 of
the same runtime on a trivial graph of the same shapes, timed in the same loop (an env step between calls):
what no compression can remove; step is one env.step;
model MB is what the model adds to the worker's RSS beyond the runtime's start-up (a weightless graph of the same
I/O, loaded first); peak MB the worker's high-water RSS; mean abs Δa the
action error vs the baseline on held-out observations, measured when the variant was made; energy is net of
idle power, J per episode and µJ per call of the inference-only phase, or "not measured" and why."""


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def cells(row: ReportRow) -> list[str]:
    method = row.method + (f" ({row.params})" if row.params else "")
    pct = f"{row.return_pct_of_baseline:.1f}" if row.return_pct_of_baseline is not None else "–"
    error = f"{row.action_error_mean_abs:.4f}" if row.action_error_mean_abs is not None else "–"
    return [
        f"{row.model} [{row.sha256[:8]}]",
        method,
        f"{row.return_mean:.1f} ± {row.return_std:.1f}",
        f"[{row.return_ci95_low:.1f}, {row.return_ci95_high:.1f}]",
        pct,
        str(row.n_episodes),
        _num(row.latency_p50_us),
        _num(row.latency_p99_us),
        _num(row.latency_p999_us),
        _num(row.floor_p50_us),
        _num(row.env_step_us),
        "–" if row.deadline_misses is None else str(row.deadline_misses),
        _num(row.model_rss_mb),
        _num(row.peak_rss_mb),
        f"{row.file_kb:.1f}",
        str(row.n_params),
        error,
        row.energy,
    ]


BEST_HEADERS = ["algo", "env", "baseline", "baseline return", "best pruning", "ratio", "% base"]


def best_cells(b: BestPruning) -> list[str]:
    return [
        b.algo,
        b.env_id,
        b.baseline,
        f"{b.baseline_return:.1f}",
        b.method,
        f"{b.ratio:.2f}",
        f"{b.return_pct_of_baseline:.1f}",
    ]


def by_target(rows: list[ReportRow]) -> dict[str, list[ReportRow]]:
    groups: dict[str, list[ReportRow]] = {}
    for row in rows:
        groups.setdefault(row.target, []).append(row)
    return groups


def _md_table(headers: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(c) + " |" for c in body),
    ]


def render_markdown(
    rows: list[ReportRow],
    optimise: str = "latency",
    title: str | None = None,
    threshold: float = NOISE_THRESHOLD,
    columns: Sequence[str] | None = None,
) -> str:
    """The answer (verdict lines and compact tables, ``columns`` as the terminal's), the study's tables
    (recommendations, Tables 1-3, per target and side by side), then every measurement, one table per target."""
    from host.report.tables import study_markdown
    from host.report.terminal import DEFAULT_COLUMNS, answer_markdown

    out = [f"# {title}", ""] if title else []
    out += answer_markdown(rows, optimise, threshold, columns or DEFAULT_COLUMNS)
    out += study_markdown(rows, optimise, threshold)
    out += ["# Every measurement", ""]
    for target, group in by_target(rows).items():
        out += [f"## Target `{target}`", ""]
        out += _md_table(HEADERS, [cells(r) for r in group])
        best = best_pruning(group)
        if best:
            out += [
                "",
                f"Best pruning by the study's rule (highest ratio keeping ≥ {KEEP_FRACTION:.0%} of the baseline's return):",
                "",
            ]
            out += _md_table(BEST_HEADERS, [best_cells(b) for b in best])
        out.append("")
    return "\n".join(out)


SAMPLE_FIELDS = (
    "returns",
    "latency_samples_us",
    "seeds",
    "round_ids",
    "round_p50_us",
    "round_p99_us",
    "round_model_mb",
    "round_energy",
    "job_ids",
)
"""Per-episode samples: in the database, not in the CSV (one row per job)."""
CSV_STATS = (
    "variant",
    "return_pct_ci95_low",
    "return_pct_ci95_high",
    "return_vs_baseline",
    "return_p",
    "keeps_90pct",
    "keeps_90pct_p",
    "keeps_90pct_study_rule",
    "latency_p50_ci95_low_us",
    "latency_p50_ci95_high_us",
    "latency_vs_baseline",
    "latency_ratio",
    "latency_p",
    "latency_p_holm",
    "peak_rss_ratio",
    "file_ratio",
    "energy_inference_ratio",
)
"""Columns the CSV adds from the comparison with the baseline (empty for a row whose baseline was not
measured on the same target)."""


def render_csv(rows: list[ReportRow], threshold: float = NOISE_THRESHOLD) -> str:
    from host.report.stats import compare_all

    comparisons = {
        (c.row.target, c.row.sha256, c.row.target_fingerprint, c.row.settings_key): c
        for c in compare_all(rows, threshold)
    }
    fields = [f for f in ReportRow.__dataclass_fields__ if f not in SAMPLE_FIELDS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields + list(CSV_STATS))
    writer.writeheader()
    for row in rows:
        record: dict[str, Any] = {k: getattr(row, k) for k in fields}
        c = comparisons.get((row.target, row.sha256, row.target_fingerprint, row.settings_key))
        if c is not None:
            record |= {
                "variant": c.label,
                "return_pct_ci95_low": c.pct.low,
                "return_pct_ci95_high": c.pct.high,
                "return_vs_baseline": c.verdict.value,
                "return_p": c.return_test.p if c.return_test else None,
                "keeps_90pct": c.keep.verdict.value if not c.is_baseline else "keeps",
                "keeps_90pct_p": c.keep.p,
                "keeps_90pct_study_rule": c.keeps_by_mean,
                "latency_p50_ci95_low_us": c.latency_ci.low,
                "latency_p50_ci95_high_us": c.latency_ci.high,
                "latency_vs_baseline": c.latency.verdict,
                "latency_ratio": c.latency_ratio,
                "latency_p": c.latency.p,
                "latency_p_holm": c.latency.p_adjusted,
                "peak_rss_ratio": c.memory_ratio,
                "file_ratio": c.file_ratio,
                "energy_inference_ratio": c.energy_ratio,
            }
        writer.writerow(record)
    return buffer.getvalue()
