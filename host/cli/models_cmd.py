"""`drlc-host models`: the policies this workspace holds, each variant under its baseline, one line each."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.results_db import ModelRow


def _size(row: ModelRow) -> str:
    return (
        f"{row.file_bytes / 1024:.0f} KB"
        if row.file_bytes >= 10 * 1024
        else f"{row.file_bytes / 1024:.1f} KB"
    )


def models_table(models: list[ModelRow]) -> Table:
    """Baselines in bold, their variants indented beneath; full names (what `--models` and `compress` take),
    never cut: at 80 columns a long name folds onto a second line rather than ending in "…"."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("name", overflow="fold")
    table.add_column("sha256", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("algo / env", overflow="fold")
    baselines = [m for m in models if m.method == "baseline"]
    known = {m.sha256 for m in baselines}
    children: dict[str, list[ModelRow]] = {}
    for m in models:
        if m.method != "baseline":
            children.setdefault(m.parent_sha256 if m.parent_sha256 in known else "", []).append(m)
    for base in baselines:
        table.add_row(
            f"[bold]{escape(base.name)}[/]",
            base.short,
            f"{base.n_params:,}",
            _size(base),
            escape(f"{base.algo} {base.env_id}"),
        )
        for v in sorted(children.get(base.sha256, []), key=lambda r: r.name):
            table.add_row(f"  {escape(v.name)}", v.short, f"{v.n_params:,}", _size(v), "")
    orphans = children.get("", [])
    if orphans:
        table.add_row("[dim](baseline not registered here)[/]", "", "", "", "")
        for v in sorted(orphans, key=lambda r: r.name):
            table.add_row(
                f"  {escape(v.name)}", v.short, f"{v.n_params:,}", _size(v), escape(f"{v.algo} {v.env_id}")
            )
    return table


def models_command(home: HomeOption = None) -> None:
    """List the registered policies: each baseline with its compressed variants beneath it."""
    with user_errors(), open_workspace(home) as (_, db):
        models = db.models()
        if not models:
            console.print("no models yet: import one (drlc-host import PATH) or train one (drlc-host train)")
            return
        console.print(models_table(models))
        n_base = sum(m.method == "baseline" for m in models)
        console.print(
            f"{n_base} baselines, {len(models) - n_base} variants; give a name or sha256 prefix to "
            "compress (a baseline) or deploy --models (any)",
            highlight=False,
            soft_wrap=True,
        )
