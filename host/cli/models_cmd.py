"""`drlc-host models`: the policies this workspace holds, each variant under its baseline, one line each."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from device_agent.contract.envs import describe_env
from device_agent.contract.vocabulary import BASELINE
from host.cli.common import HomeOption, console, open_workspace, user_errors
from host.store.results_db import ModelRow


def _size(row: ModelRow) -> str:
    return (
        f"{row.file_bytes / 1024:.0f} KB"
        if row.file_bytes >= 10 * 1024
        else f"{row.file_bytes / 1024:.1f} KB"
    )


def models_table(models: list[ModelRow], width: int, envs: dict[str, str] | None = None) -> Table:
    """Baselines in bold, their variants indented beneath; full names (what `--models` and `compress` take),
    never cut. The algo / env column (the baseline's name usually says it) is shown only where it fits in
    ``width``; a name longer than the terminal allows folds onto a second line rather than ending in "…".
    ``envs``: the env as the device builds it, per sha256 (with its options and wrappers), else the id."""
    envs = envs or {}

    def env(m: ModelRow) -> str:
        return f"{m.algo} {envs.get(m.sha256, m.env_id)}"

    name_w = max(len(m.name) + (0 if m.method == BASELINE else 2) for m in models)
    env_w = max(len(env(m)) for m in models)
    with_env = name_w + 2 + 12 + 2 + 7 + 2 + 8 + 2 + env_w <= width
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("name", overflow="fold")
    table.add_column("sha256", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    if with_env:
        table.add_column("algo / env", no_wrap=True)

    def add(*cells: str) -> None:
        table.add_row(*(cells if with_env else cells[:4]))

    baselines = [m for m in models if m.method == BASELINE]
    known = {m.sha256 for m in baselines}
    children: dict[str, list[ModelRow]] = {}
    for m in models:
        if m.method != BASELINE:
            children.setdefault(m.parent_sha256 if m.parent_sha256 in known else "", []).append(m)
    for base in baselines:
        add(
            f"[bold]{escape(base.name)}[/]",
            base.short,
            f"{base.n_params:,}",
            _size(base),
            escape(env(base)),
        )
        for v in sorted(children.get(base.sha256, []), key=lambda r: r.name):
            add(f"  {escape(v.name)}", v.short, f"{v.n_params:,}", _size(v), "")
    orphans = children.get("", [])
    if orphans:
        add("[dim](baseline not registered here)[/]", "", "", "", "")
        for v in sorted(orphans, key=lambda r: r.name):
            add(f"  {escape(v.name)}", v.short, f"{v.n_params:,}", _size(v), escape(env(v)))
    return table


def models_command(home: HomeOption = None) -> None:
    """List the registered policies: each baseline with its compressed variants beneath it."""
    with user_errors(), open_workspace(home, mujoco=False) as (_, db):
        models = db.models()
        if not models:
            console.print("no models yet: import one (drlc-host import PATH) or train one (drlc-host train)")
            return
        envs = {}
        for m in models:
            manifest = db.manifest(m.sha256)
            if manifest is not None:
                envs[m.sha256] = describe_env(m.env_id, manifest.env_kwargs, manifest.obs_wrappers)
        console.print(models_table(models, console.width, envs))
        n_base = sum(m.method == BASELINE for m in models)
        n_var = len(models) - n_base
        console.print(
            f"{n_base} baseline{'s' * (n_base != 1)}, {n_var} variant{'s' * (n_var != 1)} "
            "(compress takes a baseline, deploy --models any)",
            highlight=False,
        )
