"""A stack's members as runs on disk: their folders, metric rows, outcomes and summaries.

The loop calls these; it knows no file format. Each member has its own run folder, config.yaml,
meta.json, metrics.csv, eval.csv and summary.json, exactly as a lone run has.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ce_lab.config import RunConfig, to_dict, to_yaml
from ce_lab.errors import CeLabError
from ce_lab.metrics import EVAL_ADDED_LATER, EVAL_HEADER, LOG_ADDED_LATER, metrics_header
from ce_lab.runs.files import CsvLog, base_meta, write_npz
from ce_lab.runs.folder import Status, create_run_dir
from ce_lab.runs.liveness import HEARTBEAT_EVERY_S, owner_fields
from ce_lab.runs.lock import RunLock
from ce_lab.runs.names import CONFIG, ERROR_LOG, EVALS, META, METRICS, SUMMARY, TEST_LOGITS
from ce_lab.safe_io import WriteError, atomic_write_text, now_iso, write_json
from ce_lab.summary import summarize

# The CSV headers come from the metric registry, the one definition of every column.
metric_header = metrics_header


@dataclass
class RunOutcome:
    run_dir: Path
    status: Status
    exit_code: int
    message: str | None = None
    summary: dict[str, Any] | None = None


@dataclass
class Member:
    index: int  # position in the stack
    cfg: RunConfig
    label: str  # what progress lines call it: the loss, plus the keys that tell members apart
    run_dir: Path
    meta: dict[str, Any]
    metrics: CsvLog | None = None
    evals: CsvLog | None = None
    status: Status = Status.RUNNING
    diverged_at: int | None = None
    diverged_quantity: str | None = None
    end_step: int = 0
    end_wall: float = 0.0
    test: dict[str, Any] | None = None  # loss, acc, ece, nll, brier, reliability (completed)
    test_logits: tuple[Any, Any] | None = None  # numpy (logits (N, C) float32, labels (N,) int64)
    message: str | None = None
    error_log: bool = False  # error.log was written
    lock: RunLock | None = None  # RUN/.lock, held until close_member
    events: Any = None  # ce_lab.tensorboard.RunEvents with log.tensorboard: true
    _last_beat: float = 0.0

    @property
    def alive(self) -> bool:
        return self.status == Status.RUNNING

    def stop(self, status: Status, step: int, wall: float) -> None:
        self.status, self.end_step, self.end_wall = status, step, wall

    def write_metrics(self, row: Mapping[str, Any]) -> None:
        self.metrics.write(row)
        self.to_events(row)

    def write_eval(self, row: Mapping[str, Any]) -> None:
        self.evals.write(row)
        self.to_events(row)

    def to_events(self, row: Mapping[str, Any], **at: Any) -> None:
        """The row into the TensorBoard event file, if there is one. The event file is a view of
        the CSVs: if it cannot be written the run goes on without it, with a warning."""
        if self.events is None:
            return
        try:
            self.events.scalars(row, **at)
        except Exception as e:  # the writer's thread failed (a full disk, ...)
            self.close_events(f"cannot write TensorBoard events of {self.run_dir}: {e}")

    def close_events(self, problem: str | None = None) -> None:
        events, self.events = self.events, None
        if events is not None:
            try:
                events.close()
            except Exception as e:
                problem = problem or f"cannot write TensorBoard events of {self.run_dir}: {e}"
        if problem:
            import warnings

            warnings.warn(problem + " (ce-lab export tensorboard writes them from the CSVs)",
                          stacklevel=2)

    def fail(self, exc: BaseException, step: int) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.status, self.end_step = Status.FAILED, step
        # A CeLabError (a full disk, ...) is its own one line; anything else names its type.
        self.message = str(exc) if isinstance(exc, CeLabError) else f"{type(exc).__name__}: {exc}"
        try:
            atomic_write_text(self.run_dir / ERROR_LOG, text)
            self.error_log = True
        except WriteError:  # the disk that failed the run may not take the traceback either
            self.error_log = False

    def heartbeat(self, force: bool = False) -> None:
        """Refresh meta.json's heartbeat, at most every HEARTBEAT_EVERY_S seconds (atomic)."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self._last_beat = now
        self.meta.update(owner_fields())
        write_json(self.run_dir / META, self.meta)


def create_members(cfgs: Sequence[RunConfig], labels: Sequence[str], device: str,
                   group: str | None) -> list[Member]:
    """New run folders, one per member, each with its config.yaml and meta.json."""
    dirs = [create_run_dir(c.out_dir, c.loss.name) for c in cfgs]
    ids = [d.name for d in dirs]
    members = []
    for i, (c, d) in enumerate(zip(cfgs, dirs)):
        others = [x for x in ids if x != d.name] if len(cfgs) > 1 else None
        meta = base_meta(d.name, device, group, others, torch_version=torch_version())
        try:
            lock = RunLock.acquire(d)
            members.append(Member(i, c, labels[i], d, meta, lock=lock))
            atomic_write_text(d / CONFIG, to_yaml(c))
        except BaseException:
            release_locks(members)
            raise
    return members


def release_locks(members: Sequence[Member]) -> None:
    for mem in members:
        if mem.lock is not None:
            mem.lock.release()
            mem.lock = None


def torch_version() -> str:
    import torch

    return torch.__version__


def resumed_member(cfg: RunConfig, run_dir: Path, meta: dict[str, Any], at_step: int) -> Member:
    """The member of a resumed run, once this process holds the run's lock (RunLocked, one line
    naming the owner, if another holds it) and the folder is still resumable under that lock
    (another resume may have finished it meanwhile)."""
    from ce_lab.runs.resume import check_resumable

    lock = RunLock.acquire(run_dir)
    try:
        meta = check_resumable(run_dir)
    except BaseException:
        lock.release()
        raise
    meta["status"] = Status.RUNNING
    meta["ended"] = None
    meta.update(owner_fields())  # this process owns the run now
    meta.setdefault("resumed", []).append({"at_step": at_step, "time": now_iso()})
    return Member(0, cfg, cfg.loss.name, run_dir, meta, lock=lock)


def _live_hparam_keys(members: Sequence[Member]) -> list[str]:
    """The HParams of live event files: the loss, the seed, and the keys that differ in the stack
    (the other stacks of a comparison are not known here)."""
    if not any(mem.cfg.log.tensorboard for mem in members):
        return []
    from ce_lab.tensorboard import hparam_keys

    return list(dict.fromkeys(["loss.name", *hparam_keys([to_dict(m.cfg) for m in members]),
                               "seed"]))


def open_logs(members: Sequence[Member], param_names: Sequence[str], squashes: Sequence[bool],
              keep_until_step: int | None) -> None:
    """meta.json as the run starts, and the CSV files (a resumed run drops rows after its
    checkpoint, which it logs again)."""
    live_keys = _live_hparam_keys(members)
    for mem in members:
        # The CSVs first: a resumed run's files are read as untrusted, and one that cannot be
        # continued is refused (one line) before meta.json is touched.
        header = metric_header(param_names, mem.cfg.log.grad_stats, squashes[mem.index])
        mem.metrics = CsvLog(mem.run_dir / METRICS, header, keep_until_step=keep_until_step,
                             added_later=LOG_ADDED_LATER)
        mem.evals = CsvLog(mem.run_dir / EVALS, EVAL_HEADER, keep_until_step=keep_until_step,
                           added_later=EVAL_ADDED_LATER)
        if mem.cfg.log.tensorboard:  # each member its own event file, in its own run folder
            from ce_lab.config import flatten
            from ce_lab.tensorboard import open_live

            mem.events = open_live(mem.run_dir, mem.run_dir.name, flatten(to_dict(mem.cfg)),
                                   mem.meta, resumed=keep_until_step is not None, keys=live_keys)
        write_json(mem.run_dir / META, mem.meta)
        mem._last_beat = time.monotonic()


def _n_classes(meta: dict[str, Any]) -> int:
    """The data set's classes from meta.json (a run from before it was recorded: MNIST's 10)."""
    data = meta.get("data")
    n = data.get("n_classes") if isinstance(data, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 2 else 10


def close_member(mem: Member, *, steps_per_epoch: int, examples: int) -> RunOutcome:
    """summary.json and the final meta.json of a member whose run has ended."""
    def failed_writing(e: WriteError) -> None:
        # A full disk (or a folder gone read-only) while ending: the run ends failed, with the
        # one line saying so; what is on disk (rows, the last checkpoint) stays as it was.
        if mem.status != Status.FAILED:
            mem.status, mem.message = Status.FAILED, str(e)
        mem.message = mem.message or str(e)

    if mem.test is not None and mem.events is not None:  # the test numbers, live
        from ce_lab.tensorboard import test_scalars

        mem.to_events(test_scalars(mem.test), step=mem.end_step, wall_s=mem.end_wall)
    mem.close_events()
    for log in (mem.metrics, mem.evals):
        if log is not None:
            try:
                log.close()
            except WriteError as e:
                failed_writing(e)
    if mem.test_logits is not None and mem.status == Status.COMPLETED:
        try:
            logits, labels = mem.test_logits
            write_npz(mem.run_dir / TEST_LOGITS, logits=logits, labels=labels)
        except WriteError as e:
            failed_writing(e)
    summary = None
    try:
        summary = summarize(
            mem.run_dir, status=mem.status, loss=mem.cfg.loss.name, seed=mem.cfg.seed,
            steps=mem.end_step, examples=examples, wall_seconds=mem.end_wall,
            steps_per_epoch=steps_per_epoch, thresholds=mem.cfg.log.thresholds,
            test=mem.test, diverged_at=mem.diverged_at,
            diverged_quantity=mem.diverged_quantity, group=mem.meta.get("group"),
            n_classes=_n_classes(mem.meta),
        )
        write_json(mem.run_dir / SUMMARY, summary)
    except WriteError as e:
        failed_writing(e)
        if summary is not None:
            summary["status"] = Status.FAILED
    except (OSError, ValueError, KeyError, TypeError, CeLabError) as e:  # its CSVs unreadable
        failed_writing(WriteError(f"{mem.run_dir}: cannot summarise the run ({e})"))
    mem.meta["status"] = mem.status
    mem.meta["ended"] = now_iso()
    try:
        write_json(mem.run_dir / META, mem.meta)
    except WriteError as e:
        failed_writing(e)  # the status could not be written; its owner's exit marks it crashed
    release_locks([mem])  # every ending: completed, diverged, interrupted, failed
    return RunOutcome(mem.run_dir, mem.status, Status(mem.status).exit_code, mem.message, summary)
