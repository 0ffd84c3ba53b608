"""The study's tables, built once and rendered as Markdown or HTML.

Per target: the recommendation per policy, Table 1 (return per quantization method), Table 2 (return
per pruning method and ratio) and Table 3 (the highest pruning ratio that keeps the return: the
study's rule on means beside drlc's with a test). Across targets, the same side by side. Every return
cell is a percentage of the policy's baseline on the same target with its 95 % CI and a mark from
Welch's test (see :mod:`host.report.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from device_agent.contract.vocabulary import INT8_METHODS, PRUNING_METHODS
from host.decision import ALPHA, NOISE_THRESHOLD
from host.report.aggregates import aggregates, fmt
from host.report.recommend import Recommendation, headline
from host.decision import KEEP_FRACTION
from host.report.rows import ReportRow
from host.report.stats import (
    OBJECTIVE_TEXT,
    Comparison,
    Optimise,
    PruningLimit,
    Verdict,
    group,
    label_sort_key,
    pruning_limits,
)


LEGEND = (
    f"Returns are % of the policy's baseline on the same target, [95 % CI] by Fieller's method on episodes "
    f"paired by seed. Marks: ▲ better / ▼ worse than the baseline (Welch's t-test, two-sided, {ALPHA:.0%}), "
    f"= no significant difference, ? too few episodes for a test. Italic: not shown to keep "
    f"{KEEP_FRACTION:.0%} of the baseline's return (the one-sided 95 % lower limit is below it: falls short "
    f"or undecided)."
)


@dataclass(frozen=True)
class Cell:
    text: str
    title: str = ""
    """Longer text (HTML tooltip)."""
    css: str = ""
    """better, worse, same, drop (return not shown to keep 90 %), pick (the recommendation), num."""


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""
    anchor: str = ""


def _num(value: float, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(test: object) -> str:
    p = getattr(test, "p", None)
    return "no test" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def policy_name(base: ReportRow) -> str:
    return base.model


def return_cell(c: Comparison, with_ci: bool = True, detail: bool = True) -> Cell:
    """% of baseline [CI] and the verdict mark; the title (``detail``) holds the absolute figures and the tests."""
    if c.is_baseline:
        return Cell(f"{_num(c.row.return_mean)} ± {_num(c.row.return_std)}", css="num")
    if math.isfinite(c.pct.value):
        text = f"{c.pct.value:.1f}"
        if with_ci and math.isfinite(c.pct.low):
            text += f" [{c.pct.low:.1f}, {c.pct.high:.1f}]"  # the mean's own precision: never outside it
    else:
        text = _num(c.row.return_mean)
    text += f" {c.verdict.mark}"
    css = {Verdict.better: "better", Verdict.worse: "worse"}.get(c.verdict, "same")
    css += "" if c.keeps_return else " drop"
    if not detail:
        return Cell(text, css=css)
    title = (
        f"{c.label}: return {_num(c.row.return_mean)} ± {_num(c.row.return_std)} "
        f"[95 % CI {_num(c.row.return_ci95_low)}, {_num(c.row.return_ci95_high)}], n = {c.row.n_episodes}; "
        f"vs baseline {_num(c.base.return_mean)}: {c.verdict.value} ({_p(c.return_test)}); "
        f"keeps {KEEP_FRACTION:.0%}: {c.keep.verdict.value} ({c.keep.reason}); "
        f"study's rule on means: {'keeps' if c.keeps_by_mean else 'below'}"
    )
    return Cell(text, title, css)


def _policy_cells(base: ReportRow) -> list[Cell]:
    return [Cell(base.algo), Cell(base.env_setup or base.env_id), Cell(policy_name(base))]


# ---------------------------------------------------------------------------------------------
# Per target
# ---------------------------------------------------------------------------------------------


def recommendation_table(recs: Sequence[Recommendation], target: str | None = None) -> Table:
    objective = recs[0].objective if recs else Optimise.latency
    table = Table(
        f"Recommendation per policy{f' on {target}' if target else ''} (optimising {OBJECTIVE_TEXT[objective.value]})",
        [
            "algo",
            "env",
            "baseline",
            *([] if target else ["target"]),
            "use",
            "p50 µs",
            "× base",
            "return % base",
            "why",
        ],
        note=(
            f"A variant is used only when it is shown to keep {KEEP_FRACTION:.0%} of the return and beats the baseline "
            f"by more than the noise threshold, significantly after Holm's correction; see README, How drlc decides."
        ),
        anchor=f"rec-{target}" if target else "rec",
    )
    for r in recs:
        c = r.choice
        use = "baseline (no compression)" if c.is_baseline else f"{c.label} ({c.row.model})"
        table.rows.append(
            [
                *_policy_cells(r.base),
                *([] if target else [Cell(r.target)]),
                Cell(use, css="pick"),
                Cell(_num(c.row.latency_p50_us), css="num"),
                Cell(_num(c.latency_ratio, 2), css="num"),
                Cell("100" if c.is_baseline else _num(c.pct.value), css="num"),
                Cell(r.reason),
            ]
        )
    return table


def quantization_table(comparisons: Sequence[Comparison], target: str) -> Table:
    """Table 1: return per quantization method (and first-layer setting)."""
    labels = sorted({c.label for c in comparisons if c.row.method in INT8_METHODS}, key=label_sort_key)
    table = Table(
        f"Table 1 on {target}: return per quantization method",
        ["algo", "env", "baseline", "baseline return", *labels],
        note=LEGEND,
        anchor=f"t1-{target}",
    )
    for (_, _), g in group(comparisons).items():
        by_label = {c.label: c for c in g}
        base = next((c for c in g if c.is_baseline), None)
        if base is None or not any(label in by_label for label in labels):
            continue
        table.rows.append(
            [
                *_policy_cells(base.base),
                return_cell(base),
                *(return_cell(by_label[lb], with_ci=True) if lb in by_label else Cell("–") for lb in labels),
            ]
        )
    return table


def pruning_table(comparisons: Sequence[Comparison], target: str) -> Table:
    """Table 2: return per pruning method and ratio."""
    ratios = sorted(
        {c.row.ratio for c in comparisons if c.row.method in PRUNING_METHODS and c.row.ratio is not None}
    )
    table = Table(
        f"Table 2 on {target}: return per pruning method and ratio (% of baseline)",
        ["algo", "env", "baseline", "method", *(f"{r * 100:.0f}%" for r in ratios)],
        note=LEGEND + " The CI is in each cell's tooltip (HTML) and the CSV.",
        anchor=f"t2-{target}",
    )
    for (_, _), g in group(comparisons).items():
        base = next((c for c in g if c.is_baseline), None)
        if base is None:
            continue
        for method in PRUNING_METHODS:
            by_ratio = {c.row.ratio: c for c in g if c.row.method == method}
            if not by_ratio:
                continue
            table.rows.append(
                [
                    *_policy_cells(base.base),
                    Cell(method),
                    *(
                        return_cell(by_ratio[r], with_ci=False) if r in by_ratio else Cell("–")
                        for r in ratios
                    ),
                ]
            )
    return table


def limits_table(comparisons: Sequence[Comparison], target: str) -> Table:
    """Table 3: the best pruning per (algorithm, env) by the 90 % rule, on means and with a test."""
    table = Table(
        f"Table 3 on {target}: best pruning per (algorithm, env) by the {KEEP_FRACTION:.0%} rule",
        [
            "algo",
            "env",
            "baseline",
            "baseline return",
            "study's rule (means)",
            "% base",
            "L1 (test)",
            "L2 (test)",
        ],
        note=(
            f"Study's rule: the highest ratio whose mean return is ≥ {KEEP_FRACTION:.0%} of the baseline's. "
            f"With a test: the highest ratio shown to keep {KEEP_FRACTION:.0%} of the baseline's return (one-sided "
            f'95 % lower limit, paired by seed); "none": no ratio is shown to keep it.'
        ),
        anchor=f"t3-{target}",
    )
    for limit in pruning_limits(comparisons):
        mean_rule = ", ".join(f"{m} {r * 100:.0f}%" for m, r, _ in limit.by_mean) or "none"
        pct = ", ".join(f"{p:.1f}" for _, _, p in limit.by_mean) or "–"
        tested = [
            Cell(
                "–"
                if m not in limit.by_test
                else ("none" if limit.by_test[m] is None else f"{limit.by_test[m] * 100:.0f}%")
            )
            for m in PRUNING_METHODS
        ]
        table.rows.append(
            [
                *_policy_cells(limit.base),
                Cell(_num(limit.base.return_mean), css="num"),
                Cell(mean_rule),
                Cell(pct, css="num"),
                *tested,
            ]
        )
    return table


def measurement_table(comparisons: Sequence[Comparison], target: str) -> Table:
    """Every variant on one target with its comparison against the baseline."""
    table = Table(
        f"Every variant on {target}",
        [
            "model",
            "variant",
            "return [95 % CI]",
            "% base [CI]",
            "vs base",
            f"keeps {KEEP_FRACTION:.0%}",
            "study's rule",
            "p50 µs [CI]",
            "× base",
            "latency",
            "p99 µs",
            "floor µs",
            "peak MB",
            "model MB",
            "file KB",
            "params",
            "mean |Δa|",
            "energy",
        ],
        note=(
            "p50 [CI]: mean over episodes of each episode's median inference latency (or over batches of the "
            "latency phase, for jobs whose episodes ran in parallel), with its 95 % CI; × base: variant / baseline "
            "per round (20 % trimmed geometric mean); latency: the verdict over rounds of one session (paired t on log ratios, "
            f"Holm-corrected, ±{NOISE_THRESHOLD:.0%} noise threshold unless set otherwise). keeps: shown by "
            "non-inferiority; study's rule: mean ≥ 90 % of the baseline's, no test."
        ),
        anchor=f"all-{target}",
    )
    for c in comparisons:
        r = c.row
        lat = c.latency
        table.rows.append(
            [
                Cell(f"{r.model} [{r.sha256[:8]}]"),
                Cell(c.label),
                Cell(
                    f"{_num(r.return_mean)} [{_num(r.return_ci95_low)}, {_num(r.return_ci95_high)}]",
                    css="num",
                ),
                Cell(
                    "100"
                    if c.is_baseline
                    else f"{_num(c.pct.value)} [{_num(c.pct.low)}, {_num(c.pct.high)}]",
                    css="num",
                ),
                Cell(
                    "–" if c.is_baseline else f"{c.verdict.mark} {_p(c.return_test)}",
                    css=""
                    if c.is_baseline
                    else {Verdict.better: "better", Verdict.worse: "worse"}.get(c.verdict, "same"),
                ),
                Cell(
                    "–" if c.is_baseline else c.keep.verdict.value,
                    c.keep.reason,
                    css="" if c.keeps_return else "drop",
                ),
                Cell("–" if c.is_baseline else ("keeps" if c.keeps_by_mean else "below")),
                Cell(
                    f"{_num(c.latency_ci.value)} [{_num(c.latency_ci.low)}, {_num(c.latency_ci.high)}]",
                    css="num",
                ),
                Cell(_num(c.latency_ratio, 2), css="num"),
                Cell("–" if c.is_baseline else f"{lat.verdict} ({lat.why})"),
                Cell(_num(r.latency_p99_us), css="num"),
                Cell(_num(r.floor_p50_us), css="num"),
                Cell(_num(r.peak_rss_mb), css="num"),
                Cell(_num(r.model_rss_mb), css="num"),
                Cell(f"{r.file_kb:.1f}", css="num"),
                Cell(str(r.n_params), css="num"),
                Cell("–" if r.action_error_mean_abs is None else f"{r.action_error_mean_abs:.4f}", css="num"),
                Cell(r.energy),
            ]
        )
    return table


def across_policies_table(comparisons: Sequence[Comparison], target: str) -> Table:
    """Per variant, across the policies measured on ``target``: rliable's IQM and probability of improvement."""
    table = Table(
        f"Across policies on {target}: interquartile mean and probability of improvement (rliable)",
        [
            "variant",
            "policies",
            "episodes each",
            "return IQM % base [CI]",
            "P(better return) [CI]",
            "p50 ratio IQM [CI]",
        ],
        note=(
            "IQM: interquartile mean over every policy's episodes, each as a fraction of its own baseline's mean "
            "return; P(better return): the probability that an episode of the variant beats one of the baseline, "
            "averaged over policies (0.5: no difference); p50 ratio: per-round variant / baseline latency, IQM "
            "over policies and rounds (– without session rounds). [95 % CI] by stratified bootstrap (rliable)."
        ),
        anchor=f"agg-{target}",
    )
    for a in aggregates(comparisons):
        table.rows.append(
            [
                Cell(a.variant),
                Cell(str(a.n_policies), css="num"),
                Cell(str(a.runs), css="num"),
                Cell(fmt(a.return_iqm, 100), css="num"),
                Cell(fmt(a.improvement, 1, 2), css="num"),
                Cell(fmt(a.latency_iqm, 1, 2), css="num"),
            ]
        )
    return table


# ---------------------------------------------------------------------------------------------
# Across targets
# ---------------------------------------------------------------------------------------------


def _by_policy_target(comparisons: Iterable[Comparison]) -> dict[str, dict[str, list[Comparison]]]:
    out: dict[str, dict[str, list[Comparison]]] = {}
    for (target, _), g in group(comparisons).items():
        out.setdefault(g[0].base.sha256, {})[target] = g  # one row per policy across devices
    return out


def cross_recommendations(recs: Sequence[Recommendation], targets: Sequence[str]) -> Table:
    table = Table(
        "Recommendations side by side",
        ["algo", "env", "baseline", *targets],
        note=(
            "Per device: the verdict line (the same words as the terminal report's), naming the model to use and "
            "its gain as a multiple of the baseline's on that device; hover for the full reason."
        ),
        anchor="cross-rec",
    )
    by_policy: dict[str, dict[str, Recommendation]] = {}
    for r in recs:
        by_policy.setdefault(r.base.sha256, {})[r.target] = r
    for per_target in by_policy.values():
        base = next(iter(per_target.values())).base
        cells = []
        for t in targets:
            r = per_target.get(t)
            if r is None:
                cells.append(Cell("not measured"))
            else:
                cells.append(Cell(headline(r), r.reason, "pick"))
        table.rows.append([*_policy_cells(base), *cells])
    return table


def _cross_returns(
    comparisons: Sequence[Comparison],
    targets: Sequence[str],
    title: str,
    anchor: str,
    methods: Collection[str],
    with_ci: bool,
) -> Table:
    """One row per (policy, variant of ``methods``), one return cell per device."""
    table = Table(title, ["algo", "env", "baseline", "variant", *targets], note=LEGEND, anchor=anchor)
    for per_target in _by_policy_target(comparisons).values():
        labels = sorted(
            {c.label for g in per_target.values() for c in g if c.row.method in methods},
            key=label_sort_key,
        )
        base = next(iter(per_target.values()))[0].base
        for label in labels:
            cells = []
            for t in targets:
                c = next((c for c in per_target.get(t, []) if c.label == label), None)
                cells.append(return_cell(c, with_ci=with_ci, detail=False) if c else Cell("–"))
            table.rows.append([*_policy_cells(base), Cell(label), *cells])
    return table


def cross_quantization(comparisons: Sequence[Comparison], targets: Sequence[str]) -> Table:
    return _cross_returns(
        comparisons,
        targets,
        "Table 1 side by side: return per quantization method, % of the baseline on each device",
        "cross-t1",
        INT8_METHODS,
        with_ci=True,
    )


def cross_pruning(comparisons: Sequence[Comparison], targets: Sequence[str]) -> Table:
    return _cross_returns(
        comparisons,
        targets,
        "Table 2 side by side: return per pruning method and ratio, % of the baseline on each device",
        "cross-t2",
        PRUNING_METHODS,
        with_ci=False,
    )


def cross_limits(comparisons: Sequence[Comparison], targets: Sequence[str]) -> Table:
    table = Table(
        f"Table 3 side by side: highest pruning ratio keeping {KEEP_FRACTION:.0%} of the return (means | test)",
        ["algo", "env", "baseline", *targets],
        note="Per device: the study's rule on means, then per method the highest ratio shown to keep 90 % (non-inferiority).",
        anchor="cross-t3",
    )
    limits: dict[str, dict[str, PruningLimit]] = {}
    for limit in pruning_limits(comparisons):
        limits.setdefault(limit.base.sha256, {})[limit.target] = limit
    for per_target in limits.values():
        base = next(iter(per_target.values())).base
        cells = []
        for t in targets:
            limit = per_target.get(t)
            if limit is None:
                cells.append(Cell("–"))
                continue
            mean_rule = ", ".join(f"{m} {r * 100:.0f}%" for m, r, _ in limit.by_mean) or "none"
            tested = ", ".join(
                f"{m} {'none' if v is None else f'{v * 100:.0f}%'}" for m, v in limit.by_test.items()
            )
            cells.append(Cell(f"{mean_rule} | {tested}"))
        table.rows.append([*_policy_cells(base), *cells])
    return table


# ---------------------------------------------------------------------------------------------
# Putting them together
# ---------------------------------------------------------------------------------------------


@dataclass
class StudyTables:
    targets: list[str]
    per_target: dict[str, list[Table]]
    cross: list[Table]
    comparisons: list[Comparison]
    recommendations: list[Recommendation]


def study_tables(
    rows: Sequence[ReportRow], comparisons: Sequence[Comparison], recs: Sequence[Recommendation]
) -> StudyTables:
    """Every table of the study for ``rows``, from their comparisons and recommendations (one analysis)."""
    targets = list(dict.fromkeys(r.target for r in rows))
    per_target: dict[str, list[Table]] = {}
    for t in targets:
        comps = [c for c in comparisons if c.row.target == t]
        tables = [recommendation_table([r for r in recs if r.target == t], t)]
        tables += [quantization_table(comps, t), pruning_table(comps, t), limits_table(comps, t)]
        if len({c.base.sha256 for c in comps}) > 1:
            tables.append(across_policies_table(comps, t))
        per_target[t] = [tb for tb in tables if tb.rows]
    cross: list[Table] = []
    if len(targets) > 1:
        cross = [
            cross_recommendations(recs, targets),
            cross_quantization(comparisons, targets),
            cross_limits(comparisons, targets),
            cross_pruning(comparisons, targets),
        ]
        cross = [tb for tb in cross if tb.rows]
    return StudyTables(targets, per_target, cross, list(comparisons), list(recs))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def table_markdown(table: Table) -> list[str]:
    out = [f"### {table.title}", ""]
    out.append("| " + " | ".join(table.headers) + " |")
    out.append("|" + "---|" * len(table.headers))
    for row in table.rows:
        cells = []
        for c in row:
            text = _md_escape(c.text)
            cells.append(f"*{text}*" if "drop" in c.css.split() else text)
        out.append("| " + " | ".join(cells) + " |")
    if table.note:
        out += ["", table.note]
    out.append("")
    return out


def study_markdown(tables: StudyTables) -> list[str]:
    out: list[str] = []
    for t in tables.targets:
        out += [f"## Study tables on `{t}`", ""]
        for table in tables.per_target[t]:
            out += table_markdown(table)
    if tables.cross:
        out += ["## Across devices", ""]
        for table in tables.cross:
            out += table_markdown(table)
    return out
