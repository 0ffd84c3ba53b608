"""The report's plots, drawn with matplotlib's object API (no pyplot state, no display); :func:`png` encodes one.

Per target:

- :func:`pruning_plot`: return (% of the baseline, 95 % CI band) against the pruning ratio, L1 and L2
  side by side, one line per policy, with the 90 % line;
- :func:`cost_plot`: p50 latency, energy per inference, peak memory, memory taken by loading the model
  and file size of every variant as a multiple of its baseline's on the same target;
- :func:`pareto_plot`: return against latency (or energy per inference), one panel per policy, with
  the Pareto front (no other variant is both faster and better) marked.

Across targets, :func:`latency_heatmap`: device x variant, coloured by latency relative to the baseline
on the same device, annotated with the p50 in µs.

Where a quantity was not measured (energy on a device without a meter), the plot says so in words
instead of drawing zeros.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from host.report import KEEP_FRACTION, PRUNING_METHODS
from host.report_stats import Comparison, group, label_sort_key

DPI = 96
DPI_MANY = 80
"""Plots that summarise many policies (beyond MAX_LEGEND) are drawn a little coarser: a 10 000-result report
has dozens of them."""
MAX_PANELS = 12
"""Small multiples per figure; a target with more policies plots the first ones and says so."""
MAX_LEGEND = 12
MAX_HEATMAP_ROWS = 60
"""Beyond this many (policy, target) rows the heat map shows each target's median over policies."""
METHOD_MARKERS = {"baseline": "*", "ptdq": "o", "ptsq": "s", "qat": "D", "l1": "^", "l2": "v"}
METHOD_COLOURS = {
    "baseline": "#000000",
    "ptdq": "#1f77b4",
    "ptsq": "#ff7f0e",
    "qat": "#2ca02c",
    "l1": "#d62728",
    "l2": "#9467bd",
}


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
    from matplotlib import colormaps

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
    """Return (% of baseline, CI band) against pruning ratio; beyond MAX_LEGEND policies, every policy's curve
    thin and the median across policies with its interquartile band (per-policy CIs are in the tables)."""
    groups = [g for g in _groups(comparisons) if any(c.row.method in PRUNING_METHODS for c in g)]
    if not groups:
        return None
    many = len(groups) > MAX_LEGEND
    fig = Figure(figsize=(11, 4.2), dpi=DPI_MANY if many else DPI)
    axes = fig.subplots(1, len(PRUNING_METHODS), sharey=True)
    _margins(fig, wspace=0.06)
    colours = _colours(len(groups))
    lows, highs = [0.0], [110.0]
    for ax, method in zip(axes, PRUNING_METHODS, strict=True):
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
        ax.text(
            1, 100 * KEEP_FRACTION - 2, f"{KEEP_FRACTION:.0%} of baseline", color="#c00", fontsize=8, va="top"
        )
        ax.set_title(f"{method.upper()} pruning on {target}" + (f" ({len(curves)} policies)" if many else ""))
        ax.set_xlabel("pruning ratio per hidden layer (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("return, % of baseline" + ("" if many else " (95 % CI band)"))
    axes[0].set_ylim(max(min(lows), -50.0) - 5, min(max(highs), 160.0) + 5)  # outliers may leave the frame
    if not many:
        axes[-1].legend(fontsize=8, loc="lower left")
    return fig


def _median_band(ax: Axes, curves: list[np.ndarray]) -> None:
    """Every curve thin (one LineCollection), the median across them bold and their interquartile band."""
    from matplotlib.collections import LineCollection

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
    ("model_mb_ratio", "memory taken by loading the model"),
    ("file_ratio", "file size"),
)


def cost_plot(comparisons: Sequence[Comparison], target: str) -> Figure | None:
    """Each cost of each variant as a multiple of its baseline's; one colour per policy, or beyond MAX_LEGEND
    policies all in grey with the median per variant."""
    groups = _groups(comparisons)
    variants = [c for g in groups for c in g if not c.is_baseline]
    if not variants:
        return None
    many = len(groups) > MAX_LEGEND
    labels = sorted({c.label for c in variants}, key=label_sort_key)
    index = {label: i for i, label in enumerate(labels)}
    fig = Figure(
        figsize=(max(9.0, 0.28 * len(labels) + 2), 2.1 * len(COST_PANELS)), dpi=DPI_MANY if many else DPI
    )
    axes = fig.subplots(len(COST_PANELS), 1, sharex=True)
    longest = max(len(label) for label in labels)
    _margins(fig, left=0.9, bottom=0.25 + 0.075 * longest, top=0.75, hspace=0.12)
    colours = _colours(len(groups))
    offsets = np.linspace(-0.25, 0.25, len(groups)) if len(groups) > 1 else np.zeros(1)
    for ax, (attr, name) in zip(axes, COST_PANELS, strict=True):
        series = []
        for k, g in enumerate(groups):
            pts = [(index[c.label] + offsets[k], getattr(c, attr)) for c in g if not c.is_baseline]
            series.append([(x, y) for x, y in pts if y is not None and math.isfinite(y)])
        ax.set_ylabel(f"{name}\n× baseline", fontsize=8)
        if not any(series):
            what = "energy" if attr == "energy_ratio" else name
            _no_data(ax, f"{what} not measured on {target}{_why_not(variants[0].row.energy)}")
            continue
        if many:
            _spread(ax, [p for pts in series for p in pts])
        else:
            for colour, g, pts in zip(colours, groups, series, strict=True):
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.scatter(xs, ys, color=colour, s=14, label=g[0].base.model)
        ax.axhline(1.0, color="#555", linewidth=0.8)
        ax.grid(alpha=0.3)
    axes[-1].set_xticks(range(len(labels)))
    axes[-1].set_xticklabels(labels, rotation=90, fontsize=7)
    title = f"Cost of every variant relative to its baseline on {target} (1 = same as the baseline)"
    axes[0].set_title(title + (f"; {len(groups)} policies: median, IQR, range" if many else ""))
    if not many:
        axes[0].legend(fontsize=7, ncols=min(len(groups), 4), loc="lower left", bbox_to_anchor=(0, 1.12))
    return fig


def _spread(ax: Axes, points: list[tuple[float, float]]) -> None:
    """Per variant (x rounded to its column): min-max thin, interquartile range thick, the median as a tick."""
    from matplotlib.collections import LineCollection

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
    beyond MAX_PANELS policies one panel with every variant's cost relative to its baseline's."""
    groups = [g for g in _groups(comparisons) if len(g) > 1]
    if not groups:
        return None
    unit = "p50 latency (µs)" if metric == "latency" else "energy per inference (µJ)"
    if metric == "energy" and not any(_cost(c, metric) is not None for g in groups for c in g):
        fig = Figure(figsize=(9, 1.6), dpi=DPI)
        reason = _why_not(groups[0][0].base.energy)
        _no_data(fig.subplots(), f"return vs energy per inference on {target}: energy not measured{reason}")
        _margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.1)
        return fig
    if len(groups) > MAX_PANELS:
        return _pooled_pareto(groups, target, metric)
    cols = min(3, len(groups))
    rows_n = math.ceil(len(groups) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows_n + 0.4), dpi=DPI)
    axes = np.atleast_1d(fig.subplots(rows_n, cols, squeeze=False)).ravel()
    _margins(fig, left=0.6, bottom=0.55, top=0.7, wspace=0.3, hspace=0.45)
    for ax, g in zip(axes, groups, strict=False):
        pts = [(c, _cost(c, metric)) for c in g]
        pts = [(c, x) for c, x in pts if x is not None and math.isfinite(c.pct.value)]
        for method, marker in METHOD_MARKERS.items():
            sel = [(x, c.pct.value) for c, x in pts if c.row.method == method]
            if sel:
                xs, ys = zip(*sel, strict=True)
                size = 60 if method == "baseline" else 18
                ax.scatter(
                    xs, ys, marker=marker, color=METHOD_COLOURS[method], s=size, label=method, zorder=3
                )
        front = pareto_front([(x, c.pct.value) for c, x in pts])
        if front:
            fx, fy = zip(*front, strict=True)
            ax.step(fx, fy, where="post", color="#333", linewidth=1.0, alpha=0.7, label="Pareto front")
            ax.scatter(fx, fy, facecolors="none", edgecolors="#000", s=70, linewidths=0.8, zorder=4)
        ax.axhline(100 * KEEP_FRACTION, color="#c00", linestyle="--", linewidth=0.9)
        ax.set_title(g[0].base.model, fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        ax.set_ylabel("return, % of baseline", fontsize=8)
        low = min([y for _, y in front] + [c.pct.value for c, _ in pts] + [0.0])
        high = max([c.pct.value for c, _ in pts] + [100.0])
        ax.set_ylim(max(low, -50) - 5, min(high, 300.0) + 15)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Return against {unit} on {target}; circled: the Pareto front", fontsize=10)
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
        front = set(pareto_front([(x, c.pct.value) for c, x in pts]))
        on_front += [(x, c.pct.value) for c, x in pts if (x, c.pct.value) in front and not c.is_baseline]
    for method, marker in METHOD_MARKERS.items():
        if method in by_method and method != "baseline":
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
                text[i, col[c.label]] = (
                    "" if not math.isfinite(c.row.latency_p50_us) else f"{c.row.latency_p50_us:.0f}"
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
    # symmetric in log space around 1, wide enough for the largest change, at most 4x either way
    span = float(np.clip(np.exp(np.max(np.abs(np.log(np.clip(finite, 1e-3, None))))), 1.25, 4.0))
    fig = Figure(figsize=(max(8.0, 0.36 * len(labels) + 3), max(2.8, 0.34 * len(row_names) + 1.9)), dpi=DPI)
    ax = fig.subplots()
    _margins(
        fig,
        left=0.3 + 0.065 * max(len(n) for n in row_names),
        right=1.1,
        bottom=0.3 + 0.07 * max(len(label) for label in labels),
        top=0.45,
    )
    image = ax.imshow(
        np.ma.masked_invalid(ratio), cmap="RdBu_r", norm=LogNorm(vmin=1 / span, vmax=span), aspect="auto"
    )
    if len(labels) * len(row_names) <= 2400:
        for (i, j), value in np.ndenumerate(text):
            if value:
                ax.text(j, i, value, ha="center", va="center", fontsize=6.5, color="#111")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(row_names, fontsize=7)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    steps = (0.67, 0.8, 1.0, 1.25, 1.5) if span < 2 else (0.25, 0.5, 1.0, 2.0, 4.0)
    ticks = [v for v in steps if 1 / span <= v <= span]
    bar.ax.minorticks_off()
    bar.set_ticks(ticks, labels=[f"{v:g}×" for v in ticks])
    bar.ax.tick_params(labelsize=7)
    bar.set_label("p50 × baseline", fontsize=8)
    ax.set_title(
        f"Latency of every variant on every device ({caption}; blue: faster than the baseline)", fontsize=10
    )
    return fig
