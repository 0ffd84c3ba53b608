"""The operator profile end to end: a real local agent profiles a policy and its PTDQ variant, the host stores
the profiles in its database, and the report explains the variant's latency through the real CLI."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_agent.measure.providers import TENSORRT, provider_options
from device_agent.contract.settings import MeasurementSettings
from host.store.artifacts import store_artifact
from host.cli.main import app
from host.measure.deploy import DeployConfig, latency_round_settings, profile_settings
from host.measure.profiles import load_profile
from host.report.op_breakdown import Breakdown, breakdown, floor_text, group_deltas, why_line
from host.report.rows import collect_rows
from host.store.results_db import SCHEMA, ResultsDB
from host.store.workspace import Workspace
from host.policies.random_policies import random_policy

runner = CliRunner()


def test_deploy_with_op_profile_then_the_why_line(drlc_home) -> None:
    workspace = Workspace.resolve()
    data, _, manifest = random_policy("HalfCheetah-v5", hidden=(64, 64), name="cheetah")
    with ResultsDB(workspace.db_path) as db:
        store_artifact(workspace, db, data, manifest)
    made = runner.invoke(app, ["compress", "cheetah", "--method", "ptdq"])
    assert made.exit_code == 0, made.output
    args = ["deploy", "--target", "local", "--episodes", "2", "--max-steps", "100", "--warmup-calls", "20"]
    args += ["--rounds", "2", "--round-calls", "100", "--spoiled-retries", "0", "--op-profile"]
    args += ["--op-profile-calls", "300"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(workspace.db_path)
    rows = conn.execute("SELECT round, op_profile IS NOT NULL FROM jobs ORDER BY round").fetchall()
    assert sorted(rows) == [(0, 1), (0, 1), (1, 0), (1, 0)]  # round 0 alone is profiled
    with ResultsDB(workspace.db_path) as db:
        job_ids = [r[0] for r in conn.execute("SELECT job_id FROM jobs WHERE round = 0")]
        profiles = [db.op_profile(j) for j in job_ids]
    assert all(p and not p.get("error") for p in profiles)
    types = [{t["name"] for t in p["op_types"]} for p in profiles]
    assert any("DynamicQuantizeMatMul" in t for t in types) and any("FusedGemm" in t for t in types)
    # the summary column does not carry the profile twice
    assert all('"op_profile":' not in s for (s,) in conn.execute("SELECT summary FROM jobs"))

    # the floor is timed in round 0 alone: the report finds it there, whichever round came last

    with ResultsDB(workspace.db_path) as db:
        assert all(row.floor_p50_us > 0 for row in collect_rows(db))

    report = runner.invoke(app, ["report"], env={"COLUMNS": "80"})
    assert report.exit_code == 0, report.output
    lines = report.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(line.strip() for line in lines)
    assert "Where the time goes (operator profile, µs per call):" in text
    # PTDQ runs 3 DynamicQuantizeMatMul, 2 Relu and a Tanh where the baseline runs 3 FusedGemm
    assert "(+3 kernels)" in text and "the kernel part" in text and "the runtime around them" in text
    assert "less the profiler's own" in text  # the estimate is labelled as one

    html = runner.invoke(app, ["report", "-f", "html", "-o", str(drlc_home / "r.html")])
    assert html.exit_code == 0, html.output
    page = (drlc_home / "r.html").read_text()
    assert "where the time of an inference call goes" in page and "(+3 kernels)" in page


def _profile(ops: dict[str, float], call: float) -> dict:
    kernel = sum(ops.values())
    return {
        "op_types": [{"name": k, "mean_us": v} for k, v in ops.items()],
        "kernel_per_call_us": kernel,
        "outside_kernels_us": call - kernel,
        "wall_per_call_us": call,
    }


def test_why_line_names_the_planted_causes() -> None:
    """The issue's hand profile of SAC HalfCheetah: fp32 is one FusedGemm chain; PTDQ is DynamicQuantizeMatMul
    with Relu and Tanh run apart."""
    base = breakdown(_profile({"FusedGemm": 13.3}, 40.0))
    ptdq = breakdown(_profile({"DynamicQuantizeMatMul": 14.9, "Relu": 5.4, "Tanh": 2.9}, 50.0))
    assert isinstance(base, Breakdown) and isinstance(ptdq, Breakdown)
    assert base.fused and not ptdq.fused
    deltas = dict(group_deltas(ptdq, base))
    assert deltas["dynamic quantization"] == 14.9
    assert math.isclose(deltas["unfused activations"], 8.3)
    assert deltas["gemm"] == -13.3
    line = why_line("ptdq", "slower", 1.25, ptdq, base, floor_text(50.0, 20.0))
    assert line.startswith(
        "ptdq 1.25× slower: dynamic quantization +14.9 µs, gemm −13.3 µs, unfused activations"
    )
    assert "the kernel part grew 74% (13.3 → 23.2 µs)" in line
    assert "runtime floor 20.0 µs = 40% of the call" in line
    # a faster variant reads as faster, by the factor the tables show
    pruned = breakdown(_profile({"FusedGemm": 8.8}, 34.0))
    assert pruned is not None
    faster = why_line("l2-50", "faster", 0.85, pruned, base)
    assert faster.startswith("l2-50 1.18× faster: gemm −4.5 µs") and "shrank 34%" in faster
    # within noise: no factor claimed; not compared (no clean timing round): no number at all
    assert why_line("l2-10", "within noise", 0.99, pruned, base).startswith("l2-10 p50 0.99× the baseline's")
    assert why_line("l2-10", "undecided", math.nan, pruned, base).startswith("l2-10 (p50 undecided): gemm")


def test_no_profile_or_a_failed_one_gives_no_breakdown() -> None:
    assert breakdown(None) is None
    assert breakdown({"error": "the operator profile failed: x", "op_types": []}) is None
    assert floor_text(math.nan, 3.0) is None and floor_text(10.0, 0.0) is None
    assert (
        floor_text(11.3, 23.8) == "runtime floor 23.8 µs, not below the call's 11.3 µs: a noisy floor round"
    )


def test_jetson_profiles_tensorrt_options_reach_the_provider(tmp_path) -> None:
    """profiles/jetson-orin.toml with TensorRT first: the host sends its trt_* options, the agent reads them off
    the wire and builds TensorrtExecutionProvider's options with its own cache directory (no GPU here: this is
    the boundary; what InferenceSession does with them needs a Jetson)."""

    profile = load_profile(Path(__file__).resolve().parents[3] / "profiles" / "jetson-orin.toml")
    from device_agent.contract.settings import settings_from_proto

    profile = profile.model_copy(update={"execution_providers": [TENSORRT, "CPUExecutionProvider"]})
    wire = profile_settings(profile, DeployConfig(op_profile_calls=500))
    assert wire.trt_engine_cache and wire.HasField("trt_fp16") and wire.op_profile_calls == 500
    settings = settings_from_proto(wire, MeasurementSettings())
    providers, options = provider_options(settings, tmp_path / "agent-cache")
    assert providers[0] == TENSORRT
    assert options[0]["trt_engine_cache_enable"] == "True"
    assert options[0]["trt_engine_cache_path"] == str(tmp_path / "agent-cache")
    assert "trt_fp16_enable" not in options[0] and "trt_int8_enable" not in options[0]
    # later rounds are latency only: no operator profile, the same provider options
    later = latency_round_settings(wire, 100)
    assert not later.HasField("op_profile_calls") and later.trt_engine_cache
    # a deploy without the profile leaves the field unset, so its settings key is what it was before
    assert not profile_settings(profile, DeployConfig()).HasField("op_profile_calls")
    assert not profile_settings(profile, DeployConfig(op_profile_calls=0)).HasField("op_profile_calls")


def test_the_profilers_cost_per_kernel_is_taken_off_each_node() -> None:
    """Planted: every kernel reads 2.5 µs more than its work under the profiler. Taken off node by node, never
    below zero, the PTDQ graph's three extra nodes stop looking like 7.5 µs of extra work."""
    base = {
        **_profile({"FusedGemm": 3 * 4.5}, 40.0),
        "kernel_overhead_us": 2.5,
        "nodes": [{"name": f"g{i}", "op_type": "FusedGemm", "trimmed_us": 4.5} for i in range(3)],
    }
    nodes = [{"name": f"q{i}", "op_type": "DynamicQuantizeMatMul", "trimmed_us": 5.0} for i in range(3)]
    nodes += [
        {"name": "r0", "op_type": "Relu", "trimmed_us": 2.7},
        {"name": "r1", "op_type": "Relu", "trimmed_us": 2.0},
    ]
    ptdq = {**_profile({"DynamicQuantizeMatMul": 15.0, "Relu": 4.7}, 50.0), "kernel_overhead_us": 2.5}
    ptdq["nodes"] = nodes
    b, v = breakdown(base), breakdown(ptdq)
    assert b is not None and v is not None
    assert b.kernel_us == 6.0 and math.isclose(v.kernel_us, 7.5 + 0.2)
    assert dict(v.op_types)["Relu"] == pytest.approx(0.2)  # 0.2 + max(2.0 - 2.5, 0)
    line = why_line("ptdq", "slower", 1.02, v, b)
    assert line.startswith("ptdq 1.02× slower: dynamic quantization +7.5 µs, gemm −6.0 µs (+2 kernels)")
    # without a measured overhead the figures stay as profiled
    assert breakdown({**base, "kernel_overhead_us": 0.0}).kernel_us == 13.5


def test_a_database_from_before_gets_the_op_profile_column(tmp_path) -> None:
    """A results database made before op profiles existed opens, gains the column, and keeps its jobs."""

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace(",\n    op_profile         TEXT", ""))
    assert "op_profile" not in {r[1] for r in old.execute("PRAGMA table_info(jobs)")}
    old.close()
    with ResultsDB(path) as db:
        columns = {r[1] for r in db.conn.execute("PRAGMA table_info(jobs)")}
        assert "op_profile" in columns
        assert db.op_profile("no-such-job") is None
