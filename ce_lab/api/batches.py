"""The Python API's batch: ``batch`` runs a batch file (or continues a batch folder) as
``ce-lab batch`` does, a thin typed wrapper over ``ce_lab.lab.batch``; ``BatchResult`` says what
each entry did and holds the comparison written into the batch folder."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.api.experiments import Comparison, Interrupted, _comparison
from ce_lab.api.reading import Run, _path
from ce_lab.errors import ParamError
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS

if TYPE_CHECKING:
    from ce_lab.batches.store import BatchState, EntryRecord
    from ce_lab.plan import Plan


@dataclass
class BatchEntry:
    """One entry of a batch: its overrides of the base, its status and its run folder."""

    index: int
    overrides: dict[str, Any]
    config_hash: str
    status: str  # completed, diverged, failed, interrupted, pending, running
    run_dir: Path | None
    error: str | None = None
    action: str | None = None  # dry_run: skip, resume, run, rerun or busy
    stack: int | None = None  # dry_run: the task (stack) it trains in, from 0; None: none

    def run(self) -> Run:
        """The entry's run folder as a Run (RunFolderError when it has none, or it is unreadable)."""
        from ce_lab.runs.files import RunFolderError

        if self.run_dir is None:
            raise RunFolderError(f"entry {self.index} has no run folder (status {self.status})")
        return Run(self.run_dir)


@dataclass
class BatchResult:
    """What ``batch`` did (or, with ``dry_run``, would do)."""

    dir: Path | None  # the batch folder; dry_run: the one it continues, None for a new one
    name: str
    entries: list[BatchEntry]
    exit_code: int = 0  # as ce-lab batch's: 1 if an entry failed
    comparison: Comparison | None = field(default=None, repr=False)  # None: nothing finished
    plan: Plan | None = field(default=None, repr=False)  # dry_run: the tasks (``.describe()``)
    ran: int = 0  # entries given to a worker by this call
    skipped: int = 0  # entries already done
    jobs: list[str] = field(default_factory=list)  # executor="slurm": the jobs submitted

    @property
    def failed(self) -> list[BatchEntry]:
        return [e for e in self.entries if e.status == "failed"]

    @property
    def diverged(self) -> list[BatchEntry]:
        return [e for e in self.entries if e.status == "diverged"]

    @property
    def runs(self) -> list[Run]:
        """The run folders of the entries that ended with a result (completed or diverged)."""
        return [e.run() for e in self.entries if e.status in ("completed", "diverged")]

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.status] = counts.get(e.status, 0) + 1
        return (f"BatchResult({self.name!r}, dir={str(self.dir) if self.dir else None!r}, "
                f"{', '.join(f'{n} {s}' for s, n in counts.items())})")


def _file(value: Any) -> Path:
    if not isinstance(value, (str, Path)):
        raise ParamError(f"«batch_file» must be a file (str or Path), got {value!r}")
    return Path(value)


def _entries(batch_dir: Path, state: BatchState, actions: Mapping[int, str] | None = None,
             stacks: Mapping[int, tuple[int, int]] | None = None) -> list[BatchEntry]:
    from ce_lab.batches.store import run_path

    return [BatchEntry(r.index, dict(r.overrides), r.config_hash, str(r.status),
                       run_path(batch_dir, r.run_dir), r.error,
                       None if actions is None else actions[r.index],
                       None if stacks is None else stacks.get(r.index, (None, 0))[0])
            for r in state.entries]


def _lines(progress: str | None):
    """The entry lines on stderr (start, end) when ``progress`` asks; None when silent."""
    from rich.console import Console

    from ce_lab.lab.batch import entry_label

    if progress is None:
        progress = "plain" if Console(stderr=True).is_terminal else "none"
    if not isinstance(progress, str) or progress not in ("auto", "bar", "plain", "none"):
        raise ParamError(f"«progress» must be auto, bar, plain or none, got {progress!r}")
    if progress == "none":
        return None
    done = [0]

    def on_event(kind: str, rec: EntryRecord, state: BatchState) -> None:
        if kind == "start":
            print(f"start  #{rec.index} {entry_label(rec)}", file=sys.stderr, flush=True)
            return
        done[0] += 1
        error = f" error: {rec.error}" if rec.status == "failed" and rec.error else ""
        print(f"[{done[0]}] {rec.status} #{rec.index} {entry_label(rec)}{error}",
              file=sys.stderr, flush=True)

    return on_event


def batch(batch_file: str | Path | None = None, *, resume: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, out_dir: str | Path | None = None,
          jobs: int | None = None, threads: int | None = None, executor: str | None = None,
          address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
          fuse: bool = True, max_members: int = DEFAULT_MAX_MEMBERS,
          split_stacks: str = "when-idle", new: bool = False, plots: bool = True,
          dry_run: bool = False, progress: str | None = None,
          max_entries: int | None = None, slurm: Mapping[str, Any] | None = None,
          detach: bool = False) -> BatchResult:
    """Run every configuration a batch file describes, then compare them grouped by what varies,
    as ``ce-lab batch``; returns a BatchResult (``.entries``, ``.comparison``, ``.exit_code``).

    ``overrides`` are dotted config keys on the batch's base (``--set``); ``out_dir`` is where
    the batch folder and its runs go. Running the same file again continues its latest batch
    folder (``new=True``: a new one), skipping entries that completed, resuming interrupted ones
    and rerunning failed ones; ``resume=BATCH_DIR`` continues that folder. ``jobs`` entries run
    at once (``executor="ray"``: on a Ray cluster, ``address``, with ``cpus_per_task`` and
    ``gpus_per_task`` per task; ``executor="slurm"``: as SLURM jobs, ``slurm`` a mapping of
    partition, time, cpus_per_task, gpus_per_task, mem and extra (more sbatch options), the
    batch folder on a file system the nodes share, and ``detach=True`` returns once they are
    submitted (``.jobs``), a later ``batch(resume=...)`` collecting them; executor None: local,
    or slurm when resuming a batch that ran on SLURM); ``fuse``, ``max_members`` and
    ``split_stacks`` ("when-idle" or "never") decide which entries train as one stacked model.
    ``dry_run=True`` writes nothing and returns the plan: each entry's ``action`` and ``stack``,
    and ``.plan``. A batch that expands to more than ``max_entries`` entries (default 100,000)
    is refused (ParamError) before anything is expanded.

    A failed entry is a result, not an exception: ``.failed``, ``.exit_code`` 1; the others are
    compared. Raises ParamError naming the parameter for a bad argument, ConfigError for a bad
    batch file, before anything is written; Interrupted (``.comp_dir``: the batch folder) on
    Ctrl-C, after the running entries checkpointed: ``batch(resume=e.comp_dir)`` finishes it.
    Nothing is printed unless ``progress`` asks ("plain": a line per entry on stderr; by
    default only on a terminal)."""
    from ce_lab.lab.batch import dry_run_batch, prepare_batch, run_batch

    on_event = _lines(progress)
    request = prepare_batch(
        None if batch_file is None else _file(batch_file),
        resume=None if resume is None else _path(resume, "resume"), overrides=overrides,
        out_dir=None if out_dir is None else _path(out_dir, "out_dir"), new=bool(new),
        jobs=jobs, threads=threads, executor=executor, address=address,
        cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, fuse=bool(fuse),
        max_members=max_members, split_stacks=split_stacks, plots=bool(plots),
        max_entries=max_entries, slurm=slurm, detach=bool(detach))
    if dry_run:
        planned = dry_run_batch(request)
        opened = planned.opened
        actions = {rec.index: action for rec, action in planned.actions()}
        return BatchResult(planned.continues, opened.batch.name,
                           _entries(opened.batch_dir, opened.state, actions,
                                    planned.plan.stack_of()),
                           plan=planned.plan,
                           skipped=sum(1 for a in actions.values() if a == "skip"))
    ran = run_batch(request, on_event=on_event)
    result = ran.result
    if result.interrupted:
        raise Interrupted(f"interrupted; continue with: ce_lab.batch(resume="
                          f"{str(result.batch_dir)!r})", result.batch_dir)
    return BatchResult(result.batch_dir, result.state.name,
                       _entries(result.batch_dir, result.state), result.exit_code,
                       None if ran.comparison is None else _comparison(ran.comparison),
                       ran=result.ran, skipped=result.skipped, jobs=result.jobs)
