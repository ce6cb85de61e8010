"""``ce-lab export tensorboard RUN...``: TensorBoard event files written from run folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console, err_console, fail
from ce_lab.cli.completion import complete_run

export_app = typer.Typer(help="Write runs in other tools' formats.", no_args_is_help=True)


@export_app.command("tensorboard")
@cli_errors
def tensorboard(
    runs: Annotated[list[Path], typer.Argument(
        help="Run folders, or compare-* folders standing for their runs.",
        autocompletion=complete_run, show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder of the TensorBoard runs: a sub-folder per group (comparison or "
        "batch), in it one per run named by the settings that differ, e.g. 'loss=mse lr=3.16 "
        "seed=0' (default: tensorboard/ beside the runs).", show_default=False)] = None,
) -> None:
    """Every metric of every run as TensorBoard scalars (validation and test first), with the
    config keys that differ between the runs in the HParams plugin (so TensorBoard's table sorts
    runs by loss, lr, ...).

    Needs the tensorboard extra: pip install "ce-lab[tensorboard]". View with
    tensorboard --logdir DIR.
    """
    from ce_lab.errors import UnsafeName, require
    from ce_lab.runs.names import META, plain_name
    from ce_lab.runs.record import select_runs
    from ce_lab.shown import rich_cell as escape  # markup and control characters of names on disk
    from ce_lab.tensorboard import export_run, hparam_keys, run_names

    require("tensorboard", "tensorboard", "ce-lab export tensorboard")  # before reading runs
    records, skipped = select_runs(Path("runs"), paths=runs)
    groups: dict[tuple[Path, str], list] = {}
    for record in records:
        # A compare-* folder lists its runs as ../RUN: name their parent plainly.
        root = out if out is not None else Path(os.path.normpath(record.path.parent)) / "tensorboard"
        try:  # meta.json's run_id and group name folders: an absolute or ../ one is refused
            plain_name(record.run_id, f"{record.path}: {META}'s run_id")
            group = record.meta.get("group")
            group = "" if group is None else plain_name(group, f"{record.path}: {META}'s group")
        except UnsafeName as e:
            skipped.append(f"{e}; not exported")
            continue
        groups.setdefault((root, group), []).append(record)
    keys = hparam_keys([r.config for members in groups.values() for r in members])
    targets = []
    for (root, group), members in groups.items():
        for record, name in zip(members, run_names(members)):
            targets.append((record, root, root / group / name, f"{group}/{name}".lstrip("/")))
    for line in skipped:
        err_console.print(f"[yellow]skipped:[/yellow] {escape(line)}", highlight=False,
                          soft_wrap=True)
    if not targets:
        raise fail(f"no runs to export ({len(skipped)} skipped)", 1)
    roots: set[Path] = set()
    for record, root, logdir, trial in targets:
        export_run(record, logdir, keys, trial)
        roots.add(root)
    where = ", ".join(str(r) for r in sorted(roots))
    console.print(f"{len(targets)} run(s) written to {escape(where)}; view with: tensorboard "
                  f"--logdir {escape(where.split(', ')[0])}", highlight=False, soft_wrap=True)
