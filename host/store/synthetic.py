"""A results database filled with made-up but plausible measurements, for report tests and tools/bench_report.py
(a real module so that tools/ need not import tests/).

Rows are written straight into the host's SQLite schema (no agent, no ONNX files), shaped like what a real
deploy stores: a job summary with latency percentiles, memory and (on targets with a meter) energy, and
per-episode returns and median latencies. The effect of each compression method is a fixed fraction of
the baseline's return and latency plus noise, so tests know what the statistics must find.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agent.contract.vocabulary import BASELINE
from host.store.results_db import ResultsDB, now

RATIOS = tuple(round(0.05 * k, 2) for k in range(1, 15))
INT8 = (("ptdq", False), ("ptdq", True), ("ptsq", False), ("ptsq", True), ("qat", False), ("qat", True))


def return_fraction(method: str, ratio: float | None, fp32_first: bool) -> float:
    """The share of the baseline's return a variant keeps, by construction."""
    if method == BASELINE:
        return 1.0
    if ratio is not None:
        return max(0.02, 1.0 - (2.2 if method == "l1" else 1.6) * ratio**2)
    return {"ptdq": 0.97, "ptsq": 0.6, "qat": 0.99}[method] if not fp32_first else 0.995


def latency_fraction(method: str, ratio: float | None) -> float:
    if method == BASELINE:
        return 1.0
    if ratio is not None:
        return 0.35 + 0.65 * (1 - ratio) ** 2
    return {"ptdq": 0.8, "ptsq": 0.9, "qat": 0.7}[method]


@dataclass(frozen=True)
class Target:
    name: str
    latency_scale: float
    """Baseline p50 latency in µs on this device."""
    energy: bool
    """Whether the device has a meter (energy per inference in the summary) or reports none."""


DEFAULT_TARGETS = (
    Target("local", 45.0, False),
    Target("gpu0", 120.0, True),
    Target("rpi5", 400.0, False),
)


def _sha(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def variants() -> list[tuple[str, float | None, bool]]:
    """(method, ratio, fp32_first_layer) of the study's 34 variants plus the baseline."""
    out: list[tuple[str, float | None, bool]] = [(BASELINE, None, False)]
    out += [(m, None, fp32) for m, fp32 in INT8]
    out += [(m, r, False) for m in ("l1", "l2") for r in RATIOS]
    return out


def fill(
    db: ResultsDB,
    n_policies: int = 2,
    targets: tuple[Target, ...] = DEFAULT_TARGETS,
    n_episodes: int = 10,
    seed: int = 0,
    n_rounds: int = 1,
    session: str | None = None,
) -> int:
    """Write ``n_policies`` baselines with the 34 study variants each, measured on every target.

    Returns are paired by seed as a real deploy's are: episode i of every model of a policy shares the
    seed's own difficulty, plus a smaller per-model noise. With ``session`` set, each model gets ``n_rounds``
    profile jobs (rounds 0..n-1 of that session; episodes in round 0 only, as seeded returns repeat), and each
    round's latency carries a drift factor shared by every model of the round, as a machine's load would.
    Without it: one job per model with no session (a database from before sessions).

    :return: the number of jobs written (policies x 35 x targets x rounds)
    """
    rounds = n_rounds if session is not None else 1
    drift = np.random.default_rng(seed + 1).uniform(0.8, 1.25, (len(targets), rounds))
    rng = np.random.default_rng(seed)
    envs = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")
    algos = ("sac", "ppo", "td3", "trpo", "ddpg")
    stamp = now()
    models, jobs, episodes, target_rows = [], [], [], []
    for t in targets:
        info = {
            "hostname": t.name,
            "fingerprint": _sha("fp", t.name)[:32],
            "cpu_model": "synthetic CPU",
            "n_cpu_logical": 4,
        }
        target_rows.append((info["fingerprint"], t.name, json.dumps(info), stamp))
    for p in range(n_policies):
        algo, env = algos[p % len(algos)], envs[p % len(envs)]
        base_name = f"{algo}-{env}-{p}"
        base_sha = _sha("policy", p, seed)
        base_return = float(rng.uniform(1500, 9000))
        spread = base_return * float(rng.uniform(0.005, 0.03))
        seed_effect = rng.normal(0.0, spread, n_episodes)
        for method, ratio, fp32 in variants():
            params: dict[str, object] = {}
            if ratio is not None:
                params["ratio"] = ratio
            if fp32:
                params["fp32_first_layer"] = True
            if method == BASELINE:
                sha, name, parent = base_sha, base_name, None
            else:
                sha = _sha(base_sha, method, ratio, fp32)
                name = (
                    f"{base_name}-{method}"
                    + (f"-{int(ratio * 100):02d}" if ratio else "")
                    + ("-fp32first" if fp32 else "")
                )
                parent = base_sha
            n_params = int(70_000 * ((1 - ratio) ** 2 if ratio else 1.0))
            file_bytes = n_params * (1 if method in ("ptdq", "ptsq", "qat") else 4) + 2000
            manifest = json.dumps({"metrics": {"action_error_mean_abs": 0.0 if method == BASELINE else 0.05}})
            models.append(
                (sha, name, algo, env, method, json.dumps(params, sort_keys=True), parent, f"/synthetic/{name}.onnx",
                 file_bytes, n_params, manifest, stamp, None, None)
            )  # fmt: skip
            keep = return_fraction(method, ratio, fp32)
            speed = latency_fraction(method, ratio)
            for ti, t in enumerate(targets):
                fingerprint = _sha("fp", t.name)[:32]
                returns = keep * (base_return + seed_effect) + rng.normal(0.0, 0.3 * spread, n_episodes)
                for rnd in range(rounds):
                    job_id = f"{sha[:12]}-{t.name}-synthetic" + (f"-{session}-r{rnd}" if session else "")
                    scale = t.latency_scale * speed * float(drift[ti, rnd])
                    p50s = rng.normal(scale, 0.02 * scale, n_episodes).clip(1.0)
                    summary: dict[str, object] = {
                        "n_episodes": n_episodes,
                        "inference": {"p50_ns": float(np.median(p50s)) * 1e3, "p99_ns": float(p50s.max()) * 2e3,
                                      "p999_ns": float(p50s.max()) * 4e3},
                        "env_step": {"mean_ns": 100_000.0},
                        "runtime_floor": {"p50_ns": t.latency_scale * 300.0},
                        "memory": {"rss_before_load_bytes": 98 << 20, "rss_after_load_bytes": (98 << 20) + file_bytes * 3,
                                   "peak_rss_bytes": (110 << 20) + file_bytes * 3},
                        "runtime": {"execution_provider": "CPUExecutionProvider"},
                        "energy_meters": [] if not t.energy else [{"name": "nvml", "available": True}],
                        "wall_s": n_episodes * 0.2,
                    }  # fmt: skip
                    if t.energy:
                        per_inference = 2e-6 * scale * float(rng.normal(1, 0.03))
                        summary["inference_phase"] = {
                            "energy": [{"meter": "nvml", "n_items": 100_000, "net_j_per_item": per_inference}]
                        }
                        summary["energy"] = [
                            {"meter": "nvml", "n_items": n_episodes, "net_j_per_item": per_inference * 1000}
                        ]
                    jobs.append(
                        (job_id, sha, t.name, fingerprint, "synthetic", "{}", "succeeded", json.dumps(summary), None,
                         stamp, stamp, session, rnd if session else None, 0, None)
                    )  # fmt: skip
                    if rnd == 0:
                        episodes += [
                            (job_id, i, i, float(returns[i]), 1000, 0, float(p50s[i]) * 1e3, float(p50s[i]) * 2e3,
                             100_000.0, 0.2, None)
                            for i in range(n_episodes)
                        ]  # fmt: skip
    with db.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO targets VALUES (?,?,?,?)", target_rows)
        conn.executemany("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", models)
        conn.executemany(
            "INSERT OR REPLACE INTO jobs (job_id, model_sha256, target, target_fingerprint, settings_key, request,"
            " state, summary, error, created_at, finished_at, session_id, round, spoiled, validity)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            jobs,
        )
        conn.executemany("INSERT OR REPLACE INTO episodes VALUES (?,?,?,?,?,?,?,?,?,?,?)", episodes)
    return len(jobs)


def make_db(path: Path, **kwargs: object) -> ResultsDB:
    db = ResultsDB(path)
    fill(db, **kwargs)  # type: ignore[arg-type]
    return db
