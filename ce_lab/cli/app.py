"""The root ``ce-lab`` app. Each command lives in its own module and is registered here.

Heavy imports (torch, matplotlib) happen inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ce_lab import __version__
from ce_lab.cli.batch_cmd import batch
from ce_lab.cli.compare_cmd import compare
from ce_lab.cli.config_cmd import config_app
from ce_lab.cli.data_cmd import data_app
from ce_lab.cli.export_cmd import export_app
from ce_lab.cli.hints import HintedCommand
from ce_lab.cli.losses_cmd import losses
from ce_lab.cli.runs_cmd import runs_app
from ce_lab.cli.theory.entropy import NUMBERS_CONTEXT, entropy
from ce_lab.cli.theory.saturation import saturation
from ce_lab.cli.theory.stability import stability
from ce_lab.cli.theory.xent import xent
from ce_lab.cli.train_cmd import train

app = typer.Typer(
    name="ce-lab",
    help="Train the same MNIST MLP with different classification losses and measure what changes.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (ce_lab/cli/completion.py)
    pretty_exceptions_show_locals=False,  # locals in an ML tool are big tensors
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ce-lab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """ce-lab: what actually changes when the same network is trained with a different loss."""


# Panels group the commands in --help: experiments first, then the theory, then set-up.
RUN, THEORY, SETUP = "Experiments", "Theory, computed", "Set-up"
# HintedCommand: `--set optim.lr 0.1`, `--seeds 0 1 2` get one line saying the form.
app.command("train", cls=HintedCommand, rich_help_panel=RUN)(train)
app.command("compare", cls=HintedCommand, rich_help_panel=RUN)(compare)
app.command("batch", cls=HintedCommand, rich_help_panel=RUN)(batch)
app.command("losses", rich_help_panel=RUN)(losses)
app.command("entropy", context_settings=NUMBERS_CONTEXT, rich_help_panel=THEORY)(entropy)
app.command("xent", rich_help_panel=THEORY)(xent)
app.command("saturation", rich_help_panel=THEORY)(saturation)
app.command("stability", rich_help_panel=THEORY)(stability)
app.add_typer(runs_app, name="runs", rich_help_panel=RUN)
app.add_typer(export_app, name="export", rich_help_panel=RUN)
app.add_typer(config_app, name="config", rich_help_panel=SETUP)
app.add_typer(data_app, name="data", rich_help_panel=SETUP)

def main() -> None:
    app()
