"""The report's plots, drawn with matplotlib's object API (no pyplot state, no display); :func:`png` encodes one.

Per target:

- :func:`pruning_plot`: return (% of the baseline, 95 % CI band) against the pruning ratio, one panel per
  pruning method measured, on one shared x range, one line per policy, with the 90 % line;
- :func:`cost_plot`: p50 latency, energy per inference, peak memory, the memory the model adds and file size of
  every variant as a multiple of its baseline's on the same target, on a log scale with a fixed range
  (:func:`cost_span`: never narrower than 0.8x-1.25x, so noise looks as small as it is) and the noise band;
- :func:`pareto_plot`: return against latency (or energy per inference), one panel per policy; the Pareto front
  is drawn among the variants shown to keep the return only, its points labelled.

Across targets, :func:`latency_heatmap`: device x variant, on a diverging scale centred on 1x (fixed at 2x or
4x either way), annotated with the p50 in µs; a cell not measured is hatched grey with "–", never white.

A quantity not measured (energy on a device without a meter) gets no panel and no figure: :func:`not_measured`
says so once, in words, for the report's text; no zero is ever drawn for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from device_agent.contract.vocabulary import BASELINE, METHODS, PRUNING_METHODS
from host.report.op_breakdown import breakdown
from host.decision import KEEP_FRACTION
from host.report.stats import Comparison, group, label_sort_key

DPI = 96
DPI_MANY = 80
"""Plots that summarise many policies (beyond MAX_LEGEND) are drawn a little coarser: a 10 000-result report
has dozens of them."""
MAX_PANELS = 12
"""Small multiples per figure; a target with more policies plots the first ones and says so."""
MAX_LEGEND = 12
MAX_HEATMAP_ROWS = 60
"""Beyond this many (policy, target) rows the heat map shows each target's median over policies."""
METHOD_MARKERS = dict(zip(METHODS, ("*", "o", "s", "D", "^", "v", "P", "X"), strict=False))
"""A marker per method, in the vocabulary's order (the baseline a star)."""
METHOD_COLOURS = dict(
    zip(
        METHODS,
        ("#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"),
        strict=False,
    )
)
"""A colour per method, in the vocabulary's order (the baseline black)."""


def png(fig: Figure) -> bytes:
    """PNG bytes of ``fig``. Margins are set in inches by each plot (:func:`_margins`) rather than by
    ``bbox_inches="tight"``, which draws every figure twice: a third of a 10 000-result report's time."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi="figure", pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def _margins(
    fig: Figure,
    left: float = 0.8,
    right: float = 0.2,
    bottom: float = 0.6,
    top: float = 0.45,
    wspace: float = 0.2,
    hspace: float = 0.2,
) -> None:
    """Figure margins in inches (subplot spacing as matplotlib's fractions of the axes size)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )


def _colours(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _groups(comparisons: Sequence[Comparison]) -> list[list[Comparison]]:
    return [g for g in group(comparisons).values() if any(c.is_baseline for c in g)]


def _no_data(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10, color="#444", transform=ax.transAxes
    )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#bbb")


def _why_not(energy_text: str) -> str:
    """': no meter on this device' from the energy column's "not measured (no meter on this device)"."""
    detail = energy_text.removeprefix("not measured").strip().strip("()")
    return f": {detail}" if detail else " (the device reported no energy reading)"


def _pruning_curve(g: list[Comparison], method: str) -> list[Comparison]:
    pts = sorted(
        (c for c in g if c.row.method == method and c.row.ratio is not None), key=lambda c: c.row.ratio or 0
    )
    return pts if pts and all(math.isfinite(c.pct.value) for c in pts) else []


def pruning_plot(comparisons: Sequence[Comparison], target: str) -> Figure | None:
    """Return (% of baseline, CI band) against pruning ratio, one panel per pruning method measured, on one
    shared x range; beyond MAX_LEGEND policies, every policy's curve thin and the median across policies with its
    interquartile band (per-policy CIs are in the tables)."""
    groups = [g for g in _groups(comparisons) if any(c.row.method in PRUNING_METHODS for c in g)]
    methods = [m for m in PRUNING_METHODS if any(_pruning_curve(g, m) for g in groups)]
    if not groups or not methods:
        return None
    many = len(groups) > MAX_LEGEND
    fig = Figure(figsize=(max(9.0, 5.5 * len(methods) + 0.8), 4.2), dpi=DPI_MANY if many else DPI)
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharey=True, sharex=True, squeeze=False)).ravel()
    _margins(fig, wspace=0.06)
    colours = _colours(len(groups))
    lows, highs = [0.0], [110.0]
    x_max = max(100 * (c.row.ratio or 0) for g in groups for m in methods for c in _pruning_curve(g, m))
    for ax, method in zip(axes, methods, strict=True):
        curves = []
        for colour, g in zip(colours, groups, strict=True):
            pts = _pruning_curve(g, method)
            if not pts:
                continue
            x = np.array([0.0] + [100 * (c.row.ratio or 0) for c in pts])
            y = np.array([100.0] + [c.pct.value for c in pts])
            lows.append(float(np.nanmin(y)))
            highs.append(float(np.nanmax(y)))
            if many:
                curves.append(np.column_stack([x, y]))
                continue
            lo = np.array([100.0] + [c.pct.low if math.isfinite(c.pct.low) else c.pct.value for c in pts])
            hi = np.array([100.0] + [c.pct.high if math.isfinite(c.pct.high) else c.pct.value for c in pts])
            ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0)
            ax.plot(x, y, color=colour, linewidth=1.4, label=g[0].base.model)
            keep = np.array([c.keeps_return for c in pts])
            ax.scatter(x[1:][keep], y[1:][keep], color=colour, s=16, zorder=3)
            ax.scatter(x[1:][~keep], y[1:][~keep], facecolors="white", edgecolors=colour, s=16, zorder=3)
            lows.append(float(np.nanmin(lo)))
            highs.append(float(np.nanmax(hi)))
        if many and curves:
            _median_band(ax, curves)
        ax.axhline(100, color="#555", linewidth=0.8)
        ax.axhline(100 * KEEP_FRACTION, color="#c00", linestyle="--", linewidth=1.0)
        ax.annotate(
            f"{KEEP_FRACTION:.0%} of baseline",
            (0, 100 * KEEP_FRACTION),
            xycoords=("axes fraction", "data"),
            xytext=(4, -3),
            textcoords="offset points",
            color="#c00",
            fontsize=8,
            va="top",
        )
        ax.set_title(f"{method.upper()} pruning on {target}" + (f" ({len(curves)} policies)" if many else ""))
        ax.set_xlabel("pruning ratio per hidden layer (%)")
        ax.grid(alpha=0.3)
    axes[0].set_xlim(0, x_max * 1.03 + 0.5)
    axes[0].set_ylabel("return, % of baseline" + ("" if many else " (95 % CI band)"))
    axes[0].set_ylim(max(min(lows), -50.0) - 5, min(max(highs), 160.0) + 5)  # outliers may leave the frame
    if not many:
        axes[-1].legend(fontsize=8, loc="lower left")
    return fig


def _median_band(ax: Axes, curves: list[np.ndarray]) -> None:
    """Every curve thin (one LineCollection), the median across them bold and their interquartile band."""
    ax.add_collection(LineCollection(curves, colors="#7a7a7a", linewidths=0.6, alpha=0.35))
    xs = sorted({float(x) for c in curves for x in c[:, 0]})
    columns = [[float(c[c[:, 0] == x, 1][0]) for c in curves if np.any(c[:, 0] == x)] for x in xs]
    q1, med, q3 = (np.array([np.percentile(col, q) for col in columns]) for q in (25, 50, 75))
    ax.fill_between(xs, q1, q3, color="#1f77b4", alpha=0.25, linewidth=0, label="interquartile range")
    ax.plot(xs, med, color="#1f77b4", linewidth=2.0, label="median over policies")
    ax.legend(fontsize=8, loc="lower left")


COST_PANELS = (
    ("latency_ratio", "p50 latency"),
    ("energy_ratio", "energy per inference"),
    ("memory_ratio", "peak memory (RSS)"),
    ("model_mb_ratio", "memory the model adds"),
    ("file_ratio", "file size"),
)
COST_SPANS = (1.25, 1.5, 2.0, 4.0, 10.0, 25.0)
"""The y range of a cost panel is [1/s, s] (log scale) for the first of these that holds every point: never
narrower than ±25 %, so a 0.5 % change in memory looks as small as it is."""


COST_TICKS = {
    1.25: (0.8, 0.9, 1.0, 1.1, 1.25),
    1.5: (0.67, 0.8, 1.0, 1.25, 1.5),
    2.0: (0.5, 0.67, 1.0, 1.5, 2.0),
    4.0: (0.25, 0.5, 1.0, 2.0, 4.0),
    10.0: (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0),
    25.0: (0.04, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 25.0),
}


def cost_span(values: Sequence[float]) -> float:
    """The first of :data:`COST_SPANS` whose [1/s, s] holds every value (with a little room), else the last."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    widest = max((max(v, 1 / v) for v in finite), default=1.0) * 1.05
    return next((s for s in COST_SPANS if widest <= s), COST_SPANS[-1])


def not_measured(comparisons: Sequence[Comparison], target: str) -> list[str]:
    """What a target's plots leave out because it was not measured there, in words (said once, in the text)."""
    variants = [c for g in _groups(comparisons) for c in g if not c.is_baseline]
    out = []
    for attr, name in COST_PANELS:
        if variants and not any(_finite(getattr(c, attr)) for c in variants):
            why = _why_not(variants[0].row.energy) if attr == "energy_ratio" else ""
            out.append(f"{name} is not measured on {target}{why}")
    return out


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def cost_plot(comparisons: Sequence[Comparison], target: str, threshold: float = 0.05) -> Figure | None:
    """Each measured cost of each variant as a multiple of its baseline's, on a log scale with a fixed range
    (:func:`cost_span`) and the ±threshold noise band shaded; one colour per policy, or beyond MAX_LEGEND
    policies all in grey with the median per variant. Costs not measured get no panel (:func:`not_measured`)."""
    groups = _groups(comparisons)
    variants = [c for g in groups for c in g if not c.is_baseline]
    if not variants:
        return None
    panels = [(a, n) for a, n in COST_PANELS if any(_finite(getattr(c, a)) for c in variants)]
    if not panels:
        return None
    many = len(groups) > MAX_LEGEND
    labels = sorted({c.label for c in variants}, key=label_sort_key)
    index = {label: i for i, label in enumerate(labels)}
    upright = len(labels) <= 8
    fig = Figure(
        figsize=(max(9.0, 0.28 * len(labels) + 2), 1.9 * len(panels) + 0.6), dpi=DPI_MANY if many else DPI
    )
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True, squeeze=False)).ravel()
    longest = max(len(label) for label in labels)
    _margins(
        fig,
        left=1.25,
        bottom=0.5 if upright else 0.25 + 0.075 * longest,
        top=0.85 if not many else 0.5,
        hspace=0.15,
    )
    colours = _colours(len(groups))
    offsets = np.linspace(-0.2, 0.2, len(groups)) if len(groups) > 1 else np.zeros(1)
    for ax, (attr, name) in zip(axes, panels, strict=True):
        series = []
        for k, g in enumerate(groups):
            pts = [(index[c.label] + offsets[k], getattr(c, attr)) for c in g if not c.is_baseline]
            series.append([(x, y) for x, y in pts if _finite(y) and y > 0])
        span = cost_span([y for pts in series for _, y in pts])
        ax.set_yscale("log")
        ax.set_ylim(1 / span, span)
        ax.axhspan(1 - threshold, 1 + threshold, color="#999", alpha=0.18, linewidth=0)
        ax.axhline(1.0, color="#555", linewidth=0.8)
        ticks = COST_TICKS[span]
        ax.set_yticks(ticks, labels=[f"{t:g}×" for t in ticks])
        ax.minorticks_off()
        ax.set_ylabel(f"{name}\n× baseline", fontsize=8)
        ax.tick_params(labelsize=7)
        if many:
            _spread(ax, [p for pts in series for p in pts])
            ax.set_ylim(1 / span, span)
        else:
            for colour, g, pts in zip(colours, groups, series, strict=True):
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.scatter(xs, ys, color=colour, s=16, label=g[0].base.model, zorder=3)
        ax.grid(alpha=0.3, axis="x")
    axes[-1].set_xticks(range(len(labels)))
    axes[-1].set_xticklabels(labels, rotation=0 if upright else 90, fontsize=8 if upright else 7)
    axes[-1].set_xlim(-0.6, len(labels) - 0.4)
    title = (
        f"Cost of every variant × its baseline's on {target} (log scale; grey band: ±{threshold:.0%} noise)"
    )
    fig.suptitle(title + (f"; {len(groups)} policies: median, IQR, range" if many else ""), fontsize=10)
    if not many:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            fontsize=7,
            ncols=min(len(groups), 4),
            loc="upper center",
            bbox_to_anchor=(0.5, 1 - 0.35 / fig.get_size_inches()[1]),
            frameon=False,
        )
    return fig


def _spread(ax: Axes, points: list[tuple[float, float]]) -> None:
    """Per variant (x rounded to its column): min-max thin, interquartile range thick, the median as a tick."""
    per_label: dict[int, list[float]] = {}
    for x, y in points:
        per_label.setdefault(round(x), []).append(y)
    xs = sorted(per_label)
    q = np.array([np.percentile(per_label[x], [0, 25, 50, 75, 100]) for x in xs])
    ax.add_collection(LineCollection([[(x, a), (x, b)] for x, a, b in zip(xs, q[:, 0], q[:, 4], strict=True)],
                                     colors="#9a9a9a", linewidths=0.8))  # fmt: skip
    ax.add_collection(LineCollection([[(x, a), (x, b)] for x, a, b in zip(xs, q[:, 1], q[:, 3], strict=True)],
                                     colors="#1f77b4", linewidths=4, alpha=0.5))  # fmt: skip
    ax.plot(xs, q[:, 2], linestyle="none", marker="_", markersize=9, markeredgewidth=2, color="#0b3d91")
    ax.update_datalim(np.column_stack([np.repeat(xs, 2), np.concatenate([q[:, 0], q[:, 4]])]))
    ax.autoscale_view()


MAX_LABELLED = 8
"""A Pareto panel with at most this many points labels each; beyond it, the points on the front only."""
LABEL_OFFSETS = ((10, 16), (10, -22), (-40, 30), (14, -40), (-50, -30), (18, 40))
"""Where the labels of consecutive points on a Pareto front go (points), staggered so neighbours do not collide."""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both: lower x (cost) and higher y (return). Sorted by x."""
    front: list[tuple[float, float]] = []
    best_y = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best_y:
            front.append((x, y))
            best_y = y
    return front


def _cost(c: Comparison, metric: str) -> float | None:
    """p50 µs, or µJ per inference (None when not measured)."""
    if metric == "latency":
        return c.row.latency_p50_us if math.isfinite(c.row.latency_p50_us) else None
    return None if c.row.energy_inference_j is None else c.row.energy_inference_j * 1e6


def pareto_plot(comparisons: Sequence[Comparison], target: str, metric: str = "latency") -> Figure | None:
    """Return (% of baseline) against p50 latency (µs) or energy per inference (µJ): one panel per policy, or
    beyond MAX_PANELS policies one panel with every variant's cost relative to its baseline's. The Pareto front
    is drawn among the variants shown to keep the return (and the baseline) only, each point on it labelled;
    the rest are drawn faint. None when the cost was not measured (:func:`not_measured` says so once)."""
    groups = [g for g in _groups(comparisons) if len(g) > 1]
    if not groups or not any(_cost(c, metric) is not None for g in groups for c in g):
        return None
    unit = "p50 latency (µs)" if metric == "latency" else "energy per inference (µJ)"
    if len(groups) > MAX_PANELS:
        return _pooled_pareto(groups, target, metric)
    cols = min(2, len(groups))
    rows_n = math.ceil(len(groups) / cols)
    width = 11.0 if cols == 1 else 6.0 * cols
    fig = Figure(figsize=(width, (4.6 if cols == 1 else 4.0) * rows_n + 0.5), dpi=DPI)
    axes = np.atleast_1d(fig.subplots(rows_n, cols, squeeze=False)).ravel()
    _margins(fig, left=0.7, right=0.3, bottom=0.55, top=0.6, wspace=0.18, hspace=0.4)
    for ax, g in zip(axes, groups, strict=False):
        pts = [(c, _cost(c, metric)) for c in g]
        pts = [(c, x) for c, x in pts if x is not None and math.isfinite(c.pct.value)]
        if not pts:  # this policy has no variant with both a cost and a return here
            ax.set_title(g[0].base.model, fontsize=10)
            ax.text(0.5, 0.5, "no variant with both figures", ha="center", transform=ax.transAxes, fontsize=8)
            ax.set_axis_off()
            continue
        for method, marker in METHOD_MARKERS.items():
            for kept in (True, False):
                sel = [(x, c.pct.value) for c, x in pts if c.row.method == method and c.keeps_return is kept]
                if not sel:
                    continue
                xs, ys = zip(*sel, strict=True)
                size = 90 if method == BASELINE else 30
                ax.scatter(
                    xs,
                    ys,
                    marker=marker,
                    color=METHOD_COLOURS[method],
                    s=size,
                    alpha=1.0 if kept else 0.3,
                    label=method
                    if kept or not any(c.row.method == method and c.keeps_return for c, _ in pts)
                    else None,
                    zorder=3,
                )
        kept_pts = [(c, x) for c, x in pts if c.keeps_return]
        front = pareto_front([(x, c.pct.value) for c, x in kept_pts])
        if front:
            fx, fy = zip(*front, strict=True)
            ax.step(
                fx, fy, where="post", color="#333", linewidth=1.0, alpha=0.7, label="Pareto front (keeps)"
            )
            ax.scatter(fx, fy, facecolors="none", edgecolors="#000", s=110, linewidths=0.9, zorder=4)
            on_front = [(c, x) for c, x in kept_pts if (x, c.pct.value) in set(front)]
            # few points: every one labelled; many: the front's (the others are in the tables)
            named = pts if len(pts) <= MAX_LABELLED else on_front
            for k, (c, x) in enumerate(sorted(named, key=lambda p: p[1])):
                ax.annotate(
                    c.label,
                    (x, c.pct.value),
                    xytext=LABEL_OFFSETS[k % len(LABEL_OFFSETS)],
                    textcoords="offset points",
                    fontsize=8,
                    color="#111",
                    zorder=5,
                    arrowprops={"arrowstyle": "-", "color": "#777", "linewidth": 0.6},
                    bbox={
                        "boxstyle": "round,pad=0.15",
                        "facecolor": "white",
                        "edgecolor": "none",
                        "alpha": 0.8,
                    },
                )
        ax.axhline(100 * KEEP_FRACTION, color="#c00", linestyle="--", linewidth=0.9)
        ax.set_title(g[0].base.model, fontsize=10)
        ax.set_xlabel(unit, fontsize=9)
        ax.set_ylabel("return, % of baseline", fontsize=9)
        # the chart is about the variants near the baseline's return: those far below are counted, not drawn
        floor = min([100 * KEEP_FRACTION - 20] + [y - 5 for _, y in front])
        high = max([c.pct.value for c, _ in pts] + [100.0])
        ax.set_ylim(floor, min(high, 300.0) + 12)
        below = sum(c.pct.value < floor for c, _ in pts)
        if below:
            ax.text(
                0.99,
                0.02,
                f"{below} variant{'s' if below != 1 else ''} below {floor:.0f} % not drawn",
                transform=ax.transAxes,
                ha="right",
                fontsize=7,
                color="#555",
            )
        xs_all = [x for _, x in pts]
        pad = 0.08 * (max(xs_all) - min(xs_all) or max(xs_all))
        ax.set_xlim(min(xs_all) - pad, max(xs_all) + 2 * pad)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left", ncols=2)
    fig.suptitle(
        f"Return against {unit} on {target}: labelled, the Pareto front of the variants shown to keep the "
        "return; faint: not shown to keep it",
        fontsize=10,
    )
    return fig


def _pooled_pareto(groups: list[list[Comparison]], target: str, metric: str) -> Figure:
    fig = Figure(figsize=(9, 5), dpi=DPI_MANY)
    ax = fig.subplots()
    _margins(fig)
    on_front: list[tuple[float, float]] = []
    by_method: dict[str, list[tuple[float, float]]] = {}
    for g in groups:
        base_cost = next((_cost(c, metric) for c in g if c.is_baseline), None)
        if not base_cost:
            continue
        pts = [(c, _cost(c, metric)) for c in g]
        pts = [(c, x / base_cost) for c, x in pts if x is not None and math.isfinite(c.pct.value)]
        for c, x in pts:
            by_method.setdefault(c.row.method, []).append((x, c.pct.value))
        front = set(pareto_front([(x, c.pct.value) for c, x in pts if c.keeps_return]))
        on_front += [(x, c.pct.value) for c, x in pts if (x, c.pct.value) in front and not c.is_baseline]
    for method, marker in METHOD_MARKERS.items():
        if method in by_method and method != BASELINE:
            xs, ys = zip(*by_method[method], strict=True)
            ax.scatter(xs, ys, marker=marker, color=METHOD_COLOURS[method], s=10, alpha=0.5, label=method)
    if on_front:
        fx, fy = zip(*on_front, strict=True)
        ax.scatter(
            fx, fy, facecolors="none", edgecolors="#000", s=40, linewidths=0.6, label="on its policy's front"
        )
    ax.axhline(100 * KEEP_FRACTION, color="#c00", linestyle="--", linewidth=0.9)
    ax.axvline(1.0, color="#555", linewidth=0.8)
    ax.set_xlabel(f"{'p50 latency' if metric == 'latency' else 'energy per inference'} × baseline")
    ax.set_ylabel("return, % of baseline")
    ax.set_ylim(-5, 115)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        f"Return against cost on {target}, {len(groups)} policies pooled (relative to each baseline)"
    )
    return fig


def latency_heatmap(comparisons: Sequence[Comparison]) -> Figure | None:
    """Device x variant: colour = p50 latency / the baseline's on the same device, text = p50 in µs."""
    groups = [g for g in _groups(comparisons) if len(g) > 1]
    if not groups:
        return None
    labels = sorted({c.label for g in groups for c in g}, key=label_sort_key)
    col = {label: i for i, label in enumerate(labels)}
    targets = list(dict.fromkeys(g[0].row.target for g in groups))
    if len(groups) <= MAX_HEATMAP_ROWS:
        row_names = [
            f"{g[0].base.model} @ {g[0].row.target}"
            for g in sorted(groups, key=lambda g: (g[0].row.target, g[0].base.model))
        ]
        ordered = sorted(groups, key=lambda g: (g[0].row.target, g[0].base.model))
        ratio = np.full((len(ordered), len(labels)), np.nan)
        text = np.full((len(ordered), len(labels)), "", dtype=object)
        for i, g in enumerate(ordered):
            for c in g:
                ratio[i, col[c.label]] = c.latency_ratio
                p50 = c.row.latency_p50_us
                text[i, col[c.label]] = (
                    "" if not math.isfinite(p50) else f"{p50:.0f}" if p50 >= 100 else f"{p50:.3g}"
                )
        caption = "text: p50 µs"
    else:
        row_names = [f"median of {sum(g[0].row.target == t for g in groups)} policies @ {t}" for t in targets]
        ratio = np.full((len(targets), len(labels)), np.nan)
        text = np.full((len(targets), len(labels)), "", dtype=object)
        cells: dict[tuple[int, int], list[float]] = {}
        row_of = {t: i for i, t in enumerate(targets)}
        for g in groups:
            for c in g:
                if math.isfinite(c.latency_ratio):
                    cells.setdefault((row_of[c.row.target], col[c.label]), []).append(c.latency_ratio)
        for (i, j), values in cells.items():
            ratio[i, j] = float(np.median(values))
            text[i, j] = f"{ratio[i, j]:.2f}"
        caption = "text: median × baseline"
    finite = ratio[np.isfinite(ratio)]
    if finite.size == 0:
        return None
    # diverging around 1 in log space, on a fixed span: ±2x, or ±4x when some change is larger
    span = 2.0 if float(np.max(np.abs(np.log(np.clip(finite, 1e-3, None))))) <= math.log(2.0) else 4.0
    fig = Figure(figsize=(max(8.0, 0.36 * len(labels) + 3), max(2.8, 0.34 * len(row_names) + 2.1)), dpi=DPI)
    ax = fig.subplots()
    _margins(
        fig,
        left=0.3 + 0.065 * max(len(n) for n in row_names),
        right=1.1,
        bottom=0.3 + 0.07 * max(len(label) for label in labels),
        top=0.65,
    )
    ax.add_patch(_hatch(len(labels), len(row_names)))  # a cell not measured: hatched grey, never 1x's white
    norm = LogNorm(vmin=1 / span, vmax=span)
    cmap = colormaps["RdBu_r"]
    image = ax.imshow(np.ma.masked_invalid(ratio), cmap=cmap, norm=norm, aspect="auto", zorder=1)
    if len(labels) * len(row_names) <= 2400:
        for (i, j), value in np.ndenumerate(text):
            if not math.isfinite(ratio[i, j]):
                ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="#555", zorder=2)
            elif value:
                r, g, b, _ = cmap(norm(float(np.clip(ratio[i, j], 1 / span, span))))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    j,
                    i,
                    value,
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="#fff" if dark else "#111",
                    zorder=2,
                )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(row_names, fontsize=7)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, extend="both")
    steps = (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0) if span <= 2 else (0.25, 0.5, 1.0, 2.0, 4.0)
    bar.ax.minorticks_off()
    bar.set_ticks(list(steps), labels=[f"{v:g}×" for v in steps])
    bar.ax.tick_params(labelsize=7)
    bar.set_label("p50 × baseline", fontsize=8)
    ax.set_title(f"p50 latency × the baseline's on the same device ({caption})", fontsize=9)
    return fig


def _hatch(n_cols: int, n_rows: int) -> Rectangle:
    """A hatched grey rectangle behind the heat map: what shows through where a cell was not measured."""
    return Rectangle(
        (-0.5, -0.5),
        n_cols,
        n_rows,
        facecolor="#e3e3e3",
        hatch="///",
        edgecolor="#b0b0b0",
        linewidth=0,
        zorder=0,
    )


OUTSIDE_KERNELS = "rest of the call"
"""The stacked bar's last segment: the timed call less the kernels' work (the runtime around them)."""


def op_profile_plot(comparisons: Sequence[Comparison], target: str) -> Figure | None:
    """Where the time of a call goes: per policy a panel, per model with an operator profile a horizontal bar of
    its timed call (p50, µs): the kernels' work by group (``host.report.op_breakdown``: the profiler's own cost per
    kernel taken off) stacked, then the rest of the call (the runtime around the kernels); the baseline's bar
    first so each variant's sits beside it. The runtime floor (p50) is a black tick on each bar: time left of it
    no compression removes. None when no model on this target has a profile."""
    panels = []
    for g in _groups(comparisons)[:MAX_PANELS]:
        bars = [
            (c, bd)
            for c in sorted(g, key=lambda c: (not c.is_baseline, label_sort_key(c.label)))
            if (bd := breakdown(c.row.op_profile)) is not None
        ]
        if bars:
            panels.append((g, bars))
    if not panels:
        return None
    names = list(dict.fromkeys(name for _, bars in panels for _, bd in bars for name, _ in bd.groups))
    colour = dict(zip(names, _colours(len(names)), strict=True))
    heights = [0.32 * len(bars) + 0.7 for _, bars in panels]
    fig = Figure(figsize=(9.0, sum(heights) + 1.2), dpi=DPI)
    axes = np.atleast_1d(
        fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    ).ravel()
    longest = max(len(c.label) for _, bars in panels for c, _ in bars)
    _margins(fig, left=0.3 + 0.075 * longest, right=2.3, top=0.45, bottom=0.6, hspace=0.6)
    for ax, (g, bars) in zip(axes, panels, strict=True):
        base = next(c for c in g if c.is_baseline)
        for y, (c, bd) in enumerate(bars):
            left = 0.0
            for name, us in bd.groups:
                ax.barh(y, us, left=left, color=colour[name], edgecolor="white", height=0.7)
                left += us
            outside = bd.rest_us if bd.timed_call_us > 0 else max(bd.outside_us, 0.0)
            ax.barh(y, outside, left=left, color="#d9d9d9", edgecolor="white", hatch="//", height=0.7)
            floor = c.row.floor_p50_us
            if _finite(floor) and floor > 0:
                ax.plot([floor, floor], [y - 0.4, y + 0.4], color="black", lw=2)
        ax.set_yticks(range(len(bars)), [c.label for c, _ in bars])
        ax.invert_yaxis()
        ax.set_title(f"{base.row.model} on {target}", fontsize=10, loc="left")
        ax.grid(axis="x", color="#eee")
        ax.set_axisbelow(True)
    axes[-1].set_xlabel(
        "µs per timed inference call (kernels' work by group, then the rest; black tick: runtime floor)"
    )
    handles = [Rectangle((0, 0), 1, 1, color=colour[n]) for n in names]
    handles.append(Rectangle((0, 0), 1, 1, facecolor="#d9d9d9", hatch="//", edgecolor="white"))
    fig.legend(handles, [*names, OUTSIDE_KERNELS], loc="upper right", fontsize=8, frameon=False)
    return fig
