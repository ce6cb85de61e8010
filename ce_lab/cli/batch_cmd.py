"""``ce-lab batch``: run every configuration a batch file describes, then compare them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.batches.sizes import DEFAULT_MAX_ENTRIES
from ce_lab.cli._common import (
    MaxMembersOpt,
    OutDirOpt,
    SetOpt,
    cli_errors,
    console,
    err_console,
)
from ce_lab.plan import DEFAULT_SPLIT, Split
from ce_lab.runs.folder import Status

# batch.json (ids, errors) and run folders are read from disk: markup and control characters too
from ce_lab.shown import rich_cell as escape
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS


class ExecutorKind(str, Enum):
    local = "local"
    ray = "ray"
    slurm = "slurm"


ACTION_TEXT = {"skip": "skip (done)", "resume": "resume", "run": "run", "rerun": "rerun",
               "busy": "skip (still running elsewhere)", "collect": "collect (SLURM job)"}
SLURM = "SLURM (--executor slurm)"  # the help panel of its options


def _lookup(config: dict, dotted: str):
    """The resolved value of a dotted key (what the entry runs with, set by it or by the base)."""
    value = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _plan_table(planned):
    from rich.table import Table

    from ce_lab.batches.spec import override_text
    from ce_lab.config import to_dict

    opened, plan = planned.opened, planned.plan
    keys = opened.state.varied_keys
    where = (str(opened.batch_dir) if opened.continued
             else f"a new folder under {opened.batch.out_dir}")
    table = Table(title=f"batch {opened.batch.name}: {len(opened.state.entries)} runs "
                        f"({escape(where)})")
    table.add_column("#", justify="right")
    for k in keys or ["overrides"]:
        table.add_column(k)
    table.add_column("config hash")
    table.add_column("status")
    table.add_column("action")
    table.add_column("stack")
    configs = {e.index: to_dict(e.config) for e in opened.batch.entries}
    stacks = plan.stack_of()
    for rec, action in planned.actions():
        cells = ([override_text(_lookup(configs[rec.index], k)) for k in keys] if keys else
                 [" ".join(f"{k}={override_text(v)}" for k, v in rec.overrides.items())
                  or "(base)"])
        n, size = stacks.get(rec.index, (None, 0))
        where = "—" if n is None else f"{n + 1} ({size} member{'s' if size > 1 else ''})"
        table.add_row(str(rec.index), *map(escape, cells), rec.config_hash[:12], rec.status,
                      ACTION_TEXT[action], where)
    return table


def _shown(batch_dir: Path, recorded: str | None) -> str:
    """A path batch.json records relative to the batch folder (``../RUN``), as the user can open
    it from here: relative to the current folder when under it, else absolute."""
    import os

    from ce_lab.batches.store import run_path

    path = run_path(batch_dir, recorded)
    if path is None:
        return ""
    path = Path(os.path.abspath(path))  # folds the ../ away
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _printer(total: int, batch_dir: Path):
    """One line on stderr as each entry starts and ends."""
    from ce_lab.batches.execute import entry_summary

    done = {"n": 0}

    def on_event(kind, rec, state) -> None:
        label = escape(" ".join(f"{k}={v}" for k, v in rec.overrides.items()) or "(base)")
        if kind == "start":
            err_console.print(f"[dim]start[/dim]  #{rec.index} {label}", highlight=False,
                              soft_wrap=True)
            return
        done["n"] += 1
        color = {Status.COMPLETED: "green", Status.DIVERGED: "yellow",
                 Status.INTERRUPTED: "yellow"}.get(rec.status, "red")
        extra = ""
        summary = entry_summary(batch_dir, rec)
        if summary:
            acc = (summary.get("final") or {}).get("val_acc")
            if acc is not None:
                extra += f" val_acc={acc:.4f}"
            flags = summary.get("flags") or []
            if isinstance(flags, list) and flags:
                extra += f" flagged: {', '.join(map(str, flags))}"
            if summary.get("diverged_at") is not None:
                extra += (f" diverged at step {summary['diverged_at']}"
                          f" ({summary.get('diverged_quantity')})")
        if rec.status == Status.FAILED and rec.error:
            extra += f" error: {rec.error}"
        where = f" {_shown(batch_dir, rec.run_dir)}" if rec.run_dir else ""
        err_console.print(
            f"[{done['n']}/{total}] [{color}]{rec.status}[/{color}] #{rec.index} {label}"
            f"{escape(extra)}[dim]{escape(where)}[/dim]", highlight=False, soft_wrap=True)

    return on_event


def _summary(result) -> None:
    from ce_lab.batches.execute import entry_summary

    state = result.state
    counts = state.counts()
    parts = [f"{n} {s}" for s, n in counts.items()]
    console.print(f"batch {escape(state.batch_id)}: {', '.join(parts)} "
                  f"({result.ran} started now, {result.skipped} already done)", highlight=False,
                  soft_wrap=True)
    for rec in result.diverged:
        s = entry_summary(result.batch_dir, rec) or {}
        console.print(f"  [yellow]diverged[/yellow] #{rec.index} "
                      f"{escape(' '.join(f'{k}={v}' for k, v in rec.overrides.items()))}: "
                      f"{escape(str(s.get('diverged_quantity')))} non-finite at step "
                      f"{s.get('diverged_at')} ({escape(_shown(result.batch_dir, rec.run_dir))})",
                      highlight=False, soft_wrap=True)
    for rec in result.failed:
        log = f"; log {_shown(result.batch_dir, rec.log)}" if rec.log else ""
        console.print(f"  [red]failed[/red] #{rec.index} "
                      f"{escape(' '.join(f'{k}={v}' for k, v in rec.overrides.items()))}: "
                      f"{escape(str(rec.error))}{escape(log)}", highlight=False, soft_wrap=True)


@cli_errors
def batch(
    batch_file: Annotated[
        Path | None,
        typer.Argument(help="Batch YAML file (see configs/sweep-*.yaml).", show_default=False),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="BATCH_DIR",
                     help="Continue this batch folder."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the expanded runs and their stacks, then exit.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Tasks at once (default 1; ray, slurm: as many as "
                     "the cluster fits)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Torch threads per local job (default: at most "
                     "the CPUs / --jobs)."),
    ] = None,
    executor: Annotated[
        ExecutorKind | None,
        typer.Option("--executor", help="Where entries run (default local; --resume of a batch "
                     "that ran on SLURM: slurm). slurm: the batch folder (--out-dir) must be on "
                     "a file system the nodes share; see docs/slurm.md.", show_default=False),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster: auto or ray://HOST:PORT (default: start a "
                     "local Ray instance)."),
    ] = None,
    cpus_per_task: Annotated[
        float,
        typer.Option("--cpus-per-task", help="Ray: CPUs per task, one stack (default 1).",
                     show_default=False),
    ] = 1.0,
    gpus_per_task: Annotated[
        float, typer.Option("--gpus-per-task", help="Ray: GPU fraction per task, e.g. 0.25 "
                            "(default 0).", show_default=False)
    ] = 0.0,
    fuse: Annotated[
        bool, typer.Option("--fuse/--no-fuse", help="Train entries that may share a stack as one "
                           "fused model (default --fuse).", show_default=False)
    ] = True,
    max_members: MaxMembersOpt = DEFAULT_MAX_MEMBERS,
    split_stacks: Annotated[
        Split, typer.Option("--split-stacks", help="Split a stack while workers would sit idle, "
                            "or never (default when-idle).", show_default=False)
    ] = DEFAULT_SPLIT,
    new: Annotated[
        bool, typer.Option("--new", help="Start a new batch folder, not the latest one's.")
    ] = False,
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Skip the PNG plots.")
    ] = False,
    max_entries: Annotated[
        int, typer.Option("--max-entries", min=1, metavar="N", help="Refuse a batch of more "
                          f"entries (default {DEFAULT_MAX_ENTRIES:,}).", show_default=False)
    ] = DEFAULT_MAX_ENTRIES,
    set_: SetOpt = None,
    out_dir: OutDirOpt = None,
    slurm_partition: Annotated[
        str | None, typer.Option("--slurm-partition", rich_help_panel=SLURM,
                                 help="Partition of the jobs (default: the cluster's).")
    ] = None,
    slurm_time: Annotated[
        str | None, typer.Option("--slurm-time", rich_help_panel=SLURM, help="Time limit of "
                                 "each job, as sbatch --time takes it: MINUTES, HH:MM:SS, "
                                 "D-HH:MM (default: the partition's).")
    ] = None,
    slurm_cpus_per_task: Annotated[
        int | None, typer.Option("--slurm-cpus-per-task", min=1, rich_help_panel=SLURM,
                                 help="CPUs of each job, one stack; its torch threads "
                                 "(default 1).", show_default=False)
    ] = None,
    slurm_gpus_per_task: Annotated[
        int | None, typer.Option("--slurm-gpus-per-task", min=0, rich_help_panel=SLURM,
                                 help="GPUs of each job (default 0).", show_default=False)
    ] = None,
    slurm_mem: Annotated[
        str | None, typer.Option("--slurm-mem", rich_help_panel=SLURM, help="Memory of each "
                                 "job, as sbatch --mem takes it: 4G, 500M (default: the "
                                 "partition's).")
    ] = None,
    slurm_extra: Annotated[
        list[str] | None, typer.Option("--slurm-extra", metavar="KEY=VALUE",
                                       rich_help_panel=SLURM, help="Any other sbatch option, "
                                       "without its --, e.g. account=proj or qos=short; "
                                       "repeatable.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", rich_help_panel=SLURM, help="Submit the jobs, print "
                           "their ids and return; ce-lab batch --resume BATCH_DIR later waits "
                           "for them and writes the comparison (default: wait).")
    ] = False,
) -> None:
    """Run many configurations from one batch file, then compare them grouped by what varies.

    Running the same file again (or --resume BATCH_DIR) skips entries that completed, resumes
    interrupted ones from their checkpoints and reruns failed ones. Exit code 1 if an entry
    failed, 130 after Ctrl-C.
    """
    from ce_lab.lab.batch import dry_run_batch, prepare_batch, run_batch

    request = prepare_batch(batch_file, resume=resume, sets=set_ or [], out_dir=out_dir, new=new,
                            jobs=jobs, threads=threads,
                            executor=None if executor is None else executor.value,
                            address=address, cpus_per_task=cpus_per_task,
                            gpus_per_task=gpus_per_task, fuse=fuse, max_members=max_members,
                            split_stacks=split_stacks, plots=not no_plots,
                            max_entries=max_entries, detach=detach,
                            slurm={"partition": slurm_partition, "time": slurm_time,
                                   "cpus_per_task": slurm_cpus_per_task,
                                   "gpus_per_task": slurm_gpus_per_task, "mem": slurm_mem,
                                   "extra": slurm_extra})
    if dry_run:
        planned = dry_run_batch(request)
        console.print(_plan_table(planned))
        console.print(planned.plan.describe(), highlight=False, soft_wrap=True)
        if planned.continues is not None:
            console.print(f"continues {escape(str(planned.continues))}", highlight=False,
                          soft_wrap=True)
        return
    printer = None  # made once the entries to run are known

    def on_start(opened, described) -> None:
        nonlocal printer
        actions = [a for _, a in described]
        todo = {a: actions.count(a) for a in ("run", "rerun", "resume", "skip", "busy",
                                              "collect") if a in actions}
        verb = "continuing" if opened.continued else "new"
        console.print(f"batch {escape(opened.state.batch_id)} ({verb}): {len(actions)} entries: "
                      + ", ".join(f"{n} {a}" for a, n in todo.items())
                      + (f"; {opened.dropped} entries of the earlier file are no longer in it"
                         if opened.dropped else ""), highlight=False, soft_wrap=True)
        _say_busy(opened)
        printer = _printer(len(actions) - todo.get("skip", 0) - todo.get("busy", 0),
                           opened.batch_dir)

    ran = run_batch(request, on_start=on_start,
                    on_event=lambda *event: printer(*event), on_executed=_summary)
    _finish(ran.result, ran.comparison)


def _say_busy(opened) -> None:
    """One line per entry whose run folder a live process still owns: it is left to that process
    (never trained twice); a later run of the batch picks up its result or resumes it."""
    from ce_lab.batches.plan import describe_plan, live_owner
    from ce_lab.batches.store import run_path
    from ce_lab.runs.liveness import describe_owner

    for rec, action in describe_plan(opened):
        if action != "busy":
            continue
        path = run_path(opened.batch_dir, rec.run_dir)
        meta = live_owner(path) or {}
        err_console.print(f"entry {rec.index}: skipped, "
                          f"{escape(_shown(opened.batch_dir, rec.run_dir))} is still being trained "
                          f"({escape(describe_owner(meta))}); run the batch again once it ends",
                          highlight=False, soft_wrap=True)


def _finish(result, comparison) -> None:
    """After the end summary: how to continue an interrupted batch, or the comparison; exits
    with the batch's code."""
    if result.detached:
        console.print(f"submitted {len(result.jobs)} SLURM jobs: {escape(' '.join(result.jobs))}"
                      f"; ce-lab batch --resume {escape(str(result.batch_dir))} waits for them and "
                      "writes the comparison", highlight=False, soft_wrap=True)
        raise typer.Exit(0)
    if result.interrupted:
        err_console.print(f"interrupted: run the batch file again, or ce-lab batch --resume "
                          f"{escape(str(result.batch_dir))}, to finish what is left",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(Status.INTERRUPTED.exit_code)
    if comparison is not None:
        # The same rendering as `ce-lab compare`: tables, paired differences, notes, file paths.
        from ce_lab.cli.compare_cmd import TableFormat, render_comparison

        render_comparison(comparison, TableFormat.table, None)
    raise typer.Exit(result.exit_code)
