"""One self-contained HTML report: the study's tables and the plots, embedded as base64 PNG.

The file references nothing outside itself (no scripts, fonts, style sheets or images from anywhere),
so it can be mailed, committed or opened offline; every table cell's tooltip carries the figures and
the tests behind it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from host.decision import ALPHA, KEEP_FRACTION, NOISE_THRESHOLD
from host.report import plots
from host.report.analysis import Analysis
from host.report.recommend import headline
from host.report.stats import OBJECTIVE_TEXT, Comparison
from host.report.tables import Cell, Table, measurement_table
from host.report.terminal import DEFAULT_COLUMNS, WHY_TITLE, answer

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1500px;
       padding: 0 16px; color: #1b1b1b; }
h1 { font-size: 26px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 12.5px; }
th, td { border: 1px solid #d4d4d4; padding: 3px 6px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better { background: #e3f4e1; } td.worse { background: #fbe6e4; }
td.drop { font-style: italic; color: #777; } td.pick { font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
p.note { font-size: 12px; color: #555; max-width: 1100px; margin: 2px 0 12px; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; max-width: 1100px; }
nav ul { columns: 2; font-size: 13px; } details summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
.meta { color: #555; font-size: 13px; }
ul.verdicts li { margin: 3px 0; } summary.family { font-weight: 600; margin: 10px 0 0; }
"""


OPEN_ROWS = 12
"""A compact table of "The answer" with more rows than this (a sweep) starts folded: the verdict lines come first."""
MAX_MEASUREMENT_ROWS = 500
"""Rows per target of the "every measurement" table; a report is for reading, the CSV holds everything."""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(table: Table, heading: bool = True) -> str:
    parts = [f'<h3 id="{_e(table.anchor)}">{_e(table.title)}</h3>' if heading else ""]
    parts.append('<div class="scroll"><table><thead><tr>')
    parts += [f"<th>{_e(h)}</th>" for h in table.headers]
    parts.append("</tr></thead><tbody>")
    for row in table.rows:
        parts.append("<tr>")
        for c in row:
            cls = f' class="{_e(c.css)}"' if c.css else ""
            title = f' title="{_e(c.title)}"' if c.title else ""
            parts.append(f"<td{cls}{title}>{_e(c.text)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    if table.note:
        parts.append(f'<p class="note">{_e(table.note)}</p>')
    return "".join(parts)


def figure_html(data: bytes | None, alt: str, caption: str) -> str:
    if data is None:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


PLOT_KINDS = ("pruning", "cost", "pareto-latency", "pareto-energy", "op-profile")
"""The plots of each target, in the order the report shows them."""


def figure_text(kind: str, target: str) -> tuple[str, str]:
    """(alt text, caption) of one of a target's plots."""
    if kind == "pruning":
        return (
            f"return against pruning ratio on {target}",
            f"Return (% of the baseline on {target}, 95 % CI band) against the pruning ratio for L1 and L2; the "
            f"dashed line is {KEEP_FRACTION:.0%} of the baseline's return. Filled points are shown to keep the return "
            f"(one-sided 95 % lower limit ≥ {KEEP_FRACTION:.0%} of the baseline's), hollow ones are not.",
        )
    if kind == "cost":
        return (
            f"latency, energy and memory relative to the baseline on {target}",
            "Latency (p50), energy per inference, peak resident memory, the memory the model adds and the file size "
            "of every variant, as a multiple of its baseline's on the same device, on a log scale with a fixed range "
            "(never narrower than 0.8× to 1.25×); the grey band is the noise threshold. A cost not measured on this "
            "device has no panel (said below the plots).",
        )
    if kind == "op-profile":
        return (
            f"where the time of an inference call goes on {target}",
            f"Operator profile on {target} (ONNX Runtime's profiler, taken after the timed phases in a worker of its "
            "own): each model's timed call (p50) in µs, split into its kernels' work by op group (trimmed means, less "
            "the profiler's own cost per kernel as its do-nothing floor kernels read it: estimates), then the rest "
            "of the call, the runtime around the kernels (hatched); each variant under its baseline. The black tick "
            "is the runtime floor (p50 of a weightless graph of the same I/O in the same loop): the part of the call "
            "no compression removes.",
        )
    metric = kind.removeprefix("pareto-")
    return (
        f"return against {metric} on {target}",
        f"Return against {'p50 latency' if metric == 'latency' else 'energy per inference'} on {target}: among "
        f"the variants shown to keep {KEEP_FRACTION:.0%} of the return (and the baseline), one is on the Pareto "
        "front (circled, labelled, joined by the step line) when no other is both cheaper and better; variants "
        "not shown to keep the return are faint and never on the front.",
    )


def target_figures(
    comparisons: Sequence[Comparison], target: str, threshold: float = NOISE_THRESHOLD
) -> dict[str, bytes | None]:
    """PNG bytes of each of a target's plots (None: nothing to plot), by kind."""
    comps = [c for c in comparisons if c.row.target == target]
    figures = {
        "pruning": plots.pruning_plot(comps, target),
        "cost": plots.cost_plot(comps, target, threshold),
        "pareto-latency": plots.pareto_plot(comps, target, "latency"),
        "pareto-energy": plots.pareto_plot(comps, target, "energy"),
        "op-profile": plots.op_profile_plot(comps, target),
    }
    return {kind: None if fig is None else plots.png(fig) for kind, fig in figures.items()}


def devices_html(devices: dict[str, dict[str, Any]]) -> str:
    if not devices:
        return ""
    rows = []
    for target, info in devices.items():
        versions = info.get("versions", {})
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{_e(v)}</td>"
                for v in (
                    target,
                    info.get("hostname", ""),
                    info.get("cpu_model", ""),
                    info.get("n_cpu_logical", ""),
                    f"{int(info.get('memory_total_bytes', 0) or 0) / 2**30:.1f} GiB",
                    ", ".join(info.get("execution_providers", [])),
                    ", ".join(
                        f"{k} {v}" for k, v in sorted(versions.items()) if k in ("onnxruntime", "mujoco")
                    ),
                )
            )
            + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("target", "host", "CPU", "logical CPUs", "memory", "providers", "versions")
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def answer_html(analysis: Analysis, columns: Sequence[str] | None = None) -> str:
    """The verdict lines and the compact table per (policy, device): the same as the terminal report's."""
    a = answer(analysis, columns or DEFAULT_COLUMNS)
    parts = ['<h2 id="answer">The answer</h2><ul class="verdicts">']
    parts += [
        f"<li><b>{_e(r.base.model)} on {_e(r.target)}</b>: {_e(headline(r))}</li>" for r in a.recommendations
    ]
    parts.append("</ul>")
    for f in a.families:
        table = Table(f.title, f.headers)
        table.rows = [
            [Cell(text, css="num" if right else "") for text, right in zip(row, f.right, strict=True)]
            for row in f.rows
        ]
        opened = " open" if len(f.rows) <= OPEN_ROWS else ""
        parts.append(
            f'<details{opened}><summary class="family">{_e(f.title)}</summary>{table_html(table, heading=False)}'
            + (f'<p class="note">{_e(f.pruning)}</p>' if f.pruning else "")
            + (
                f'<p class="note">{_e(WHY_TITLE)}</p><ul class="verdicts">'
                + "".join(f"<li>{_e(w)}</li>" for w in f.why)
                + "</ul>"
                if f.why
                else ""
            )
            + "</details>"
        )
    parts.append(f'<p class="note">{_e(a.footnote)}</p>')
    return "".join(parts)


def render_html(
    analysis: Analysis,
    title: str = "drlc report",
    description: str = "",
    devices: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """The whole report as one HTML string.

    :param devices: target name -> the device info its agent reported (``ResultsDB.device_info``)
    :param progress: called with the name of each plot as it is drawn (plots take most of the time)
    :param columns: the compact tables' columns (``--columns``/``--wide``; default: the terminal's)
    """
    note = progress or (lambda _: None)
    rows, optimise, threshold = analysis.rows, analysis.optimise, analysis.threshold
    tables = analysis.tables
    n_policies = len({r.baseline_sha256 for r in rows})
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body: list[str] = [f"<h1>{_e(title)}</h1>"]
    if description:
        body.append(f"<p>{_e(description)}</p>")
    body.append(
        f'<p class="meta">{len(rows)} measured models, {n_policies} polic{"ies" if n_policies != 1 else "y"}, {len(tables.targets)} '
        f"target{'s' if len(tables.targets) != 1 else ''} ({_e(', '.join(tables.targets))}); generated {generated} "
        f"by drlc-host report.</p>"
    )
    body.append(answer_html(analysis, columns))
    toc = [
        '<nav><ul><li><a href="#answer">The answer</a></li><li><a href="#how">How to read this report</a></li>'
    ]
    toc += [f'<li><a href="#target-{_e(t)}">Target {_e(t)}</a></li>' for t in tables.targets]
    if len(tables.targets) > 1:
        toc.append('<li><a href="#across">Across devices</a></li>')
    toc.append(
        '<li><a href="#heatmap">Latency heat map</a></li><li><a href="#all">Every measurement</a></li></ul></nav>'
    )
    body += toc
    body.append(
        f'<h2 id="how">How to read this report</h2><p>Every variant is compared with its own baseline measured on '
        f"the same device fingerprint, settings and agent runtime. Returns are a percentage of the baseline's with a "
        f"95 % confidence interval (Fieller, episodes paired by seed). A variant <b>keeps the return</b> only when "
        f"the one-sided 95 % lower limit of that ratio is at least {KEEP_FRACTION:.0%} (non-inferiority); it "
        f"<b>falls short</b> when the upper limit is below it, and is <b>undecided</b> otherwise (cells not shown to "
        f"keep are in grey italics). The marks ▲ / ▼ / = are Welch's two-sided test at {ALPHA:.0%}, for reading "
        f"only. Latency, p99, memory and energy are compared round against round within one deploy session (paired "
        f"t on log ratios, Holm's correction across the variants of a baseline; effects and CIs 20 % trimmed over "
        f"rounds); a change within ±{threshold:.0%} is <b>within noise</b> whatever its p-value, and one whose CI "
        f"reaches across ±{threshold:.0%} is said to be on the edge. The recommendation per policy and device "
        f"is the best {OBJECTIVE_TEXT[optimise.value]} among the variants shown to keep the return that beat the "
        f"baseline beyond the threshold and significantly; otherwise the baseline, with the reason. Energy "
        f"compares readings of one meter and scope only. Hover over a cell for its figures and p-values.</p>"
    )
    if devices:
        body.append("<h3>Devices</h3>" + devices_html(devices))

    for t in tables.targets:
        body.append(f'<h2 id="target-{_e(t)}">Target {_e(t)}</h2>')
        for table in tables.per_target[t]:
            body.append(table_html(table))
        note(f"plots of {t}")
        figures = target_figures(tables.comparisons, t, threshold)
        for kind in PLOT_KINDS:
            alt, caption = figure_text(kind, t)
            body.append(figure_html(figures[kind], alt, caption))
        missing = plots.not_measured([c for c in tables.comparisons if c.row.target == t], t)
        if missing:
            body.append(f'<p class="note">Not plotted: {_e("; ".join(missing))}.</p>')

    if tables.cross:
        body.append('<h2 id="across">Across devices</h2>')
        for table in tables.cross:
            if table.anchor == "cross-t2":
                body.append(
                    f"<details><summary>{_e(table.title)}</summary>{table_html(table, heading=False)}</details>"
                )
            else:
                body.append(table_html(table))
    note("heat map")
    body.append('<h2 id="heatmap">Latency heat map</h2>')
    body.append(
        figure_html(
            None if (heat := plots.latency_heatmap(tables.comparisons)) is None else plots.png(heat),
            "device by variant latency heat map",
            "Every variant (columns) on every device and policy (rows): colour is its p50 latency relative to the "
            "baseline's on the same device (diverging around 1×: blue faster, red slower; the scale is fixed at "
            "±2×, or ±4× when a change is larger), the text its p50 in µs; hatched grey cells were not measured.",
        )
        or "<p>No latency measurements.</p>"
    )
    body.append('<h2 id="all">Every measurement</h2>')
    for t in tables.targets:
        comps = [c for c in tables.comparisons if c.row.target == t]
        table = measurement_table(comps[:MAX_MEASUREMENT_ROWS], t)
        more = (
            f"; the first {MAX_MEASUREMENT_ROWS} are shown, `drlc-host report --format csv` has them all"
            if len(comps) > MAX_MEASUREMENT_ROWS
            else ""
        )
        body.append(
            f"<details><summary>{_e(table.title)} ({len(comps)} rows{_e(more)})</summary>"
            f"{table_html(table, heading=False)}</details>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )
