"""``ce-lab config show``: the resolved config as YAML."""

from __future__ import annotations

import typer

from ce_lab.cli._common import ConfigOpt, SetOpt, cli_errors, console
from ce_lab.cli.hints import HintedCommand

config_app = typer.Typer(help="Inspect the resolved run configuration.", no_args_is_help=True)


@config_app.command("show", cls=HintedCommand)
@cli_errors
def show(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the config that a run would use (defaults < --config < --set), as YAML."""
    from ce_lab.config import resolve_config, to_yaml

    cfg = resolve_config(config, set_ or [])
    console.print(to_yaml(cfg), end="", highlight=False, markup=False, soft_wrap=True)
