"""`drlc-host compress`: make compressed variants of a baseline (one, or the study's whole grid)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from device_agent.contract.vocabulary import BASELINE, COMPRESSION_METHODS
from host.store.artifacts import select_models, store_artifact
from host.cli.common import HomeOption, console, home_flag, open_workspace, user_errors
from host.compress import method_config
from host.compress.register import existing_variant, make_and_store, sweep_into
from host.compress.sweep import PlannedVariant, SweepConfig, plan
from host.compress.variant import Baseline
from host.errors import CompressionError, DrlcError
from host.store.results_db import ModelRow, ResultsDB
from host.store.workspace import Workspace


Method = Enum("Method", {name: name for name in COMPRESSION_METHODS}, type=str)  # type: ignore[misc]
"""--method's choices: the registry's vocabulary (host.compress.methods)."""


def parse_opts(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise DrlcError(f"--opt takes key=value, got {item!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def variants_table(rows: list[tuple[ModelRow, dict[str, Any]]]) -> Table:
    """A sweep's variants, one line each; the full name (what `--models` takes) first and never cut."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("variant", overflow="fold")
    for title in ("params", "KB", "mean |Δa|", "max |Δa|"):
        table.add_column(title, justify="right", no_wrap=True)
    for row, metrics in rows:
        table.add_row(
            escape(row.name),
            f"{row.n_params:,}",
            f"{row.file_bytes / 1024:.1f}",
            f"{metrics.get('action_error_mean_abs', float('nan')):.4f}",
            f"{metrics.get('action_error_max_abs', float('nan')):.4f}",
        )
    return table


def describe_variant(row: ModelRow, metrics: dict[str, Any], base: ModelRow) -> None:
    """What was made, in lines that fit 80 columns: name and sha256, size against the baseline, action
    error, and where the file is."""
    console.print(escape(f"made {row.name} [{row.short}]"), soft_wrap=True, highlight=False)
    console.print(
        f"  {row.n_params:,} params, {row.file_bytes / 1024:.1f} KB "
        f"(baseline {base.n_params:,}, {base.file_bytes / 1024:.1f} KB)",
        highlight=False,
    )
    console.print(
        "  action error against the baseline: "
        f"mean {metrics.get('action_error_mean_abs', float('nan')):.4f}, "
        f"max {metrics.get('action_error_max_abs', float('nan')):.4f}",
        highlight=False,
    )
    console.print(escape(f"  {shown_path(row.path)}"), soft_wrap=True, highlight=False)


def shown_path(path: Path) -> Path:
    """A path as short as it can be typed from here: relative to the working directory when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def compress_command(
    baseline: Annotated[str, typer.Argument(help="the baseline: sha256 prefix, name, or a .onnx file")],
    method: Annotated[
        Method | None, typer.Option(case_sensitive=False, help="one variant by this method (any case)")
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="the study's grid: 3 int8 methods + L1/L2 x 5 %..70 %")
    ] = False,
    ratio: Annotated[
        float | None, typer.Option(help="pruning ratio per hidden layer, 0.05..0.7 (l1, l2)")
    ] = None,
    fp32_first_layer: Annotated[
        bool | None, typer.Option("--fp32-first-layer", help="keep the first layer in fp32 (int8 methods)")
    ] = None,
    calibration_episodes: Annotated[int | None, typer.Option(help="PTSQ calibration rollouts")] = None,
    calibration_method: Annotated[
        str | None, typer.Option(help="PTSQ: minmax, entropy or percentile")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="QAT: gradient steps (distill) or env steps (rl)")] = None,
    mode: Annotated[str | None, typer.Option(help="QAT: distill (fast) or rl (continue RL training)")] = None,
    finetune_steps: Annotated[
        int | None, typer.Option(help="pruning: fine-tuning steps after pruning (0: none, as in the study)")
    ] = None,
    finetune_mode: Annotated[str | None, typer.Option(help="pruning: how to fine-tune (distill)")] = None,
    opt: Annotated[
        list[str] | None, typer.Option(help="any other method option as key=value; repeatable")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(exists=True, help="the SB3 checkpoint of the baseline (QAT rl mode)")
    ] = None,
    no_fp32_first_layer_variants: Annotated[
        bool, typer.Option("--no-fp32-first-layer-variants", help="sweep: only the study's all-int8 variants")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Make compressed variants of a baseline; each is an ordinary drlc ONNX file with its lineage."""
    with user_errors(), open_workspace(home) as (workspace, db):
        base_row = resolve_baseline(db, workspace, baseline)
        base = Baseline.load(base_row.path, checkpoint=checkpoint or base_row.checkpoint)
        if sweep == (method is not None):
            raise CompressionError(
                f"give either --method M (one of {', '.join(m.value for m in Method)}) or --sweep (the study's grid)"
            )
        if sweep:
            cfg = SweepConfig(
                fp32_first_layer_variants=not no_fp32_first_layer_variants,
                qat_mode=mode or "distill",
                qat_steps=steps,
                calibration_episodes=calibration_episodes or 20,
            )
            made = do_sweep(db, workspace, base, cfg)
            console.print(variants_table(made))
            console.print("deploy them all with:")
            console.print(
                escape(
                    f"  drlc-host deploy --target local --models sweep:{base.sha256[:12]}{home_flag(home)}"
                ),
                soft_wrap=True,
                highlight=False,
            )
            return
        assert method is not None  # for mypy: checked above
        options = {
            "ratio": ratio,
            "fp32_first_layer": fp32_first_layer,
            "calibration_episodes": calibration_episodes,
            "calibration_method": calibration_method,
            "steps": steps,
            "mode": mode,
            "finetune_steps": finetune_steps,
            "finetune_mode": finetune_mode,
        }
        options = {k: v for k, v in options.items() if v is not None} | parse_opts(opt)
        config = method_config(method.value, **options)
        existing = existing_variant(db, base, method.value, config)
        if existing is not None:
            console.print(
                escape(f"already made: {existing.name} [{existing.short}] {existing.path}"), soft_wrap=True
            )
            print_next(existing, home)
            return
        with console.status(f"{method.value} on {escape(base.manifest.name)}..."):
            row, metrics = make_and_store(workspace, db, base, method.value, config)
        describe_variant(row, metrics, base_row)
        print_next(row, home)


def print_next(row: ModelRow, home: Path | None) -> None:
    """The command to type next, with the variant's full name (a table cell may be cut at 80 columns)."""
    console.print("measure it with:")
    console.print(
        escape(f"  drlc-host deploy --target local --models {row.name}{home_flag(home)}"),
        soft_wrap=True,
        highlight=False,
    )


def resolve_baseline(db: ResultsDB, workspace: Workspace, selector: str) -> ModelRow:
    """The registered baseline ``selector`` names: a .onnx file (registered on the way), a name or a sha256
    prefix. A variant is refused with the name of its baseline, a missing file with its path."""
    path = Path(selector).expanduser()
    if path.suffix == ".onnx" or "/" in selector:
        if not path.is_file():
            raise CompressionError(
                f"file not found: {path}; give a baseline .onnx file, or a registered baseline's name or "
                "sha256 prefix (`drlc-host models` lists them)"
            )
        base = Baseline.load(path)
        return store_artifact(workspace, db, base.data, base.manifest)
    rows = select_models(db, [selector])
    baselines = [r for r in rows if r.method == BASELINE]
    if len(baselines) == 1:
        return baselines[0]
    if not baselines:
        row = rows[0]
        parent = db.model(row.parent_sha256) if row.parent_sha256 else None
        of = (
            f"the baseline {parent.name} [{parent.short}]"
            if parent
            else f"baseline {row.parent_sha256 or '?'}"
        )
        again = parent.name if parent else (row.parent_sha256 or "BASELINE")[:12]
        raise CompressionError(
            f"{row.name} [{row.short}] is a {row.method} variant of {of}, not a baseline; "
            f"compress the baseline: drlc-host compress {again} --method ..."
        )
    names = ", ".join(f"{r.name} [{r.short}]" for r in baselines)
    raise CompressionError(
        f"{selector!r} matches {len(baselines)} baselines ({names}); give its full name or a longer sha256 prefix"
    )


def do_sweep(
    db: ResultsDB, workspace: Workspace, base: Baseline, cfg: SweepConfig
) -> list[tuple[ModelRow, dict[str, Any]]]:
    """The sweep with a progress bar; its failures in red (then exit 1 after listing what was made)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(escape(f"sweep {base.manifest.name}"), total=len(plan(cfg)))

        def on_item(item: PlannedVariant, status: str) -> None:
            bar.update(
                task,
                advance=1,
                description=escape(f"sweep {base.manifest.name}: {item.label} {status.split(':')[0]}"),
            )

        report = sweep_into(workspace, db, base, cfg, on_item)
    console.print(
        f"{len(report.made)} made, {len(report.skipped)} already there, {len(report.failed)} failed"
    )
    for label, why in report.failed.items():
        console.print(f"[red]{escape(f'{label}: failed: {why}')}[/]")
    if report.failed:
        console.print(variants_table(report.variants))
        raise typer.Exit(code=1)
    return report.variants
