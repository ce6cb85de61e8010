"""``ce-lab train``: one run with one loss, or ``--resume`` of an interrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import (
    BatchOpt,
    ConfigOpt,
    DataDirOpt,
    DeviceOpt,
    EpochsOpt,
    LossOpt,
    LrOpt,
    MaxStepsOpt,
    OptimOpt,
    OutDirOpt,
    ProgressOpt,
    SeedOpt,
    SetOpt,
    ThreadsOpt,
    cli_errors,
    console,
    err_console,
    fail,
)
from ce_lab.cli.completion import complete_run
from ce_lab.runs.folder import Status


def render_outcome(outcome) -> None:
    """The short summary printed when a run ends."""
    from rich.markup import escape
    from rich.table import Table

    s = outcome.summary or {}
    final = s.get("final") or {}

    def pct(v):
        return "—" if v is None else f"{100 * v:.2f}%"

    table = Table(show_header=False, box=None, pad_edge=False)
    colour = {Status.COMPLETED: "green", Status.DIVERGED: "yellow"}.get(outcome.status, "red")
    table.add_row("status", f"[{colour}]{outcome.status}[/{colour}]")
    flags = s.get("flags") or []  # completed without learning: stalled, chance
    if flags:
        table.add_row("flagged", f"[yellow]{escape(', '.join(map(str, flags)))}[/yellow]")
    table.add_row("loss", str(s.get("loss")))
    table.add_row("steps", str(s.get("steps")))
    table.add_row("val acc (final / best)", f"{pct(final.get('val_acc'))} / {pct(s.get('best_val_acc'))}")
    table.add_row("test acc", pct(final.get("test_acc")))
    for t, hit in (s.get("convergence") or {}).items():
        text = "not reached" if hit is None else (
            f"step {hit['step']} ({hit['examples']} examples, {hit['seconds']:.1f} s)")
        table.add_row(f"val acc ≥ {t}", text)
    if s.get("diverged_at") is not None:
        table.add_row("diverged", f"step {s['diverged_at']} ({s.get('diverged_quantity')})")
    table.add_row("run folder", str(outcome.run_dir))
    console.print(table)


def print_json(outcome) -> None:
    """The run's summary.json as one line of JSON on stdout, with ``run_dir`` added (and the
    status and message of a run that ended without a summary)."""
    import json

    from ce_lab.safe_io import finite_or_none

    data = dict(outcome.summary or {"status": str(outcome.status), "message": outcome.message})
    data["run_dir"] = str(outcome.run_dir)
    typer.echo(json.dumps(finite_or_none(data), allow_nan=False, default=str))


@cli_errors
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    loss: LossOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    optimizer: OptimOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    out_dir: OutDirOpt = None,
    data_dir: DataDirOpt = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue an interrupted run folder from its checkpoint.",
                     autocompletion=complete_run),
    ] = None,
    progress: ProgressOpt = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as one JSON object on stdout (with "
                     "run_dir); progress goes to stderr. Same exit codes."),
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Train the MLP with one loss; write a run folder with metrics, summary and checkpoints.

    Exit codes: 0 completed, 3 diverged, 130 interrupted, 1 failed, 2 bad usage or config.
    """
    from ce_lab import threads as thread_policy

    thread_policy.configure(threads)  # before torch is imported: it reads the wait policy once
    from ce_lab.config import check_trains, keyword_overrides, resolve_config
    from ce_lab.progress import make_reporter

    if resume is not None:
        given = [config, set_, loss, epochs, max_steps, lr, optimizer, batch_size, device, seed,
                 out_dir, data_dir]
        if any(v is not None for v in given):  # --epochs 0 is an option given too
            raise fail("--resume continues a run with its own config; give no other options", 2)
        from ce_lab.lab import check_resume

        cfg = check_resume(resume)  # before the data is prepared: one line, exit 2 (or 1)
    else:
        flags = keyword_overrides(loss=loss, epochs=epochs, max_steps=max_steps, lr=lr,
                                  optimizer=optimizer, batch_size=batch_size, device=device,
                                  seed=seed, out_dir=out_dir, data_dir=data_dir)
        if progress is not None:
            flags["log.progress"] = progress.value
        cfg = check_trains(resolve_config(config, set_ or [], flags))  # before any fetch

    from ce_lab.cli.data_cmd import prepare_data
    from ce_lab.lab import resume_run, train_run
    from ce_lab.progress import survive_closed_pipe

    # `ce-lab train | head`: a closed stdout or stderr stops the run as one Ctrl-C does (exit 130,
    # checkpoint, resumable) and silences that output, with no traceback, at any progress mode.
    survive_closed_pipe(console)
    survive_closed_pipe(err_console)
    prepare_data(cfg.data)

    # Progress and notes on stderr, as every command's; stdout carries the result only: the
    # summary table, or with --json the one JSON object.
    reporter = make_reporter(progress.value if progress else cfg.log.progress, err_console)
    if resume is not None:
        outcome = resume_run(resume, reporter=reporter)
    else:
        outcome = train_run(cfg, reporter=reporter)
    if as_json:
        print_json(outcome)
    else:
        render_outcome(outcome)
    if outcome.status == Status.FAILED:
        log = outcome.run_dir / "error.log"
        where = f" (traceback in {log})" if log.is_file() else ""
        raise fail(f"run failed: {outcome.message}{where}", 1)
    if outcome.status == Status.INTERRUPTED:
        from rich.markup import escape

        # One line however long the path (soft_wrap), and a path's [brackets] are not markup.
        err_console.print(f"interrupted; continue with: ce-lab train --resume "
                          f"{escape(str(outcome.run_dir))}", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)
