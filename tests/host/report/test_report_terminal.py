"""The terminal report through the real CLI: the answer first, 80 columns, no cut cell, the same words in
every format, and an exit status a CI job can gate on."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import app
from host.report.recommend import headline, recommend
from host.report.rows import collect_rows
from host.report.stats import compare_all
from host.report.terminal import COLUMNS, DEFAULT_COLUMNS, layout, wrap
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from host.store.synthetic import Target, fill

TARGETS = (Target("gpu0", 120.0, True), Target("pi", 400.0, False))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two policies, every study variant, two devices, five timing rounds of one session."""
    path = tmp_path_factory.mktemp("report-terminal") / "home"
    with ResultsDB(Workspace.resolve(path).db_path) as db:
        fill(db, n_policies=2, targets=TARGETS, n_episodes=10, n_rounds=5, session="s1")
    return path


def report(home: Path, *args: str, columns: int = 80) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", "--home", str(home), *args], env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


def check_fits(text: str, width: int = 80) -> None:
    assert "…" not in text and "Traceback" not in text
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, too_long


def unwrap(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def headlines(home: Path) -> dict[tuple[str, str], str]:
    code, out = report(home, "-f", "json")
    assert code == 0, out
    return {(r["policy"], r["target"]): r["headline"] for r in json.loads(out)["recommendations"]}


def test_the_answer_comes_first_in_80_columns_with_no_cut_cell(home: Path) -> None:
    code, out = report(home)
    assert code == 0, out
    check_fits(out)
    intro, verdicts, *tables = out.split("\n\n")
    assert intro.startswith("drlc report: 2 policies on 2 devices; optimising p50 latency")
    # one verdict per (policy, device), before any table, each the JSON's headline word for word
    lines = headlines(home)
    assert len(lines) == 4
    for (policy, target), line in lines.items():
        assert f"{policy} on {target}: {line}" in unwrap(verdicts)
    assert "use sac-HalfCheetah-v5-0-" in unwrap(verdicts)  # the model to type, whole
    # then a compact table per (policy, device) with every variant and the few columns that decide
    first = tables[0].splitlines()
    assert re.match(r"\S+ on gpu0: baseline return [\d.]+ ± [\d.]+ \(10 episodes\)", unwrap(tables[0]))
    header = next(line for line in first if line.startswith("variant"))
    assert header.split() == ["variant", "id", "return", "%", "p50", "×", "size", "×", "memory", "×"]
    rows = first[first.index(header) + 1 : first.index(header) + 36]  # the baseline and its 34 variants
    assert first[first.index(header) + 36].startswith("Highest pruning")
    assert any(re.search(r"ptsq\s+\w{8}\s+\d+\.\d falls short\s+0\.\d\d× faster", r) for r in rows), rows
    assert any(re.search(r"qat\s+\w{8}\s+\d+\.\d keeps\s+0\.\d\d× faster", r) for r in rows), rows
    # and Table 3 in a line: the synthetic returns keep 90 % up to l1 20 % and l2 25 % by construction
    assert re.search(
        r"Highest pruning shown to keep 90% of the return: l1 (15|20)%, l2 (20|25)%", unwrap(out)
    )


def test_wide_and_chosen_columns(home: Path) -> None:
    code, wide = report(home, "--wide", columns=400)
    assert code == 0 and "…" not in wide
    header = next(line for line in wide.splitlines() if line.startswith("variant"))
    for column in COLUMNS.values():
        assert column.header in header
    assert "sac-HalfCheetah-v5-0-l2-35" in wide  # the full names, uncut
    code, chosen = report(home, "--columns", "variant,model,p99")
    assert code == 0, chosen
    check_fits(chosen)
    header = next(line for line in chosen.splitlines() if line.startswith("variant"))
    assert header.split() == ["variant", "model", "p99", "×"]
    code, md = report(home, "-f", "md", "--columns", "variant,model,p99")
    assert code == 0 and "| variant | model | p99 × |" in md  # the same columns in every format
    code, typo = report(home, "--columns", "variant,latncy")
    assert code == 1 and "Traceback" not in typo
    assert "unknown column latncy" in typo and all(name in typo for name in COLUMNS)


def test_a_label_wider_than_its_column_gets_a_line_of_its_own() -> None:
    headers = ["variant", "id", "return %"]
    long = "ptsq fp32-1st (calibration=entropy, per_channel, finetune_steps=2000)"
    out = layout(
        headers, [["ptdq", "abcdef12", "99.1 keeps"], [long, "12345678", "98.0 keeps"]], [False] * 3, 40
    )
    assert long in out and max(len(line) for line in out if line != long) <= 40
    assert out[out.index(long) + 1].split() == ["12345678", "98.0", "keeps"]
    name = "a-policy-name-that-is-longer-than-the-whole-line-of-this-narrow-terminal"
    assert name in wrap(f"use {name} (l2 30%): 1.8× faster", 30)  # never broken inside a name
    assert set(DEFAULT_COLUMNS) <= set(COLUMNS)


def test_compare_two_devices_stacked_at_80_and_side_by_side_when_wide(home: Path) -> None:
    code, out = report(home, "--compare", "gpu0,pi", "--baseline", "sac-HalfCheetah-v5-0")
    assert code == 0, out
    check_fits(out)
    lines = headlines(home)
    for target in ("gpu0", "pi"):
        assert f"{target}: {lines[('sac-HalfCheetah-v5-0', target)]}" in unwrap(out)
    header = next(line for line in out.splitlines() if line.startswith("variant"))
    assert header.split()[:2] == ["variant", "device"]  # stacked: one line per device
    ptsq = out.splitlines().index(next(line for line in out.splitlines() if line.startswith("ptsq ")))
    assert " gpu0 " in out.splitlines()[ptsq] and " pi " in out.splitlines()[ptsq + 1]
    code, wide = report(home, "--compare", "gpu0,pi", "--baseline", "sac-HalfCheetah-v5-0", columns=160)
    assert code == 0
    check_fits(wide, 160)
    header = next(line for line in wide.splitlines() if line.startswith("variant"))
    assert "p50 × gpu0" in header and "p50 × pi" in header  # side by side
    code, bad = report(home, "--compare", "gpu0,nowhere")
    assert code == 1 and "not measured: nowhere" in bad and "measured: gpu0, pi" in bad


def test_markdown_and_html_say_the_same_as_the_terminal(home: Path, tmp_path: Path) -> None:
    lines = headlines(home)
    code, md = report(home, "-f", "md", "--title", "Nightly gate")
    assert code == 0 and md.startswith("# Nightly gate")
    page = tmp_path / "r.html"
    code, _ = report(home, "-f", "html", "-o", str(page), "--title", "Nightly gate")
    assert code == 0
    text = page.read_text()
    assert "<title>Nightly gate</title>" in text
    for (policy, target), line in lines.items():
        assert f"**{policy} on {target}**: {line}" in md
        assert html.escape(line) in text
    code, out = report(home, "--title", "Nightly gate")
    assert out.startswith("Nightly gate: 2 policies")
    code, js = report(home, "-f", "json", "--title", "Nightly gate")
    assert json.loads(js)["title"] == "Nightly gate"


def test_optimise_is_honoured_in_the_terminal(home: Path) -> None:
    code, out = report(home, "--optimise", "size")
    assert code == 0 and "optimising file size" in unwrap(out)
    verdicts = out.split("\n\n")[1]
    assert "smaller" in verdicts and "faster" not in verdicts  # the smallest that keeps the return
    code, energy = report(home, "--optimise", "energy", "--target", "pi")
    assert code == 0 and "energy per inference is not measured on pi" in unwrap(energy)


def test_exit_status_gates_a_ci_job(home: Path) -> None:
    code, out = report(home, "--require-keeps", "sac-HalfCheetah-v5-0-ptsq")
    assert code == 3 and "gate failed" in out and "falls short" in out
    code, out = report(
        home, "--require-keeps", "sac-HalfCheetah-v5-0-qat", "--require-keeps", "ppo-Hopper-v5-1-l2-10"
    )
    assert code == 0, out
    code, out = report(home, "--require-keeps", "no-such-model")
    assert code == 1 and "no variant of that name" in out and "Traceback" not in out


def test_the_verdict_line_says_why_the_baseline_is_kept(tmp_path: Path) -> None:
    """Variants measured before deploy sessions keep the return but get no latency verdict: the line names the
    best of them, what it gains (size) and why it is not recommended; with only losers, it counts them."""

    home = tmp_path / "home"
    with ResultsDB(Workspace.resolve(home).db_path) as db:
        fill(db, n_policies=1, targets=(Target("local", 45.0, False),), n_episodes=10)
        rows = collect_rows(db)
    code, out = report(home)
    assert code == 0 and "…" not in out
    line = unwrap(out.split("\n\n")[1])
    assert re.search(
        r"keep the baseline: \S.* keeps the return and is [\d.]+× smaller, but is not faster here "
        r"\(p50 latency: undecided, [-+]\d+%: measured before deploy sessions",
        line,
    ), line
    comparisons = compare_all(rows)
    losers = [c for c in comparisons if c.is_baseline or c.label == "ptsq"]
    assert headline(recommend(losers)) == (
        "keep the baseline: no variant is shown to keep 90% of the return (1 fall short, 0 undecided)"
    )


def test_an_older_measurement_is_left_out_and_said(tmp_path: Path) -> None:
    """A workspace whose baselines were measured twice under different settings (a real SQLite file): the report
    shows the newest measurement once per policy and says how many rows it left out; --all-measurements shows
    both, each compared with its own baseline."""
    home = tmp_path / "home"
    target = (Target("local", 45.0, False),)
    with ResultsDB(Workspace.resolve(home).db_path) as db:
        fill(db, n_policies=1, targets=target, n_episodes=5, n_rounds=3, session="s-old")
        db.conn.execute(
            "UPDATE jobs SET settings_key = settings_key || '|older-protocol', finished_at = '2020-01-01T00:00:00'"
        )
        db.conn.commit()
        fill(db, n_policies=1, targets=target, n_episodes=5, n_rounds=3, session="s-new")
    code, newest = report(home)
    assert code == 0, newest
    assert newest.count("on local: baseline return") == 1
    assert "35 rows from older measurements of these baselines" in newest and "--all-measurements" in newest
    code, everything = report(home, "--all-measurements")
    assert code == 0, everything
    assert everything.count("on local: baseline return") == 2 and "older measurements" not in everything
