"""The HTML report: self-contained, every plot a decodable image, and rendered by a real browser.

The browser test opens the report in headless Chromium (Debian's ``chromium`` package; `.ci/run` installs
it) with a probe script appended to a copy of the page, and reads back, after the load event, whether
every image decoded with a non-zero size and whether the page fetched anything at all.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from host.cli.main import app
from host.report.analysis import analyse
from host.report.html import render_html
from host.report.plots import cost_plot, cost_span, latency_heatmap, not_measured, pareto_plot, pruning_plot
from host.report.rows import collect_rows
from host.report.stats import compare_all
from host.report.tables import cross_quantization, quantization_table
from host.store.results_db import ResultsDB
from host.store.workspace import Workspace
from tests.conftest import ROOT
from host.store.synthetic import Target, fill

runner = CliRunner()
TARGETS = (Target("gpu0", 120.0, True), Target("pi", 400.0, False))
COMMITTED = ROOT / "docs" / "study" / "zoo.html"
N_IMAGES = 4 + 3 + 1
"""gpu0 (has a meter): pruning, costs, return vs latency, return vs energy; pi: the same but energy; the heat map."""


@pytest.fixture
def results(drlc_home: Path) -> Path:
    with ResultsDB(Workspace.resolve().db_path) as db:
        fill(db, n_policies=2, targets=TARGETS, n_episodes=5)
    return drlc_home


def external_references(html: str) -> list[str]:
    """Every src/href/url() that is not an embedded data: URI or an in-page #anchor."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html) + re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def embedded_pngs(html: str) -> list[Image.Image]:
    images = []
    for encoded in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()
        images.append(image)
    return images


def test_html_report_is_self_contained_with_every_plot(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    made = runner.invoke(app, ["report", "--format", "html", "-o", str(out), "--title", "two devices"])
    assert made.exit_code == 0, made.output
    html = out.read_text()
    assert external_references(html) == []
    assert "<script" not in html and "<link" not in html
    images = embedded_pngs(html)
    # per target: pruning, costs, return vs latency, return vs energy where energy was measured (gpu0, not pi);
    # then the device x variant heat map
    assert len(images) == N_IMAGES
    assert all(im.width > 600 and im.height > 250 for im in images)  # legible at the report's width
    for title in ("Table 1 on gpu0", "Table 2 on pi", "Table 3 on gpu0", "Recommendations side by side"):
        assert title in html
    assert "Table 1 side by side" in html
    assert html.count("energy per inference is not measured on pi") == 1  # said once, in text


def test_plots_leave_out_what_was_not_measured_and_say_it_once(results: Path) -> None:
    with ResultsDB(Workspace.resolve().db_path) as db:
        everything = compare_all(collect_rows(db))
    comparisons = [c for c in everything if c.row.target == "pi"]
    labels = [ax.get_ylabel() for ax in cost_plot(comparisons, "pi").axes]
    assert labels and not any("energy" in label for label in labels)  # no panel that only says "not measured"
    assert any(
        "energy" in ax.get_ylabel()
        for ax in cost_plot([c for c in everything if c.row.target == "gpu0"], "gpu0").axes
    )
    assert pareto_plot(comparisons, "pi", "energy") is None
    missing = not_measured(comparisons, "pi")
    assert len(missing) == 1 and missing[0].startswith("energy per inference is not measured on pi")


def test_plots_read_at_a_glance(results: Path) -> None:
    """Fixed cost scales, a front of variants that keep the return (labelled), one x range for pruning, a heat map
    centred on 1x with "not measured" cells distinct, and Table 1's mean inside its own rounded interval."""

    assert cost_span([1.004, 0.998]) == 1.25 and cost_span([0.7]) == 1.5 and cost_span([0.3, 1.1]) == 4.0
    with ResultsDB(Workspace.resolve().db_path) as db:
        everything = compare_all(collect_rows(db))
    gpu0 = [c for c in everything if c.row.target == "gpu0"]
    for ax in cost_plot(gpu0, "gpu0").axes:
        low, high = ax.get_ylim()
        assert ax.get_yscale() == "log" and low * high == pytest.approx(1.0) and high >= 1.25
    fig = pareto_plot(gpu0, "gpu0", "latency")
    by_label = {c.label: c for c in gpu0 if c.base.model == gpu0[0].base.model}
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_text() in by_label]
    assert labels and all(by_label[lb].keeps_return for lb in labels)
    assert "ptsq" not in labels  # 60 % of the return by construction: never on the front
    assert fig.get_figwidth() * fig.dpi >= 1000
    pruning = pruning_plot(gpu0, "gpu0")
    assert len({ax.get_xlim() for ax in pruning.axes}) == 1
    partial = [c for c in everything if not (c.row.target == "pi" and c.label == "qat")]
    heat = latency_heatmap(partial)
    norm = heat.axes[0].images[0].norm
    assert norm.vmin * norm.vmax == pytest.approx(1.0)
    assert any(t.get_text() == "–" for t in heat.axes[0].texts)  # the missing pi/qat cells say so
    side = cross_quantization(everything, ["gpu0", "pi"])
    assert len(side.rows) == 2 * 6 and all(row[-1].text != "–" and row[-2].text != "–" for row in side.rows)
    table = quantization_table(gpu0, "gpu0")
    for row in table.rows:
        for cell in row[4:]:
            numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", cell.text)]
            if len(numbers) == 3:
                assert numbers[1] <= numbers[0] <= numbers[2], cell.text


def test_report_filters_formats_and_errors(results: Path, tmp_path: Path) -> None:
    md = runner.invoke(app, ["report", "--format", "md", "--target", "pi", "--algo", "sac"])
    assert md.exit_code == 0, md.output
    assert "Study tables on `pi`" in md.output and "gpu0" not in md.output
    assert "Recommendation per policy on pi" in md.output and "Best pruning by the study's rule" in md.output
    csv_text = runner.invoke(app, ["report", "--format", "csv", "--env", "Hopper"]).output
    header, *lines = csv_text.strip().splitlines()
    assert (
        header.startswith("target,model,sha256")
        and "return_vs_baseline" in header
        and "keeps_90pct" in header
    )
    assert len(lines) == 35 * len(TARGETS) and all("Hopper-v5" in line for line in lines)
    energy = runner.invoke(app, ["report", "--format", "md", "--optimise", "energy", "--target", "pi"])
    assert "energy per inference is not measured on pi" in energy.output
    no_file = runner.invoke(app, ["report", "--format", "html"])
    assert no_file.exit_code == 1 and "-o report.html" in no_file.output
    nothing = runner.invoke(app, ["report", "--target", "nowhere"])
    assert nothing.exit_code == 1 and "no results match" in nothing.output and "gpu0" in nothing.output


# ---------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({ok: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
  const fetched = performance.getEntriesByType("resource").map(e => e.name);
  document.body.setAttribute("data-probe", JSON.stringify({images, fetched}));
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    pytest.skip("needs headless Chromium: apt-get install chromium (.ci/run installs it)")


def run_chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def check_in_browser(html: str, tmp_path: Path, name: str) -> dict:
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    done = run_chromium(page, tmp_path, "--dump-dom")
    match = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert match, f"chromium did not run the probe (exit {done.returncode}): {done.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    shot = tmp_path / f"{name}.png"
    run_chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,3000")
    assert shot.is_file()
    with Image.open(shot) as image:
        assert image.size == (1400, 3000)
        assert len(set(image.convert("L").resize((50, 100)).getdata())) > 10  # something was drawn
    return probe


def test_html_report_renders_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with ResultsDB(Workspace.resolve().db_path) as db:
        out.write_text(render_html(analyse(collect_rows(db)), title="browser check"))
    html = out.read_text()
    probe = check_in_browser(html, tmp_path, "synthetic")
    assert len(probe["images"]) == html.count("<img") == N_IMAGES
    assert all(i["ok"] and i["w"] > 0 and i["h"] > 0 for i in probe["images"]), probe["images"]
    assert probe["fetched"] == []  # nothing loaded from anywhere: no broken (or any) references


@pytest.mark.skipif(not COMMITTED.is_file(), reason="docs/study/zoo.html is not in this checkout")
def test_committed_study_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    html = COMMITTED.read_text()
    assert external_references(html) == []
    probe = check_in_browser(html, tmp_path, "zoo")
    assert probe["images"] and all(i["ok"] and i["w"] > 0 and i["h"] > 0 for i in probe["images"])
    assert probe["fetched"] == []
