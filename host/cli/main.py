"""drlc-host: train or import deep-RL policies, compress them, profile them on devices, report."""

from __future__ import annotations

from typing import Annotated

import typer

from host import __version__

from host.cli.clean_cmd import clean_command
from host.cli.common import interrupt_on_sigterm
from host.cli.compress_cmd import compress_command
from host.cli.deploy_cmd import deploy_command
from host.cli.import_cmd import import_command
from host.cli.models_cmd import models_command
from host.cli.report_cmd import report_command
from host.cli.study_cmd import study_app
from host.cli.targets_cmd import targets_command
from host.cli.train_cmd import train_command

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    context_settings={"help_option_names": ["-h", "--help"]},
    # a bug's traceback must not print local variables: they can hold an agent token or a key
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"drlc-host {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """drlc-host: train or import deep-RL policies, compress them, profile them on devices, report."""
    interrupt_on_sigterm()


app.command("train", rich_help_panel="Make policies")(train_command)
app.command("import", rich_help_panel="Make policies")(import_command)
app.command("models", rich_help_panel="Make policies")(models_command)
app.command("compress", rich_help_panel="Make policies")(compress_command)
app.command("deploy", rich_help_panel="Measure")(deploy_command)
app.command("report", rich_help_panel="Measure")(report_command)
app.command("targets", rich_help_panel="Measure")(targets_command)
app.command("clean", rich_help_panel="Measure")(clean_command)
app.add_typer(study_app, name="study", rich_help_panel="Measure")

if __name__ == "__main__":
    app()
