"""Open (or continue) a batch folder and decide what each entry needs.

What an entry needs, by what batch.json (and the entry's run folder) says about its config hash:

- completed / diverged, run folder present: nothing (skip) - a diverged run is a result;
- interrupted (or left "running" by a batch that was killed) with a checkpoint: resume it;
- failed because its worker was killed (its run crashed) after a checkpoint: resume it too;
- failed, pending, new, or interrupted before its first checkpoint: train it (again).

``tasks`` turns these actions into tasks; ``execute`` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ce_lab.batches.sizes import DEFAULT_MAX_ENTRIES
from ce_lab.batches.spec import Batch, batch_from_saved, config_hash
from ce_lab.batches.store import (
    BASE_COPY,
    BATCH_COPY,
    BATCH_JSON,
    BatchState,
    EntryRecord,
    latest_batch_dir,
    read_state,
    relative_run,
    run_path,
    write_state,
)
from ce_lab.errors import ParamError, UsageError
from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import NON_RUN_PREFIXES, RESULT_STATUSES, Status, create_batch_dir
from ce_lab.runs.liveness import effective_status
from ce_lab.runs.names import CHECKPOINT, CONFIG, SUMMARY
from ce_lab.runs.read import read_effective_status, read_meta

SKIP, RESUME, RUN, RERUN = "skip", "resume", "run", "rerun"
BUSY = "busy"  # its run folder is still owned by a live process (an orphan of a killed batch)


def _group_runs(out_dir: Path, group: str) -> dict[str, Path]:
    """Config hash -> newest run folder of ``group`` under ``out_dir`` (to find runs a killed
    batch never heard back about)."""
    from ce_lab.config import load_config
    from ce_lab.errors import CeLabError
    from ce_lab.safe_io import MAX_YAML_BYTES, check_regular_file

    found: dict[str, tuple[int, str, Path]] = {}
    if not out_dir.is_dir():
        return {}
    for p in sorted(out_dir.iterdir(), key=lambda p: p.name):
        if p.name.startswith(NON_RUN_PREFIXES) or not p.is_dir():
            continue
        try:
            meta = read_meta(p)
            if meta.get("group") != group:
                continue
            check_regular_file(p / CONFIG, MAX_YAML_BYTES)  # a FIFO would hang the read
            key = config_hash(load_config(p / CONFIG))
        except (OSError, ValueError, CeLabError):
            continue
        # One run per entry: a finished result first, then one still being trained, then the
        # newest (names sort by time), so a rerun never adds a second result for an entry.
        status = effective_status(meta)
        rank = 2 if status in RESULT_STATUSES and (p / SUMMARY).is_file() else (
            1 if status == Status.RUNNING else 0)
        if key not in found or (rank, p.name) >= found[key][:2]:
            found[key] = (rank, p.name, p)
    return {k: v[2] for k, v in found.items()}


def live_owner(path: Path | None) -> dict[str, Any] | None:
    """meta.json of a run folder still owned by a live process (see ce_lab.runs.liveness), or
    None: such a folder is never resumed or rerun by another process."""
    if path is None:
        return None
    try:
        meta = read_meta(path)
    except RunFolderError:
        return None
    return meta if effective_status(meta) == Status.RUNNING else None


def reconcile(batch_dir: Path, state: BatchState, out_dir: Path) -> None:
    """Bring entries up to date with their run folders: a batch killed without a word leaves
    entries "running", and a worker that died may never have reported its run folder."""
    scanned: dict[str, Path] | None = None
    for rec in state.entries:
        if rec.status in (Status.COMPLETED, Status.DIVERGED, Status.PENDING) and rec.run_dir is None:
            if rec.status != Status.PENDING:
                rec.status = Status.PENDING  # a result without a folder is no result
            continue
        if rec.run_dir is None and rec.status in (Status.RUNNING, Status.INTERRUPTED,
                                                  Status.FAILED):
            if scanned is None:
                scanned = _group_runs(out_dir, state.batch_id)
            if rec.config_hash in scanned:
                rec.run_dir = relative_run(batch_dir, scanned[rec.config_hash])
        path = run_path(batch_dir, rec.run_dir)
        if path is None:
            if rec.status == Status.RUNNING:
                rec.status = Status.INTERRUPTED
            continue
        on_disk = read_effective_status(path)  # "crashed": running, but its owner is gone
        if on_disk in RESULT_STATUSES and (path / SUMMARY).is_file():
            rec.status, rec.error = on_disk, None
        elif rec.status in RESULT_STATUSES:  # the folder is gone or was never finished
            rec.status, rec.run_dir = Status.PENDING, None
        elif rec.status == Status.RUNNING or (on_disk == Status.CRASHED
                                              and rec.status != Status.FAILED):
            rec.status = Status.INTERRUPTED  # resumed from its checkpoint, else rerun
        # A failed entry whose worker was killed stays failed (what this batch saw);
        # action_for resumes its run, which is crashed, not failed.


def _resumable(rec: EntryRecord, path: Path | None) -> bool:
    """An interrupted entry with a checkpoint, or a failed one whose worker died (kill -9, the
    OOM killer) after its run's first checkpoint: its run reads as crashed (or interrupted, had
    it a moment to stop) and is resumed, never trained a second time beside it. A run that
    itself failed (its error in error.log) is trained again."""
    if path is None or not (path / CHECKPOINT).is_file():
        return False
    if rec.status == Status.INTERRUPTED:
        return True
    return rec.status == Status.FAILED and read_effective_status(path) in (Status.CRASHED,
                                                                          Status.INTERRUPTED)


def action_for(batch_dir: Path, rec: EntryRecord) -> str:
    path = run_path(batch_dir, rec.run_dir)
    if rec.status in RESULT_STATUSES:
        return SKIP
    if live_owner(path) is not None:
        return BUSY
    if _resumable(rec, path):
        return RESUME
    if rec.status in (Status.FAILED, Status.INTERRUPTED):
        return RERUN
    return RUN


def merge_state(batch: Batch, batch_dir: Path, batch_id: str, previous: BatchState | None,
                executor: str, created: str) -> BatchState:
    """The state for this expansion: an entry keeps its record when its config hash matches."""
    old = previous.by_hash() if previous else {}
    entries = []
    for e in batch.entries:
        rec = old.get(e.config_hash)
        if rec is None:
            rec = EntryRecord(e.index, e.overrides, e.config_hash)
        else:
            rec.index, rec.overrides = e.index, e.overrides
        entries.append(rec)
    varied = batch.varied_keys()
    state = BatchState(
        batch_id=batch_id, name=batch.name,
        created=previous.created if previous else created, updated=created,
        source=str(batch.source.resolve()) if batch.source else (
            previous.source if previous else None),
        executor=executor, varied_keys=varied,
        group_by=[k for k in varied if k != "seed"], entries=entries,
    )
    reconcile(batch_dir, state, batch.out_dir)
    return state


@dataclass
class Opened:
    batch: Batch
    batch_dir: Path
    state: BatchState
    continued: bool  # an existing batch folder
    dropped: int = 0  # entries of the previous state that this batch file no longer has


def find_previous(batch: Batch, new: bool) -> Path | None:
    return None if new else latest_batch_dir(batch.out_dir, batch.name)


def plan(batch: Batch, batch_dir: Path | None, executor: str = "local") -> Opened:
    """What running ``batch`` in ``batch_dir`` (None: a new folder) would do; writes nothing."""
    from ce_lab.safe_io import now_iso

    previous = read_state(batch_dir) if batch_dir is not None else None
    bid = batch_dir.name if batch_dir is not None else f"batch-{batch.name}-(new)"
    where = batch_dir if batch_dir is not None else batch.out_dir / bid
    state = merge_state(batch, where, bid, previous, executor, now_iso())
    dropped = 0
    if previous is not None:
        dropped = len({e.config_hash for e in previous.entries}
                      - {e.config_hash for e in state.entries})
    return Opened(batch, where, state, batch_dir is not None, dropped)


def open_batch(batch: Batch, batch_dir: Path | None, executor: str = "local") -> Opened:
    """Create (``batch_dir`` None) or continue a batch folder, and save the state to run."""
    from ce_lab.config import to_yaml
    from ce_lab.safe_io import atomic_write_text

    if batch_dir is None:
        batch_dir = create_batch_dir(batch.out_dir, batch.name)
    opened = plan(batch, batch_dir, executor) if (batch_dir / BATCH_JSON).exists() else None
    if opened is None:
        from ce_lab.safe_io import now_iso

        state = merge_state(batch, batch_dir, batch_dir.name, None, executor, now_iso())
        opened = Opened(batch, batch_dir, state, False)
    if batch.source is not None:  # --resume reuses the copies already there
        atomic_write_text(batch_dir / BATCH_COPY, batch.text)
        atomic_write_text(batch_dir / BASE_COPY, to_yaml(batch.base))
    opened.state.status = Status.RUNNING
    write_state(batch_dir, opened.state)
    return opened


def load_saved_batch(batch_dir: Path, max_entries: int = DEFAULT_MAX_ENTRIES) -> Batch:
    """The batch a folder was run with (``--resume``): its copied file and saved base config."""
    from ce_lab.config import load_config

    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise ParamError(f"«resume»: no such batch folder: {batch_dir}")
    state = read_state(batch_dir)
    try:
        text = (batch_dir / BATCH_COPY).read_text(encoding="utf-8")
    except OSError:
        raise UsageError(f"{batch_dir}: no {BATCH_COPY} (the copy of the batch file)") from None
    if not (batch_dir / BASE_COPY).is_file():
        raise UsageError(f"{batch_dir}: no {BASE_COPY} (the resolved base config)")
    base = load_config(batch_dir / BASE_COPY)
    # The runs belong next to the batch folder, wherever it has been moved to since.
    from ce_lab.config import with_overrides

    base = with_overrides(base, {"out_dir": str(batch_dir.parent)})
    batch = batch_from_saved(text, base, str(batch_dir / BATCH_COPY), max_entries)
    if batch.name != state.name:
        raise UsageError(f"{batch_dir}: {BATCH_COPY} names batch {batch.name!r}, batch.json "
                         f"{state.name!r}")
    return batch


def describe_plan(opened: Opened) -> list[tuple[EntryRecord, str]]:
    return [(rec, action_for(opened.batch_dir, rec)) for rec in opened.state.entries]
