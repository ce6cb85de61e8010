"""``ce-lab compare``: train the losses side by side, or compare runs already on disk."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import (
    BatchOpt,
    ConfigOpt,
    DataDirOpt,
    DeviceOpt,
    EpochsOpt,
    LrOpt,
    MaxMembersOpt,
    MaxStepsOpt,
    OptimOpt,
    OutDirOpt,
    ProgressOpt,
    SetOpt,
    ThreadsOpt,
    cli_errors,
    console,
    err_console,
    fail,
)
from ce_lab.cli.compare_tuning import (
    BestOfOpt,
    LrGridOpt,
    SelectOpt,
    TuneLrOpt,
    TuneSeedsOpt,
    check_tuning_flags,
    say_tuning,
    shared_lr_line,
    tuning_inputs,
)
from ce_lab.cli.completion import complete_loss, complete_run
from ce_lab.comparison.compare import DEFAULT_REFERENCE
from ce_lab.losses import DEFAULT_LOSSES
from ce_lab.shown import rich_cell
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS


class TableFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def render_comparison(result, fmt: TableFormat, output: Path | None) -> None:
    """The table in the chosen format, on stdout or into ``output``."""
    from rich.markup import escape

    t = result.table
    try:
        _write_table(result, fmt, output)
    except OSError as e:  # e.g. --output in a folder that does not exist: one line, exit 1
        raise fail(f"cannot write --output {output}: {e.strerror or e}", 1) from None
    for note in t.notes:
        err_console.print(f"note: {rich_cell(note)}", highlight=False)
    # Paths go to stderr when stdout carries csv/json, so a pipe gets clean data.
    where = err_console if fmt is not TableFormat.table and output is None else console
    if output is not None:
        where.print(f"table: {escape(str(output))}", highlight=False, soft_wrap=True)
    for name in ("report.md", "table.csv", "table.json", "table.md", "paired.csv", "tuning.csv"):
        if name in result.files:
            where.print(f"{name}: {escape(str(result.files[name]))}", highlight=False,
                        soft_wrap=True)
    for p in result.plots:
        where.print(f"plot: {escape(str(p))}", highlight=False, soft_wrap=True)


def say_html(result, fmt: TableFormat, output: Path | None) -> None:
    """The page's path, the last line compare prints (on stdout beside the table, on stderr when
    stdout carries csv/json), so a script can take it with ``tail -1``."""
    from rich.markup import escape

    from ce_lab.runs.names import REPORT_HTML

    if REPORT_HTML in result.files:
        where = err_console if fmt is not TableFormat.table and output is None else console
        where.print(f"{REPORT_HTML}: {escape(str(result.files[REPORT_HTML]))}", highlight=False,
                    soft_wrap=True)


def _write_table(result, fmt: TableFormat, output: Path | None) -> None:
    from ce_lab.render import data as data_files
    from ce_lab.render.cells import ONE_SEED, shows_paired
    from ce_lab.render.markdown import to_markdown
    from ce_lab.render.rich_tables import paired_to_rich, to_rich

    t, diffs, ref = result.table, result.diffs, result.reference
    if fmt is TableFormat.table:
        renderables = to_rich(t, title=f"comparison {result.group}")
        paired = [paired_to_rich(diffs, ref) if shows_paired(diffs) else ONE_SEED] if diffs else []
        renderables += paired
        if output is not None:
            from rich.console import Console

            with output.open("w", encoding="utf-8") as f:
                file_console = Console(file=f, width=250, no_color=True)
                for r in renderables:
                    file_console.print(r)
        else:
            from ce_lab.render.fit import print_fitted

            # A pipe's 80 columns: never a wrapped number. A row is named by its loss and config.
            print_fitted(console, renderables[:len(renderables) - len(paired)],
                         keep=1 + len(t.config_keys))
            print_fitted(console, paired)
    else:
        text = {
            TableFormat.csv: lambda: data_files.to_csv(t),
            TableFormat.json: lambda: data_files.to_json(t, diffs, ref, result.skipped),
            TableFormat.markdown: lambda: to_markdown(t, diffs, ref),
        }[fmt]()
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            typer.echo(text, nl=False)


def _report_skipped(skipped: list[str]) -> None:
    for line in skipped:
        err_console.print(f"[yellow]skipped:[/yellow] {rich_cell(line)}", highlight=False,
                          soft_wrap=True)


@cli_errors
def compare(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders (or a compare-* folder) to compare; none: train.",
                       show_default=False, autocompletion=complete_run),
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", help="Compare the N newest runs under --out-dir.")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Compare the runs of a comparison or batch group."),
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option("--losses", help="Losses to train, comma-separated "
                     f"(default {','.join(DEFAULT_LOSSES)}).", autocompletion=complete_loss),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Seeds, comma-separated (default: the config's seed)."),
    ] = None,
    set_loss: Annotated[
        list[str] | None,
        typer.Option("--set-loss", metavar="LOSS:KEY=VALUE",
                     help="Override a key for one loss, e.g. mse:optim.lr=0.5."),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Loss the others are paired against (default "
                     f"{DEFAULT_REFERENCE}, else the first)."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", help="Sort rows by a column, e.g. steps_to_0.90 (-COLUMN: "
                     "descending)."),
    ] = None,
    fmt: Annotated[
        TableFormat,
        typer.Option("--format", help="Table format on stdout (default table).",
                     show_default=False),
    ] = TableFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the table to FILE.")
    ] = None,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Skip the PNG plots.")
    ] = False,
    no_html: Annotated[
        bool, typer.Option("--no-html", help="Skip report.html, the interactive page (default: "
                           "written, its path printed last).")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    optimizer: OptimOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = None,
    out_dir: OutDirOpt = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = None,
    max_members: MaxMembersOpt = DEFAULT_MAX_MEMBERS,
    tune_lr: TuneLrOpt = False,
    lr_grid: LrGridOpt = None,
    select: SelectOpt = None,
    tune_seeds: TuneSeedsOpt = None,
    best_of: BestOfOpt = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="COMPARISON_DIR",
                     help="Finish an interrupted training comparison.", show_default=False),
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train every loss (and seed) under identical conditions; show the table, plots, report.md
    and report.html.

    Same initial weights, same batches; with --seeds, paired 95% intervals and p-values,
    Holm-adjusted across the comparison for the verdict.
    --tune-lr first gives each loss its own learning rate, chosen on validation.
    With run folders, --last N or --group ID: compare runs on disk instead.

    Every option in full, the tables and the statistics: docs/compare.md
    """
    from ce_lab import threads as thread_policy

    thread_policy.configure(threads)  # before torch is imported: it reads the wait policy once
    from ce_lab.config import keyword_overrides
    from ce_lab.losses import loss_names

    if resume is not None:
        return _resume(resume, fmt, output, progress, given=[
            run_dirs, last, group, losses, seeds, set_loss, reference, sort, config, set_,
            epochs, max_steps, lr, optimizer, batch_size, device, out_dir, data_dir, lr_grid,
            select, tune_seeds, best_of, True if tune_lr or no_plots or no_html else None,
            None if max_members == DEFAULT_MAX_MEMBERS else max_members])
    if reference is not None and reference not in loss_names():
        from ce_lab.suggest import unknown_name

        raise fail(f"--reference: {unknown_name('loss', [reference], loss_names())}", 2)
    on_disk = bool(run_dirs) or last is not None or group is not None
    check_tuning_flags(on_disk=on_disk, tune_lr=tune_lr, lr_grid=lr_grid,
                       select_given=select is not None, tune_seeds=tune_seeds, best_of=best_of)
    if on_disk:
        training_only = {"--losses": losses, "--seeds": seeds, "--set-loss": set_loss,
                         "--config": config, "--set": set_, "--epochs": epochs,
                         "--max-steps": max_steps, "--lr": lr, "--optimizer": optimizer,
                         "--batch-size": batch_size, "--device": device, "--data-dir": data_dir,
                         "--max-members": None if max_members == DEFAULT_MAX_MEMBERS else max_members,
                         "--threads": threads}
        # Given means not None: --epochs 0 and --lr 0 are options given too.
        given = [name for name, v in training_only.items() if v is not None and v != []]
        if given:
            raise fail(f"{', '.join(given)} only apply when compare trains; runs named on the "
                       "command line are compared as they are", 2)
        _compare_on_disk(run_dirs or [], last=last, group=group, out_dir=out_dir,
                         reference=reference, sort=sort, plots=not no_plots, best_of=best_of,
                         select=select, tune_seeds=tune_seeds, fmt=fmt, output=output,
                         html=not no_html)
        return
    _train_and_compare(
        losses=losses, seeds=seeds, set_loss=set_loss, reference=reference, sort=sort,
        config=config, set_=set_, flags=keyword_overrides(
            epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer,
            batch_size=batch_size, device=device, out_dir=out_dir, data_dir=data_dir),
        lr=lr, progress=progress, max_members=max_members, plots=not no_plots,
        tune_lr=tune_lr, lr_grid=lr_grid, select=select, tune_seeds=tune_seeds, fmt=fmt,
        output=output, html=not no_html)


def _compare_on_disk(run_dirs, *, last, group, out_dir, reference, sort, plots, best_of, select,
                     tune_seeds, fmt, output, html) -> None:
    from ce_lab.cli import _parse
    from ce_lab.lab import compare_on_disk

    done = compare_on_disk(run_dirs, last=last, group=group, out_dir=out_dir,
                           reference=reference, sort=sort, plots=plots, best_of=best_of,
                           select=None if select is None else select.value,
                           tune_seeds=_parse.seeds(tune_seeds, "tune_seeds"),
                           on_skipped=_report_skipped, html=html)
    if done.tuning is not None:
        say_tuning(done.tuning)
    render_comparison(done.result, fmt, output)
    say_html(done.result, fmt, output)


def _train_and_compare(*, losses, seeds, set_loss, reference, sort, config, set_, flags, lr,
                       progress, max_members, plots, tune_lr, lr_grid, select, tune_seeds, fmt,
                       output, html) -> None:
    from ce_lab.cli import _parse
    from ce_lab.config import resolve_config
    from ce_lab.lab import plan_comparison, run_comparison
    from ce_lab.progress import make_reporter

    loss_list = _parse.losses(losses)
    seed_list = _parse.seeds(seeds)
    overrides = _parse.loss_overrides(set_loss or [], loss_list)
    if progress is not None:
        flags["log.progress"] = progress.value
    base = resolve_config(config, set_ or [], flags)
    grid = tune = None
    if tune_lr:
        grid, tune = tuning_inputs(lr, set_ or [], lr_grid, tune_seeds)
    request = plan_comparison(base, loss_list, seed_list, loss_overrides=overrides,
                              reference=reference, sort=sort, plots=plots,
                              max_members=max_members, tune_lr=tune_lr, lr_grid=grid,
                              select=None if select is None else select.value, tune_seeds=tune,
                              html=html)
    reporter = make_reporter(progress.value if progress else base.log.progress, err_console)

    from ce_lab.cli.data_cmd import prepare_data

    prepare_data(base.data)  # fetch with progress before the comparison folder exists
    trained = run_comparison(request, reporter=reporter, on_dir=_announcer(request),
                             on_tuned=say_tuning)
    _finish(trained, fmt, output, shared_lr=None if tune_lr else shared_lr_line(request.configs()))


def _announcer(request):
    """The line said as the comparison folder is made: what will train, and how."""
    from ce_lab.plan import plan_runs

    def announce(comp_dir: Path, group_id: str) -> None:
        if request.tune is not None:
            t = request.tune
            err_console.print(f"comparison {group_id}: tuning {len(request.losses)} losses x "
                              f"{len(t.lr_grid)} rates on seed(s) "
                              f"{', '.join(map(str, t.tune_seeds))}, then {len(request.seeds)} "
                              f"evaluation seed(s) -> {comp_dir}", highlight=False,
                              soft_wrap=True)
            return
        configs = request.configs()
        # Said here too, so --progress none (which silences the reporter's notes) still tells.
        stacks = max(len(plan_runs(c, max_members=request.max_members).stacks)
                     for c in configs.values())
        how = "fused" if stacks == 1 else (
            f"in {stacks} stacks one after another: configs differ beyond what a stack may hold "
            "(the loss, optimizer hyperparameters, schedule), or --max-members")
        err_console.print(f"comparison {group_id}: {len(request.losses)} losses x "
                          f"{len(configs)} seed(s), {how} -> {comp_dir}", highlight=False,
                          soft_wrap=True)

    return announce


def _resume(comp_dir: Path, fmt, output, progress, given) -> None:
    from ce_lab.lab.comparing import load_request, resume_comparison
    from ce_lab.progress import make_reporter

    if any(v is not None and v != [] for v in given):
        raise fail("--resume finishes a comparison as it was asked; give no other options "
                   "than --format, --output, --progress and --threads", 2)
    request = load_request(comp_dir)  # one line for a folder that is not one, before data
    reporter = make_reporter(progress.value if progress else request.base.log.progress,
                             err_console)
    from ce_lab.cli.data_cmd import prepare_data

    prepare_data(request.base.data)
    err_console.print(f"comparison {comp_dir.name}: resuming -> {comp_dir}", highlight=False,
                      soft_wrap=True)
    _finish(resume_comparison(comp_dir, reporter=reporter, on_tuned=say_tuning, request=request),
            fmt, output, shared_lr=None)


def _finish(trained, fmt, output, shared_lr: str | None) -> None:
    """What a training comparison says at its end: failures, then the table, or how to
    continue an interrupted one (and no table of half a comparison)."""
    from rich.markup import escape

    from ce_lab.runs.folder import Status

    for o in trained.failed:
        message = " ".join(str(o.message or "").split())  # one line, whatever the error held
        err_console.print(f"[red]failed:[/red] {escape(f'{o.run_dir}: {message}')}",
                          highlight=False, soft_wrap=True)
    if trained.interrupted:
        err_console.print(f"interrupted; continue with: ce-lab compare --resume "
                          f"{escape(str(trained.comp_dir))}", highlight=False, soft_wrap=True)
        raise typer.Exit(Status.INTERRUPTED.exit_code)
    if trained.result is None:
        raise fail("no run finished; nothing to compare", 1)
    _report_skipped(trained.result.skipped)
    render_comparison(trained.result, fmt, output)
    if shared_lr:
        err_console.print(f"note: {escape(shared_lr)}", highlight=False, soft_wrap=True)
    say_html(trained.result, fmt, output)
