"""The terminal report, made for an 80-column terminal: the answer first, then the few columns that decide.

Layout, top to bottom:

1. one verdict line per (policy, device), :func:`host.report.recommend.headline` (the same sentence the Markdown
   and HTML reports show);
2. per (policy, device), a compact table: variant, id (sha256 prefix), return % of the baseline with its
   non-inferiority verdict, p50 latency × the baseline's with its verdict, file size ×, model memory ×.
   ``--wide`` shows every column of :data:`COLUMNS`, ``--columns a,b,c`` a chosen few.

No cell is ever cut: text that does not fit is wrapped between words (verdict lines) or, for a variant label
wider than its column, put on a line of its own above the rest of its row. A model's full name is long
(``ppo-InvertedPendulum-v5-l2-30``); the compact table shows its ``id`` instead, the sha256 prefix that every
command accepts in place of the name, and the verdict line names the recommended model in full.

``--compare local,gpu0`` shows one policy's variants on several devices: side by side when that fits the
width, else stacked (one line per device under each variant).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from host.decision import KEEP_FRACTION
from host.errors import DrlcError
from host.report.analysis import Analysis
from host.report.op_breakdown import baseline_line, breakdown, estimate_note, floor_text, why_line
from host.report.recommend import Recommendation, headline
from host.report.rows import ReportRow
from host.report.stats import (
    OBJECTIVE_TEXT,
    Comparison,
    PruningLimit,
    group,
    pruning_limits,
)

WIDTH = 80
"""The width the report is laid out for when nothing says otherwise (a pipe, a file)."""
GAP = "  "


class ColumnError(DrlcError):
    """--columns names a column that does not exist."""


def terminal_width() -> int:
    """$COLUMNS when set (a CI log, or to check what an 80-column terminal shows), else the terminal's width,
    else :data:`WIDTH`."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((WIDTH, 24)).columns
    return WIDTH


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------


def _ratio(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}×" if math.isfinite(value) else "–"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def return_cell(c: Comparison) -> str:
    """% of the baseline's mean return and the non-inferiority verdict: "98.1 keeps", "13.0 falls short"."""
    if c.is_baseline:
        return "100"
    return f"{_num(c.pct.value)} {c.keep.verdict.value}"


def metric_cell(c: Comparison, objective: str, verdict: bool = True) -> str:
    """Variant / baseline on one objective with its verdict word: "0.55× faster", "1.01× within noise"."""
    if c.is_baseline:
        return "1.00×"
    m = c.metrics[objective]
    return _ratio(m.ratio) + (f" {m.verdict}" if verdict else "")


@dataclass(frozen=True)
class Column:
    name: str
    """What ``--columns`` takes."""
    header: str
    cell: Callable[[Comparison], str]
    right: bool
    """Right-aligned (numbers)."""
    help: str


COLUMNS: dict[str, Column] = {
    col.name: col
    for col in (
        Column("variant", "variant", lambda c: c.label, False, "short label: ptdq, ptsq fp32-1st, l2 30%"),
        Column(
            "id", "id", lambda c: c.row.sha256[:8], False, "sha256 prefix; any command takes it as the name"
        ),
        Column("model", "model", lambda c: c.row.model, False, "the model's full name"),
        Column("return", "return %", return_cell, False, "% of the baseline's return; keeps 90 %?"),
        Column(
            "return-ci",
            "95 % CI",
            lambda c: (
                "–"
                if c.is_baseline or not math.isfinite(c.pct.low)
                else f"[{c.pct.low:.1f}, {c.pct.high:.1f}]"
            ),
            True,
            "two-sided 95 % CI of the return %, Fieller, paired by seed",
        ),
        Column(
            "return-abs",
            "return",
            lambda c: f"{c.row.return_mean:.1f} ± {c.row.return_std:.1f}",
            True,
            "mean return ± sd over the episodes",
        ),
        Column("episodes", "n", lambda c: str(c.row.n_episodes), True, "episodes"),
        Column("latency", "p50 ×", lambda c: metric_cell(c, "latency"), False, "p50 latency × baseline"),
        Column("p50", "p50 µs", lambda c: _num(c.row.latency_p50_us), True, "p50 inference latency, µs"),
        Column("p99", "p99 ×", lambda c: metric_cell(c, "p99"), False, "p99 latency × baseline"),
        Column("p99-us", "p99 µs", lambda c: _num(c.row.latency_p99_us), True, "p99 inference latency, µs"),
        Column("size", "size ×", lambda c: metric_cell(c, "size", False), True, "file bytes × baseline"),
        Column("file-kb", "file KB", lambda c: f"{c.row.file_kb:.1f}", True, "the ONNX file's size"),
        Column(
            "memory", "memory ×", lambda c: metric_cell(c, "memory", False), True, "model memory × baseline"
        ),
        Column(
            "memory-verdict",
            "memory",
            lambda c: "–" if c.is_baseline else c.metrics["memory"].verdict,
            False,
            "model memory's verdict: smaller, larger, within noise, undecided",
        ),
        Column("model-mb", "model MB", lambda c: _num(c.row.model_rss_mb), True, "RSS the model adds"),
        Column("peak-mb", "peak MB", lambda c: _num(c.row.peak_rss_mb), True, "worker's peak RSS"),
        Column(
            "energy", "energy ×", lambda c: metric_cell(c, "energy"), False, "energy per inference × base"
        ),
        Column(
            "energy-uj",
            "µJ/inf",
            lambda c: _num(None if c.row.energy_inference_j is None else c.row.energy_inference_j * 1e6, 2),
            True,
            "net µJ per inference",
        ),
        Column("params", "params", lambda c: str(c.row.n_params), True, "the actor's parameters"),
        Column(
            "action-error",
            "mean |Δa|",
            lambda c: "–" if c.row.action_error_mean_abs is None else f"{c.row.action_error_mean_abs:.4f}",
            True,
            "action error vs the baseline, held-out observations",
        ),
        Column("rounds", "rounds", lambda c: str(len(c.row.round_ids)), True, "timing rounds of the session"),
    )
}
"""Every column the terminal report can show, in the order ``--wide`` shows them."""
DEFAULT_COLUMNS = ("variant", "id", "return", "latency", "size", "memory")
"""The few columns that decide, which fit 80 columns."""


def parse_columns(text: str | None, wide: bool) -> tuple[str, ...]:
    """The columns to show: ``--columns a,b,c`` (in that order), all with ``--wide``, else the defaults."""
    if text:
        names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in COLUMNS]
        if unknown or not names:
            raise ColumnError(
                f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown) or '(none given)'}; "
                f"valid: {', '.join(COLUMNS)}"
            )
        return names
    return tuple(COLUMNS) if wide else DEFAULT_COLUMNS


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def layout(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool], width: int
) -> list[str]:
    """A plain-text table, never cutting a cell. When it is wider than ``width`` because of the first column,
    that column is narrowed and a first cell wider than it goes on a line of its own above its row."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    rest = sum(widths[1:]) + len(GAP) * (len(widths) - 1)
    if widths[0] + rest > width:
        widths[0] = max(len(headers[0]), min(widths[0], width - rest))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return GAP.join(parts).rstrip()

    out = [line(headers)]
    for r in rows:
        if len(r[0]) > widths[0]:
            out.append(r[0])
            out.append(line(["", *r[1:]]))
        else:
            out.append(line(r))
    return out


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Between words only: a name is never broken, even one longer than the width."""
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _hanging(text: str, width: int) -> list[str]:
    """A sentence under a list heading: first line indented 2, the rest 4, never a word cut."""
    return textwrap.wrap(
        text,
        width=width,
        initial_indent="  ",
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _family_title(base: ReportRow) -> str:
    rounds = len(base.round_ids)
    return (
        f"{base.model} on {base.target}: baseline return {base.return_mean:.1f} ± {base.return_std:.1f} "
        f"({base.n_episodes} episodes), p50 {_num(base.latency_p50_us)} µs, "
        f"{rounds} timing round{'s' if rounds != 1 else ''}"
    )


def _pruning_line(limit: PruningLimit | None) -> str:
    if limit is None:
        return ""
    tested = ", ".join(f"{m} {'none' if r is None else f'{r * 100:.0f}%'}" for m, r in limit.by_test.items())
    means = ", ".join(f"{m} {r * 100:.0f}%" for m, r, _ in limit.by_mean) or "none"
    return (
        f"Highest pruning shown to keep {KEEP_FRACTION:.0%} of the return: {tested} (the study's rule on means: "
        f"{means})."
    )


WHY_TITLE = "Where the time goes (operator profile, µs per call):"


def why_lines(family: Sequence[Comparison]) -> tuple[str, ...]:
    """The baseline's call, then per variant why it is faster or slower than the baseline: the kernel groups that
    changed most, the kernel part's change, what lies outside every kernel, and the runtime floor's share (the part
    no compression removes). Only models with an operator profile, beside a baseline with one."""
    base = next((c for c in family if c.is_baseline), None)
    base_bd = breakdown(base.row.op_profile) if base else None
    if base is None or base_bd is None:
        return ()
    out = [estimate_note(base_bd.overhead_us)] if base_bd.overhead_us > 0 else []
    for c in family:
        floor = floor_text(c.row.latency_p50_us, c.row.floor_p50_us)
        if c.is_baseline:
            out.append(baseline_line(c.label, base_bd, floor))
        elif (bd := breakdown(c.row.op_profile)) is not None:
            latency = c.metrics.get("latency")
            verdict, ratio = (latency.verdict, latency.ratio) if latency else ("not compared", math.nan)
            out.append(why_line(c.label, verdict, ratio, bd, base_bd, floor))
    return tuple(out)


def verdict_lines(recs: Sequence[Recommendation], width: int) -> list[str]:
    out = []
    for r in recs:
        out += wrap(f"{r.base.model} on {r.target}:", width)
        out += wrap(headline(r), width, "  ")
    return out


@dataclass(frozen=True)
class Family:
    """One (policy, device): its compact table, as the terminal, Markdown and HTML reports show it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]
    pruning: str = ""
    """Table 3 in a line: the highest pruning ratio shown to keep the return, and the study's rule on means."""
    why: tuple[str, ...] = ()
    """Where the time goes, one sentence per model with an operator profile (:func:`why_lines`)."""


@dataclass(frozen=True)
class Answer:
    """What every format of the report shows first: the verdict lines, then a compact table per family."""

    intro: str
    recommendations: list[Recommendation]
    families: list[Family]
    footnote: str


def answer(
    analysis: Analysis, columns: Sequence[str] = DEFAULT_COLUMNS, title: str = "drlc report"
) -> Answer:
    rows, objective, threshold = analysis.rows, analysis.optimise, analysis.threshold
    comparisons, recs = analysis.comparisons, analysis.recommendations
    n_targets = len({r.target for r in rows})
    n_policies = len({r.base.sha256 for r in recs})
    intro = (
        f"{title}: {n_policies} polic{'ies' if n_policies != 1 else 'y'} on {n_targets} "
        f"device{'s' if n_targets != 1 else ''}; optimising {OBJECTIVE_TEXT[objective.value]}, ±{threshold:.0%} "
        "noise threshold (README: How drlc decides)"
    )
    chosen = [COLUMNS[n] for n in columns]
    limits = {(lim.target, lim.base.sha256): lim for lim in pruning_limits(comparisons)}
    families = []
    for g in group(comparisons).values():
        base = next((c for c in g if c.is_baseline), None)
        if base is None:
            continue
        families.append(
            Family(
                _family_title(base.row),
                [c.header for c in chosen],
                [[col.cell(c) for col in chosen] for c in g],
                [c.right for c in chosen],
                _pruning_line(limits.get((base.row.target, base.row.sha256))),
                why_lines(g),
            )
        )
    notes = []
    unpaired = len(rows) - len(comparisons)
    if unpaired:
        notes.append(
            f"{unpaired} measured model{'s' if unpaired != 1 else ''} not shown: no baseline measured the same "
            "way (same device, settings and agent runtime) to compare with; -f csv lists every measurement."
        )
    notes.append(
        f"return %: keeps / falls short / undecided = {KEEP_FRACTION:.0%} of the baseline's return shown kept / "
        "shown lost / neither yet; p50 ×: faster / slower / within noise / undecided; id: the sha256 prefix, "
        "usable as the name."
    )
    return Answer(intro, recs, families, " ".join(notes))


TERMINAL_HINT = (
    "More: --wide, --columns variant,model,p99 (a typo lists them all), --compare DEVICE,DEVICE, "
    "-f html -o report.html (plots)."
)


def render_terminal(
    analysis: Analysis,
    width: int = WIDTH,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    title: str = "drlc report",
) -> str:
    """The whole terminal report as text (see the module docstring)."""
    a = answer(analysis, columns, title)
    out = wrap(a.intro, width)
    out.append("")
    out += verdict_lines(a.recommendations, width)
    for f in a.families:
        out.append("")
        out += wrap(f.title, width)
        out += layout(f.headers, f.rows, f.right, width)
        if f.pruning:
            out += wrap(f.pruning, width)
        if f.why:
            out += wrap(WHY_TITLE, width)
            for sentence in f.why:
                out += _hanging(sentence, width)
    out.append("")
    out += wrap(a.footnote + " " + TERMINAL_HINT, width)
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def answer_markdown(analysis: Analysis, columns: Sequence[str] = DEFAULT_COLUMNS) -> list[str]:
    """The answer in Markdown: the same verdict lines and compact tables as the terminal's."""
    a = answer(analysis, columns)
    out = ["## The answer", "", a.intro, ""]
    out += [f"- **{r.base.model} on {r.target}**: {headline(r)}" for r in a.recommendations]
    for f in a.families:
        out += ["", f"**{f.title}**", ""]
        out.append("| " + " | ".join(f.headers) + " |")
        out.append("|" + "|".join("---:" if r else "---" for r in f.right) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in f.rows]
        if f.pruning:
            out += ["", f.pruning]
        if f.why:
            out += ["", WHY_TITLE, ""] + [f"- {w}" for w in f.why]
    out += ["", a.footnote, ""]
    return out


# ---------------------------------------------------------------------------------------------
# --compare
# ---------------------------------------------------------------------------------------------

COMPARE_CELLS: tuple[tuple[str, Callable[[Comparison], str], bool], ...] = (
    ("return %", return_cell, False),
    ("p50 ×", lambda c: metric_cell(c, "latency"), False),
    ("p50 µs", lambda c: _num(c.row.latency_p50_us), True),
)


def render_compare(analysis: Analysis, targets: Sequence[str], width: int = WIDTH) -> str:
    """One policy's variants on several devices: the recommendation per device, then per variant its return
    and latency on each device, side by side when that fits ``width``, else one line per device."""
    measured = analysis.targets
    lower = {t.lower(): t for t in measured}
    unknown = [t for t in targets if t.lower() not in lower]
    if unknown or len(targets) < 2:
        raise ColumnError(
            "--compare needs two or more measured devices, comma-separated; "
            + (f"not measured: {', '.join(unknown)}; " if unknown else "")
            + f"measured: {', '.join(measured)}"
        )
    devices = [lower[t.lower()] for t in targets]
    comparisons = [c for c in analysis.comparisons if c.row.target in devices]
    recs = [r for r in analysis.recommendations if r.target in devices]
    by_policy: dict[str, dict[str, list[Comparison]]] = {}
    for (target, _), g in group(comparisons).items():
        base = next((c for c in g if c.is_baseline), None)
        if base is not None:
            by_policy.setdefault(base.row.sha256, {})[target] = g
    out: list[str] = []
    for sha, per_device in by_policy.items():
        name = next(iter(per_device.values()))[0].base.model
        if out:
            out.append("")
        out += wrap(
            f"{name} on {', '.join(devices)} (optimising {OBJECTIVE_TEXT[analysis.optimise.value]})", width
        )
        for d in devices:
            rec = next((r for r in recs if r.base.sha256 == sha and r.target == d), None)
            out += wrap(f"{d}: " + (headline(rec) if rec else "not measured"), width, "  ")
        labels = list(dict.fromkeys(c.label for d in devices for c in per_device.get(d, [])))
        cell_of: dict[tuple[str, str], Comparison] = {
            (d, c.label): c for d in devices for c in per_device.get(d, [])
        }

        def cells(d: str, label: str, cell_of: dict[tuple[str, str], Comparison] = cell_of) -> list[str]:
            c = cell_of.get((d, label))
            return [f(c) if c else "not measured" for _, f, _ in COMPARE_CELLS]

        side_headers = ["variant"] + [f"{h} {d}" for d in devices for h, _, _ in COMPARE_CELLS]
        side_rows = [[label] + [x for d in devices for x in cells(d, label)] for label in labels]
        right = [False] + [r for _ in devices for _, _, r in COMPARE_CELLS]
        side = layout(side_headers, side_rows, right, width)
        out.append("")
        if max(len(line) for line in side) <= width:
            out += side
            continue
        stacked_rows = []
        for label in labels:
            for i, d in enumerate(devices):
                stacked_rows.append([label if i == 0 else "", d, *cells(d, label)])
        out += layout(
            ["variant", "device", *(h for h, _, _ in COMPARE_CELLS)],
            stacked_rows,
            [False, False, *(r for _, _, r in COMPARE_CELLS)],
            width,
        )
    if not by_policy:
        out.append("no policy has its baseline measured on these devices")
    return "\n".join(out) + "\n"
