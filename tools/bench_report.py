"""How long a report takes for a results database of 10 000 results.

Builds a synthetic database (host/store/synthetic.py: the study's 34 variants plus the baseline of
many policies, measured on three targets, 10 episodes each, one target with an energy meter), then
times, in one process, what `drlc-host report` does for each format: collecting the rows (with every
per-episode sample), the statistics, and rendering Markdown, CSV and the HTML report with its plots.
Prints one summary line: the time of the HTML report (the slowest format: collect, statistics, tables and
plots) against the 10 s budget (goal: ratio < 1), with the three formats' total wall and CPU time beside it
(on a busy machine the wall time includes waiting for a core).

    python tools/bench_report.py [--results 10000] [--targets 3] [--keep DB]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=10_000, help="jobs in the database (at least)")
    parser.add_argument("--targets", type=int, default=3, help="targets (1-3) the policies are measured on")
    parser.add_argument(
        "--keep", type=Path, help="write the database here (and keep it) instead of a temp dir"
    )
    args = parser.parse_args()

    from host.report.analysis import analyse
    from host.report.csv_report import render_csv
    from host.report.html import render_html
    from host.report.markdown import render_markdown
    from host.report.rows import collect_rows
    from host.store.synthetic import DEFAULT_TARGETS, fill, variants
    from host.store.results_db import ResultsDB

    targets = DEFAULT_TARGETS[: max(1, min(args.targets, len(DEFAULT_TARGETS)))]
    per_policy = len(variants()) * len(targets)
    n_policies = -(-args.results // per_policy)
    with tempfile.TemporaryDirectory(prefix="drlc-bench-report-") as tmp:
        path = args.keep or Path(tmp) / "results.sqlite"
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        with ResultsDB(path) as db:
            n_jobs = fill(db, n_policies=n_policies, targets=targets)
        print(f"built {path}: {n_jobs} jobs ({n_policies} policies x {len(variants())} models x {len(targets)} targets, "
              f"10 episodes each) in {time.perf_counter() - started:.1f} s")  # fmt: skip

        timings: dict[str, float] = {}
        cpu_times: dict[str, float] = {}
        sizes: dict[str, int] = {}
        total_start, cpu_start = time.perf_counter(), time.process_time()
        with ResultsDB(path) as db:
            t, c = time.perf_counter(), time.process_time()
            rows = collect_rows(db)
            timings["collect"], cpu_times["collect"] = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        analyse(rows)
        timings["statistics"] = time.perf_counter() - t
        # one report per format, as `drlc-host report --format F` makes it: the statistics are part of each
        for name, render in (
            ("markdown", lambda: render_markdown(analyse(rows))),
            ("csv", lambda: render_csv(analyse(rows))),
            ("html", lambda: render_html(analyse(rows), title="bench")),
        ):
            clear_caches()
            t, c = time.perf_counter(), time.process_time()
            sizes[name] = len(render())
            timings[name], cpu_times[name] = time.perf_counter() - t, time.process_time() - c
        total, cpu = time.perf_counter() - total_start, time.process_time() - cpu_start
    for name, seconds in timings.items():
        size = f" ({sizes[name] / 1e6:.1f} MB)" if name in sizes else ""
        cpu_text = f", {cpu_times[name]:.2f} s CPU" if name in cpu_times else ""
        print(f"  {name:<10} {seconds:6.2f} s{cpu_text}{size}")
    html = timings["collect"] + timings["html"]
    html_cpu = cpu_times["collect"] + cpu_times["html"]
    print(
        f"html report of {len(rows)} results (collect + statistics + tables + plots): {html:.2f} s wall, "
        f"{html_cpu:.2f} s CPU; budget {BUDGET_S:.0f} s; ratio {html / BUDGET_S:.2f} (all three formats, one "
        f"after another: {total:.1f} s wall, {cpu:.1f} s CPU)"
    )


def clear_caches() -> None:
    """Forget the sample moments kept from earlier, so each format pays for its own statistics (each builds its
    own analysis, as one `drlc-host report --format F` does)."""
    from host.report.rows import moments

    moments.cache_clear()


if __name__ == "__main__":
    main()
