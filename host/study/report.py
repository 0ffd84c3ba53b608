"""A study's report: its baselines and their variants on its targets, as HTML, Markdown and CSV."""

from __future__ import annotations

from pathlib import Path

from host.report.analysis import analyse
from host.report.csv_report import render_csv
from host.report.html import render_html
from host.report.markdown import render_markdown
from host.report.rows import ReportFilter, ReportRow, collect_rows, device_infos
from host.store.results_db import ResultsDB
from host.study.file import Study, StudyError
from host.study.recipes import find_baseline


def study_rows(study: Study, db: ResultsDB) -> list[ReportRow]:
    """The report rows of the study's baselines (and their variants) on the study's targets."""
    baselines = tuple(row.sha256 for p in study.policies if (row := find_baseline(db, p)) is not None)
    if not baselines:
        return []
    return ReportFilter(targets=study.targets, baselines=baselines, latest_only=True).apply(collect_rows(db))


def write_study_report(study: Study, db: ResultsDB) -> list[Path]:
    """The study's report files: ``<name>.html`` (plots embedded), ``<name>.md`` and ``<name>.csv``."""
    rows = study_rows(study, db)
    if not rows:
        raise StudyError(
            f"study {study.name}: nothing measured yet, so nothing to report; run `drlc-host study run`"
        )
    study.report_dir.mkdir(parents=True, exist_ok=True)
    title = f"drlc study: {study.name}"
    analysis = analyse(rows, study.optimise)
    files = {
        f"{study.name}.html": render_html(
            analysis, title=title, description=study.description, devices=device_infos(db, rows)
        ),
        f"{study.name}.md": render_markdown(analysis, title=title),
        f"{study.name}.csv": render_csv(analysis),
    }
    out = []
    for name, text in files.items():
        path = study.report_dir / name
        path.write_text(text)
        out.append(path)
    return out
