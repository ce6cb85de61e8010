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
    ProgressMode,
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
from ce_lab.comparison.tuning import DEFAULT_CRITERION, Criterion
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
        err_console.print(f"note: {escape(note)}", highlight=False)
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


def _write_table(result, fmt: TableFormat, output: Path | None) -> None:
    from ce_lab.render import data as data_files
    from ce_lab.render.markdown import to_markdown
    from ce_lab.render.rich_tables import paired_to_rich, to_rich

    t, diffs, ref = result.table, result.diffs, result.reference
    if fmt is TableFormat.table:
        renderables = to_rich(t, title=f"comparison {result.group}")
        paired = [paired_to_rich(diffs, ref)] if diffs else []
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
    from rich.markup import escape

    for line in skipped:
        err_console.print(f"[yellow]skipped:[/yellow] {escape(line)}", highlight=False,
                          soft_wrap=True)


@cli_errors
def compare(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders (or a compare-* folder) to compare. None: train the "
                       "losses first.", show_default=False, autocompletion=complete_run),
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", help="Compare the N most recent runs under --out-dir.")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Compare the runs of a compare/batch group id."),
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option("--losses", help="Losses to train, comma-separated "
                     "(default ce,mse,hinge,nll-manual).", autocompletion=complete_loss),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Seeds, comma-separated; every loss runs with every seed "
                     "(default: the config's seed)."),
    ] = None,
    set_loss: Annotated[
        list[str] | None,
        typer.Option("--set-loss", metavar="LOSS:KEY=VALUE",
                     help="Override a key for one loss only, e.g. mse:optim.lr=0.5 (repeatable)."),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Loss the others are paired against (default ce, else "
                     "the first)."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", help="Sort rows by a column, e.g. steps_to_0.90; -COLUMN for "
                     "descending (default: as run)."),
    ] = None,
    fmt: Annotated[
        TableFormat,
        typer.Option("--format", help="Table format on stdout (default table).",
                     show_default=False),
    ] = TableFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the table to FILE (default stdout).")
    ] = None,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Skip the PNG plots (default: plots are drawn).")
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
    progress: Annotated[
        ProgressMode | None,
        typer.Option("--progress", help="auto, bar, plain or none (log.progress; default auto)."),
    ] = None,
    max_members: MaxMembersOpt = DEFAULT_MAX_MEMBERS,
    tune_lr: TuneLrOpt = False,
    lr_grid: LrGridOpt = None,
    select: SelectOpt = None,
    tune_seeds: TuneSeedsOpt = None,
    best_of: BestOfOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train every loss (and seed) under identical conditions; show the table, plots, report.md.

    The table comes with paired differences against the reference loss (accuracies, the AUC of
    validation accuracy, steps to each threshold), each with a 95% t interval over seeds.

    With --tune-lr each loss is first tuned to its own learning rate on the validation split,
    then compared at it: the fair comparison (every loss at one shared rate mostly measures how
    well that rate suits each loss).

    With run folders, --last N or --group ID it compares runs already on disk instead (with
    --best-of optim.lr: each loss at its own best rate among them).
    A missing, unfinished or corrupt run folder is skipped with one line.
    """
    from ce_lab import threads as thread_policy

    thread_policy.configure(threads)  # before torch is imported: its threads then wait passively
    from ce_lab.comparison import compare as comparing
    from ce_lab.comparison.build import check_sort_key
    from ce_lab.config import keyword_overrides, resolve_config
    from ce_lab.losses import loss_names
    from ce_lab.runs.folder import Status, create_comparison_dir
    from ce_lab.runs.record import select_runs

    if reference is not None and reference not in loss_names():
        raise fail(f"unknown --reference loss {reference!r}; valid losses: "
                   f"{', '.join(loss_names())}", 2)
    on_disk = bool(run_dirs) or last is not None or group is not None
    check_tuning_flags(on_disk=on_disk, tune_lr=tune_lr, lr_grid=lr_grid,
                       select_given=select is not None, tune_seeds=tune_seeds, best_of=best_of)
    criterion = DEFAULT_CRITERION if select is None else Criterion(select.value)
    flags = keyword_overrides(epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer,
                              batch_size=batch_size, device=device, out_dir=out_dir,
                              data_dir=data_dir)
    if progress is not None:
        flags["log.progress"] = progress.value

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
        root = out_dir if out_dir is not None else Path("runs")
        records, skipped = select_runs(root, paths=run_dirs or [], last=last, group=group)
        _report_skipped(skipped)
        if not records:
            raise fail(f"no runs to compare ({len(skipped)} skipped)", 1)
        from ce_lab.comparison.build import build_table

        # An unknown --sort column, or one seed twice in a cell, fails before any file is written.
        build_table(records, sort=sort)
        parents = {r.path.resolve().parent for r in records}
        if out_dir is None and run_dirs and len(parents) == 1:
            root = parents.pop()  # next to the runs compared, like the compare-* of a training
        comp_dir = create_comparison_dir(root)
        try:
            if best_of is not None:
                from ce_lab.experiments import best_of as choose_best

                result, tuning = choose_best(
                    records, comp_dir, best_of, criterion=criterion,
                    tune_seeds=comparing.parse_seeds(tune_seeds, "--tune-seeds"),
                    reference=reference, sort=sort, plots=not no_plots, skipped=skipped)
                say_tuning(tuning)
            else:
                result = comparing.write_comparison(records, comp_dir, reference=reference,
                                                    sort=sort, plots=not no_plots,
                                                    skipped=skipped)
        except BaseException:  # a full disk, ...: no half-written compare-* folder is left
            import shutil

            shutil.rmtree(comp_dir, ignore_errors=True)
            raise
        render_comparison(result, fmt, output)
        return

    from ce_lab.progress import make_reporter

    loss_list = comparing.parse_losses(losses)
    seed_list = comparing.parse_seeds(seeds)
    overrides = comparing.parse_loss_overrides(set_loss or [], loss_list)
    base = resolve_config(config, set_ or [], flags)
    if sort:
        check_sort_key(sort, base.log.thresholds)
    if reference is not None and reference not in loss_list:
        raise fail(f"--reference {reference} is not among --losses ({', '.join(loss_list)})", 2)
    configs = comparing.build_configs(base, loss_list, seed_list or [base.seed], overrides)
    reporter = make_reporter(progress.value if progress else base.log.progress, err_console)

    from ce_lab.training.fusion import plan_stacks

    # Said here too, so --progress none (which silences the reporter's notes) still tells.
    stacks = max(len(plan_stacks(c, max_members)) for c in configs.values())
    how = "fused" if stacks == 1 else (
        f"in {stacks} stacks one after another: configs differ beyond what a stack may hold "
        "(the loss, optimizer hyperparameters, schedule), or --max-members")

    def announce(comp_dir: Path, group_id: str) -> None:
        err_console.print(f"comparison {group_id}: {len(loss_list)} losses x "
                          f"{len(configs)} seed(s), {how} -> {comp_dir}", highlight=False,
                          soft_wrap=True)

    from ce_lab.cli.data_cmd import prepare_data

    eval_seeds = seed_list or [base.seed]
    tuning_in = tuning_inputs(lr, set_ or [], lr_grid, tune_seeds, eval_seeds) if tune_lr else None
    prepare_data(base.data)  # fetch with progress before the comparison folder exists
    if tuning_in is not None:
        trained = _tune_then_compare(base, loss_list, eval_seeds, overrides, *tuning_in,
                                     criterion=criterion, reference=reference, sort=sort,
                                     plots=not no_plots, reporter=reporter,
                                     max_members=max_members)
    else:
        trained = comparing.train_and_compare(configs, base.out_dir, reference=reference,
                                              sort=sort, plots=not no_plots, reporter=reporter,
                                              on_dir=announce, max_members=max_members)
    tuned_runs = getattr(trained, "tuning_outcomes", None) or []
    failed = [o for o in [*tuned_runs, *trained.outcomes] if o.status == Status.FAILED]
    from rich.markup import escape

    for o in failed:
        message = " ".join(str(o.message or "").split())  # one line, whatever the error held
        err_console.print(f"[red]failed:[/red] {escape(f'{o.run_dir}: {message}')}",
                          highlight=False, soft_wrap=True)
    if trained.result is None:
        raise fail("no run finished; nothing to compare", 1)
    _report_skipped(trained.result.skipped)
    render_comparison(trained.result, fmt, output)
    line = None if tune_lr else shared_lr_line(configs)
    if line:
        err_console.print(f"note: {escape(line)}", highlight=False, soft_wrap=True)
    if trained.interrupted:
        err_console.print("interrupted: the comparison holds the runs that finished")
        raise typer.Exit(Status.INTERRUPTED.exit_code)


def _tune_then_compare(base, losses, seeds, overrides, grid, tune, *, criterion, reference,
                       sort, plots, reporter, max_members):
    from ce_lab.experiments import default_tune_seeds, tune_then_compare

    def announce(comp_dir, group_id):
        t = tune if tune is not None else default_tune_seeds(seeds)
        err_console.print(f"comparison {group_id}: tuning {len(losses)} losses x {len(grid)} "
                          f"rates on seed(s) {', '.join(map(str, t))}, then {len(seeds)} "
                          f"evaluation seed(s) -> {comp_dir}", highlight=False, soft_wrap=True)

    trained = tune_then_compare(base, losses, seeds, lr_grid=grid, criterion=criterion,
                                tune_seeds=tune, overrides=overrides, reference=reference,
                                sort=sort, plots=plots, reporter=reporter, on_dir=announce,
                                on_tuned=say_tuning, max_members=max_members)
    if trained.tuning is None and trained.interrupted:
        err_console.print(f"interrupted while tuning: nothing compared; the tuning runs are in "
                          f"{trained.tuning_dir}", highlight=False, soft_wrap=True)
        from ce_lab.runs.folder import Status

        raise typer.Exit(Status.INTERRUPTED.exit_code)
    return trained
