"""Shell completion of ce-lab's own values: loss names, config keys after --set, run folders.

Typer does the shell side (``ce-lab --install-completion`` / ``--show-completion``); these are its
``autocompletion`` callbacks. Each imports what it needs when called, so ``ce-lab --help`` stays
fast, and none raises: a completion that fails offers nothing.
"""

from __future__ import annotations

from pathlib import Path

import typer  # its Context: Typer passes the callback the command's context by this type


def complete_loss(incomplete: str) -> list[str]:
    """Loss names; after a comma (``--losses ce,m``) the last name of the list."""
    from ce_lab.losses import loss_names

    head, _, last = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    return [prefix + n for n in loss_names() if n.startswith(last)]


def config_keys() -> list[str]:
    """Every dotted config key, in config order."""
    from ce_lab.config import RunConfig, flatten, to_dict

    return list(flatten(to_dict(RunConfig())))


def complete_set(incomplete: str) -> list[str]:
    """``KEY=`` for the config keys; after ``loss.name=``, the loss names."""
    key, sep, value = incomplete.partition("=")
    if sep:
        if key == "loss.name":
            return [f"{key}={n}" for n in complete_loss(value) if "," not in n]
        return []
    return [f"{k}=" for k in config_keys() if k.startswith(incomplete)]


def _out_dir(ctx: typer.Context) -> Path:
    while ctx is not None:
        value = ctx.params.get("out_dir")
        if value:
            return Path(value)
        ctx = ctx.parent
    return Path("runs")


def complete_run(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run folders (those holding meta.json) under --out-dir, as paths; or run ids when what is
    typed so far is not a path."""
    from ce_lab.runs.folder import NON_RUN_PREFIXES
    from ce_lab.runs.names import META

    out_dir = _out_dir(ctx)
    typed = Path(incomplete)
    where = typed.parent if incomplete and ("/" in incomplete) else out_dir
    try:
        names = sorted(p.name for p in where.iterdir()
                       if p.is_dir() and not p.name.startswith(NON_RUN_PREFIXES)
                       and (p / META).is_file())
    except OSError:
        return []
    paths = [str(where / n) for n in names]
    if "/" in incomplete or str(out_dir).startswith(incomplete):
        return [p for p in paths if p.startswith(incomplete)]
    return [n for n in names if n.startswith(incomplete)]
