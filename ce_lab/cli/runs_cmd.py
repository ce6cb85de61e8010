"""``ce-lab runs``: the run folders under --out-dir; ``runs show RUN``; ``runs diff RUN RUN...``.

Reads run folders only (ce_lab.runs.listing), so it is fast and never imports torch.
"""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console, err_console, fail
from ce_lab.cli.choices import default, in_words
from ce_lab.cli.completion import complete_loss, complete_run
from ce_lab.runs.read import is_number
from ce_lab.shown import printable, rich_cell

runs_app = typer.Typer(help="List, show and diff run folders (newest first).",
                       invoke_without_command=True, no_args_is_help=False)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class ShowFormat(str, Enum):
    table = "table"
    json = "json"


OutDir = Annotated[Path, typer.Option("--out-dir", help="Folder holding the run folders "
                                      f"(default {default('out_dir')}).", show_default=False)]
RunArg = Annotated[str, typer.Argument(help="A run folder, or a run id under --out-dir.",
                                       autocompletion=complete_run, show_default=False)]
FormatOpt = Annotated[Format, typer.Option(
    "--format", help=f"{in_words(f.value for f in Format)} (default {Format.table.value}).",
    show_default=False)]
ShowFormatOpt = Annotated[ShowFormat, typer.Option(
    "--format", help=f"{in_words(f.value for f in ShowFormat)} (default {ShowFormat.table.value}).",
    show_default=False)]


def _acc(v) -> str:
    return f"{v:.4f}" if is_number(v) else "—"


def _skipped(lines: list[str]) -> None:
    for line in lines:
        err_console.print(f"[yellow]skipped:[/yellow] {rich_cell(line)}", highlight=False,
                          soft_wrap=True)


def _print_tables(tables, hint: str = "see --format csv or a wider terminal") -> None:
    from ce_lab.render.fit import print_fitted

    print_fitted(console, tables, hint=hint)


@runs_app.callback()
@cli_errors
def runs(
    ctx: typer.Context,
    out_dir: OutDir = Path("runs"),
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="Only runs with this status or flag (completed, diverged, interrupted, "
        "failed, running, crashed, stalled, ...; repeatable).")] = None,
    loss: Annotated[list[str] | None, typer.Option(
        "--loss", help="Only runs of this loss (repeatable).", autocompletion=complete_loss)] = None,
    group: Annotated[str | None, typer.Option(
        "--group", help="Only the runs of this compare/batch group id.")] = None,
    last: Annotated[int | None, typer.Option("--last", help="Only the N newest.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Only runs whose config holds this value, e.g. optim.lr=0.1 (parsed as "
        "--set parses it, numbers by value: 0.1 = 0.10 = 1e-1; repeatable: all must hold).",
        show_default=False)] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The runs under --out-dir, newest first: id, loss, status, seed, steps, accuracies, group,
    and the config keys whose values differ between the runs listed (optim.lr, ...).

    A folder that cannot be read is skipped with one line on stderr.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = out_dir  # runs show / diff look run ids up under it
        return
    from ce_lab.cli import _parse
    from ce_lab.config_keys import shown
    from ce_lab.lab.listing import list_runs
    from ce_lab.runs.listing import LIST_FIELDS, list_row

    listing = list_runs(out_dir, status=status or (), loss=loss or (), group=group, last=last,
                        where=_parse.where(where))
    _skipped(listing.skipped)
    chosen, keys = listing.entries, listing.keys
    rows = [list_row(e) for e in chosen]
    if fmt is Format.json:  # the differing config keys after the fixed fields, as JSON values
        typer.echo(json.dumps([row | values for row, values in zip(rows, listing.values)],
                              indent=2, allow_nan=False, default=str))
        return
    if fmt is Format.csv:  # ... and as text ([a, b] for a list; empty where a run lacks the key)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*LIST_FIELDS, *keys], lineterminator="\n")
        writer.writeheader()
        for row, values in zip(rows, listing.values):  # text from disk without its control
            cells = {**row, "flags": ";".join(row["flags"]),  # characters, as everywhere
                     **{k: shown(v) for k, v in values.items() if v is not None}}
            writer.writerow({k: printable(v) if isinstance(v, str) else v for k, v in cells.items()})
        typer.echo(buf.getvalue(), nl=False)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} of {listing.total} runs under {out_dir}", box=None)
    # The differing config keys follow the loss: with it they say what each run was.
    numeric = {k: all(is_number(v[k]) for v in listing.values if k in v) for k in keys}
    for name, right in (("run", False), ("loss", False), *((rich_cell(k), numeric[k]) for k in keys),
                        ("status", False), ("seed", True), ("steps", True), ("val acc", True),
                        ("test acc", True), ("group", False)):
        table.add_column(name, justify="right" if right else "left")
    for e, row, values in zip(chosen, rows, listing.values):
        table.add_row(rich_cell(row["run"]), rich_cell(row["loss"]),
                      *(rich_cell(shown(values[k])) if k in values else "—" for k in keys),
                      rich_cell(e.status_text),
                      str(row["seed"]), "—" if row["steps"] is None else str(row["steps"]),
                      _acc(row["val_acc"]), _acc(row["test_acc"]), rich_cell(row["group"] or "—"))
    _print_tables([table])


def _entry(ctx: typer.Context, run: str):
    from ce_lab.runs.listing import read_entry, resolve_run

    return read_entry(resolve_run(run, ctx.obj or Path("runs")))


def _summary_rows(entries) -> list[tuple[str, list[str]]]:
    """(header, one cell per run) for every summary number of the metric registry."""
    from ce_lab import metrics as registry
    from ce_lab.comparison.build import Row, metric_columns, run_metrics
    from ce_lab.render.cells import cell_text

    columns = metric_columns(registry.param_values([e.summary for e in entries if e.summary]))
    values = [run_metrics(e, columns) if e.summary else {} for e in entries]
    # A Row of one run: a missing number says why (not reached, diverged, ...), from that run.
    return [(c.header, [cell_text(Row("", [e], v), c) if v else "—"
                        for e, v in zip(entries, values)]) for c in columns]


@runs_app.command("show")
@cli_errors
def show(ctx: typer.Context, run: RunArg,
         fmt: ShowFormatOpt = ShowFormat.table) -> None:
    """One run: its status, summary numbers, config and files."""
    import yaml
    from rich.table import Table

    e = _entry(ctx, run)
    files = {p.name: p.stat().st_size for p in sorted(e.path.iterdir()) if p.is_file()}
    if fmt is ShowFormat.json:
        typer.echo(json.dumps({"run": e.run_id, "path": str(e.path), "status": e.status,
                               "flags": e.flags, "meta": e.meta, "config": e.config,
                               "summary": e.summary, "files": files},
                              indent=2, allow_nan=False, default=str))
        return
    console.print(f"[bold]{rich_cell(e.run_id)}[/bold]  {rich_cell(e.status_text)}  "
                  f"{rich_cell(e.path)}", highlight=False, soft_wrap=True)
    summary = Table(title="summary", box=None, show_header=False)
    summary.add_column("key")
    summary.add_column("value", justify="right")
    for key, value in (("loss", e.loss), ("seed", e.seed), ("group", e.group),
                       ("started", e.started), ("ended", e.meta.get("ended")),
                       ("steps", e.summary.get("steps")),
                       ("diverged at", e.summary.get("diverged_at"))):
        if value is not None:
            summary.add_row(key, rich_cell(value))
    for header, cells in _summary_rows([e]):
        summary.add_row(header, cells[0])
    _print_tables([summary])
    console.print("\n[bold]config[/bold]", highlight=False)
    console.print(yaml.safe_dump(e.config, sort_keys=False), end="", markup=False,
                  highlight=False, soft_wrap=True)
    listing = Table(title="files", box=None, show_header=False)
    listing.add_column("file")
    listing.add_column("bytes", justify="right")
    for name, size in files.items():
        listing.add_row(rich_cell(name), str(size))
    _print_tables([listing])


@runs_app.command("diff")
@cli_errors
def diff(ctx: typer.Context,
         runs: Annotated[list[str], typer.Argument(help="Two or more run folders or run ids.",
                                                   autocompletion=complete_run,
                                                   show_default=False)],
         fmt: ShowFormatOpt = ShowFormat.table) -> None:
    """The config keys that differ between runs, then their summary numbers side by side."""
    from rich.table import Table

    from ce_lab.comparison.build import show as show_value
    from ce_lab.config import flatten
    from ce_lab.runs.listing import differing_config

    if len(runs) < 2:
        raise fail("runs diff needs at least two runs", 2)
    entries = [_entry(ctx, r) for r in runs]
    keys = differing_config(entries)
    flats = [flatten(e.config) for e in entries]
    numbers = _summary_rows(entries)
    if fmt is ShowFormat.json:
        typer.echo(json.dumps({
            "runs": [e.run_id for e in entries],
            "config": {k: [f.get(k) for f in flats] for k in keys},
            "status": [e.status for e in entries],
            "summary": {h: cells for h, cells in numbers}}, indent=2, default=str))
        return
    from ce_lab.render.fit import natural_width

    def tables(headers: list[str]) -> list:
        config = Table(title="config keys that differ" if keys else "config: no key differs",
                       box=None)
        summary = Table(title="summary", box=None)
        for t in (config, summary):
            t.add_column("")
            for h in headers:
                t.add_column(rich_cell(h), justify="right")
        for k in keys:
            config.add_row(rich_cell(k), *(rich_cell(show_value(f[k])) if k in f else "(absent)"
                                           for f in flats))
        summary.add_row("status", *(rich_cell(e.status_text) for e in entries))
        for header, cells in numbers:
            summary.add_row(header, *cells)
        return [config, summary] if keys else [config.title, summary]

    shown = tables([e.run_id for e in entries])
    if any(natural_width(t) > console.width for t in shown if isinstance(t, Table)):
        # Run ids are long: number the columns and say which run each number is.
        for i, e in enumerate(entries, 1):
            console.print(f"#{i} {printable(e.run_id)}", highlight=False, markup=False,
                          soft_wrap=True)
        shown = tables([f"#{i}" for i in range(1, len(entries) + 1)])
    _print_tables(shown, hint="see --format json or a wider terminal")
