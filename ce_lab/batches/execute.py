"""Run a batch's plan on an executor, record every outcome in batch.json, and compare what
finished. Ctrl-C stops scheduling and interrupts the running tasks, which checkpoint.

The executor runs exactly the plan's tasks (``ce_lab.batches.tasks.plan_batch``), in its order; its
capacity says only how many run at once, never how entries are grouped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ce_lab.batches.plan import BUSY, SKIP, Opened, action_for, reconcile
from ce_lab.batches.sizes import MAX_ERROR_CHARS
from ce_lab.batches.store import (
    LOGS,
    BatchState,
    EntryRecord,
    record_entries,
    relative_run,
    run_path,
    write_state,
)
from ce_lab.batches.tasks import task_payload
from ce_lab.errors import CeLabError
from ce_lab.plan import Plan
from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import ENDED_STATUSES, RESULT_STATUSES, Status
from ce_lab.runs.read import read_summary


class Executor(Protocol):
    name: str
    capacity: int  # tasks at once
    detached: bool  # its tasks were handed over and let go (slurm --detach): none is waited for

    def running(self) -> int: ...
    def start(self, task: dict[str, Any]) -> None: ...
    def submit(self) -> None: ...  # hand over the tasks start() was given (SLURM: one array)
    def wait(self, timeout: float) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]: ...
    def interrupt(self) -> None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...
    def log_path(self, task: dict[str, Any]) -> Path | None: ...


@dataclass
class BatchResult:
    batch_dir: Path
    state: BatchState
    interrupted: bool = False
    ran: int = 0  # entries given to a worker in this invocation
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)  # entries left to the live process owning them
    detached: bool = False  # submitted and let go: a later call collects them
    jobs: list[str] = field(default_factory=list)  # the jobs submitted (SLURM ids)

    @property
    def failed(self) -> list[EntryRecord]:
        return [e for e in self.state.entries if e.status == Status.FAILED]

    @property
    def diverged(self) -> list[EntryRecord]:
        return [e for e in self.state.entries if e.status == Status.DIVERGED]

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C; 1 if an entry did not end with a result (failed); else 0."""
        if self.detached:
            return 0
        if self.interrupted:
            return Status.INTERRUPTED.exit_code
        done = all(e.status in RESULT_STATUSES or e.index in self.busy for e in self.state.entries)
        return 0 if done else Status.FAILED.exit_code


Event = Callable[[str, EntryRecord, BatchState], None]  # ("start" | "end", entry, state)


def execute(opened: Opened, plan: Plan, executor: Executor, *, on_event: Event | None = None,
            poll_seconds: float = 0.25, adopted: list[dict[str, Any]] = ()) -> BatchResult:
    """Run ``plan``'s tasks (made from ``opened``); Ctrl-C (KeyboardInterrupt) stops scheduling, interrupts
    the running tasks (they checkpoint), records them as interrupted and returns. ``adopted``: tasks
    an earlier batch process started on ``executor`` and never collected (SLURM jobs), waited
    for as if started here."""
    from ce_lab.safe_io import now_iso

    batch_dir, state = opened.batch_dir, opened.state
    records = {r.index: r for r in state.entries}
    tasks = [task_payload(t, state.batch_id) for t in plan.tasks]
    for task in tasks:
        if task["kind"] == "train":  # absolute: a Ray worker runs in another folder
            task["runs_file"] = str(Path(os.path.abspath(batch_dir)) / LOGS /
                                    f"{task['task_id']}.runs.json")
    if any(t["kind"] == "train" for t in tasks):
        (batch_dir / LOGS).mkdir(parents=True, exist_ok=True)
    result = BatchResult(batch_dir, state)
    result.skipped = sum(1 for r in state.entries if action_for(batch_dir, r) == SKIP)
    result.busy = [r.index for r in state.entries if action_for(batch_dir, r) == BUSY]
    emit = on_event or (lambda *_: None)

    opening: dict[str, dict[str, Any]] = {}  # train tasks running whose run folders are unknown

    def note_opened(task: dict[str, Any]) -> bool:
        """Record the run folders the task's worker has made (before it trains them), so a
        worker that is killed leaves its entries' runs to resume, not to train again. True if
        one was new."""
        found = reported_runs(Path(task["runs_file"]))
        new = [i for i in task["entries"] if i in found and records[i].run_dir is None]
        for i in new:
            records[i].run_dir = relative_run(batch_dir, Path(found[i]))
        if all(records[i].run_dir is not None for i in task["entries"]):
            opening.pop(task["task_id"], None)
        return bool(new)

    def collect(waited: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        for task, results in waited:
            ended = opening.pop(task.get("task_id"), None)
            if ended is not None:
                note_opened(ended)  # a killed worker reports no run folder: its file does
            record([r for r in results if r["index"] in records])

    def record(results: list[dict[str, Any]]) -> None:
        for res in results:
            rec = records[res["index"]]
            rec.status = res["status"] if res["status"] in ENDED_STATUSES else Status.FAILED
            if res.get("run_dir"):
                rec.run_dir = relative_run(batch_dir, Path(res["run_dir"]))
            rec.error = (_bounded(res.get("error"))
                         if rec.status in (Status.FAILED, Status.INTERRUPTED) else None)
            rec.ended = now_iso()
        record_entries(batch_dir, state, [records[res["index"]] for res in results])
        for res in results:
            emit("end", records[res["index"]], state)

    for task in adopted:
        for i in task["entries"]:
            if i in records:
                records[i].status, records[i].ended = Status.RUNNING, None
        if task["kind"] == "train":
            opening[task["task_id"]] = task
    queue = list(tasks)
    refused = False
    try:
        while queue or executor.running():
            started = []
            while queue and executor.running() < executor.capacity:
                task = queue.pop(0)
                log = executor.log_path(task)
                for i in task["entries"]:
                    rec = records[i]
                    rec.status, rec.error, rec.ended = Status.RUNNING, None, None
                    rec.started = now_iso()
                    rec.attempts += 1
                    rec.log = str(log.relative_to(batch_dir)) if log else None
                    if task["kind"] == "train":
                        rec.run_dir = None  # a fresh run gets a fresh folder
                if task["kind"] == "train":
                    Path(task["runs_file"]).unlink(missing_ok=True)  # an earlier call's
                    opening[task["task_id"]] = task
                record_entries(batch_dir, state, [records[i] for i in task["entries"]])
                executor.start(task)
                result.ran += len(task["entries"])
                started.append(task)
            executor.submit()  # SLURM: the tasks just started, as one job array
            for task in started:
                for i in task["entries"]:
                    emit("start", records[i], state)
            collect(executor.wait(poll_seconds))
            for t in list(opening.values()):  # appended, as every start and end (not rewritten)
                if note_opened(t):
                    record_entries(batch_dir, state, [records[i] for i in t["entries"]])
    except CeLabError:  # the executor refused the tasks (sbatch did): none of them started
        refused = True
        raise
    except KeyboardInterrupt:
        result.interrupted = True
        executor.interrupt()
        try:
            while executor.running():
                collect(executor.wait(poll_seconds))
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait for checkpoints
            executor.kill()
    finally:
        executor.close()
        result.detached = executor.detached
        if result.detached:  # its entries stay running until a later call collects them
            state.status = Status.RUNNING
        else:
            for rec in state.entries:
                if rec.status == Status.RUNNING:
                    rec.status, rec.ended = Status.INTERRUPTED, now_iso()
            reconcile(batch_dir, state, opened.batch.out_dir)
            state.status = (Status.INTERRUPTED if result.interrupted
                            else Status.FAILED if result.failed or refused else Status.COMPLETED)
        write_state(batch_dir, state)
    return result


def reported_runs(path: Path) -> dict[int, str]:
    """{entry index: run folder} as a worker wrote them (``ce_lab.batches.worker.runs_recorder``);
    {} while there is no such file, or it is not what a worker writes."""
    from ce_lab.safe_io import MAX_JSON_BYTES, read_limited_text

    try:
        data = json.loads(read_limited_text(path, MAX_JSON_BYTES))
    except (OSError, ValueError, RecursionError, CeLabError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {int(k): v for k, v in data.items() if k.isdigit() and isinstance(v, str) and v}


def _bounded(error: Any) -> str | None:
    """An error as recorded in batch.json: cut to MAX_ERROR_CHARS, so every entry's record has a
    bound (the read cap of batch.json follows from it); the log has the whole story."""
    if error is None:
        return None
    error = str(error)
    return error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS - 1] + "…"


def compare_finished(result: BatchResult, plots: bool = True):
    """The comparison of every finished entry, grouped by the keys the batch varies (not the
    seed), written into the batch folder (tables, plots, report.md, report.html). None if nothing
    finished."""
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.record import load_run

    records, skipped = [], []
    for rec in result.state.entries:
        if rec.status not in RESULT_STATUSES:
            continue
        try:
            records.append(load_run(run_path(result.batch_dir, rec.run_dir)))
        except RunFolderError as e:
            skipped.append(str(e))
    if not records:
        return None
    return write_comparison(records, result.batch_dir, group_by=result.state.group_by,
                            plots=plots, skipped=skipped,
                            title=f"ce-lab batch {result.state.batch_id}")


def entry_summary(batch_dir: Path, rec: EntryRecord) -> dict[str, Any] | None:
    path = run_path(batch_dir, rec.run_dir)
    if path is None:
        return None
    try:
        return read_summary(path)
    except RunFolderError:
        return None
