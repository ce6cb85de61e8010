"""Every run folder under an out_dir as an entry, finished or not: what ``ce-lab runs`` lists and
``ce_lab.load_runs`` turns into a DataFrame. Without torch.

Unlike ``record.load_run`` (finished runs only, with their metric tables), ``read_entry`` reads
the same RunRecord from meta.json, config.yaml and, where it exists, summary.json, without the
tables, so running, crashed and failed runs are listed too. A folder that cannot be read is
skipped with one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ce_lab.config import differing_keys
from ce_lab.errors import UsageError
from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import NON_RUN_PREFIXES
from ce_lab.runs.index import RunIndex, decode_rest, stamp
from ce_lab.runs.leaves import Leaves
from ce_lab.runs.liveness import effective_status
from ce_lab.runs.names import META, SUMMARY
from ce_lab.runs.read import read_config_mapping, read_summary, read_versioned_meta
from ce_lab.runs.record import RunRecord, _candidate_dirs, _started


def read_entry(folder: Path | str) -> RunRecord:
    """One run folder; RunFolderError (one line) when it is not one or cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a run folder ({'a file' if folder.exists() else 'missing'})")
    reading = _reading(folder)
    if "error" in reading:
        raise RunFolderError(reading["error"])
    return _record(folder, reading)


@dataclass
class Listed:
    """Every run folder under an out_dir, newest first; a line per folder skipped; and each
    run's config as a row of ``leaves`` (``rows[i]`` is ``entries[i]``'s)."""

    entries: list[RunRecord]
    skipped: list[str]
    leaves: Leaves
    rows: list[list[int]]


def list_runs(out_dir: Path | str) -> tuple[list[RunRecord], list[str]]:
    """Every run folder under ``out_dir``, newest first, and one line per folder skipped."""
    listed = list_folders(out_dir)
    return listed.entries, listed.skipped


def list_folders(out_dir: Path | str) -> Listed:
    """Every run folder under ``out_dir`` (see ``Listed``).

    What each folder's files parse to is cached beside them (``ce_lab.runs.index``) while the
    files stay as they were, so listing many runs reads only those that changed; the liveness of
    a running one is checked anew each time."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        _candidate_dirs(out_dir)  # its one-line error
    with os.scandir(out_dir) as found_here:  # the entry's type, without a stat per folder
        folders = [out_dir / e.name for e in found_here
                   if e.is_dir() and not e.name.startswith(NON_RUN_PREFIXES)]
    index = RunIndex(out_dir, len(folders))
    found: list[tuple[tuple[float, str], RunRecord | str, list[int]]] = []
    for folder in folders:
        current = stamp(folder)
        if current[0] is None and not (folder / META).exists():
            continue  # no meta.json: not a run (a user's own folder)
        cached = index.get(folder.name, current)
        if cached is not None:
            meta = cached["meta"]
            found.append(((_started(folder, meta), folder.name),
                          _IndexedRecord(folder, meta, cached["rest"], _state(meta), cached["row"]),
                          cached["leaves"]))
            continue
        reading = _reading(folder)
        if "error" in reading:
            found.append(((_started(folder), folder.name), reading["error"], []))
            continue
        record = _record(folder, reading)
        leaves = index.leaves.intern(reading["config"])
        index.put(folder.name, current, reading, cached_row(record), leaves)
        found.append(((_started(folder, reading["meta"]), folder.name), record, leaves))
    index.save()
    found.sort(key=lambda f: f[0], reverse=True)
    runs = [(e, row) for _, e, row in found if isinstance(e, RunRecord)]
    return Listed([e for e, _ in runs], [e for _, e, _ in found if isinstance(e, str)],
                  index.leaves, [row for _, row in runs])


def cached_row(record: RunRecord) -> dict[str, Any]:
    """What a listing shows and filters by of a run's config and summary, kept in the index so
    that listing thousands of runs decodes none of them (``ce_lab.runs.index.row_problem``
    checks it when it is read back)."""
    return {"loss": record.loss, "seed": record.seed, "flags": record.flags,
            "group": record.summary.get("group"), "steps": record.summary.get("steps"),
            "val_acc": record.final("val_acc"), "test_acc": record.final("test_acc")}


def _state(meta: dict[str, Any]) -> str:
    """A run's effective status (liveness checked now, never cached)."""
    status = effective_status(meta)
    return str(status or meta.get("status"))


def _record(folder: Path, reading: dict[str, Any]) -> RunRecord:
    """The record of a folder's reading."""
    return RunRecord(folder, reading["config"], reading["meta"], reading["summary"],
                     state=_state(reading["meta"]))


class _IndexedRecord(RunRecord):
    """A RunRecord from the index: meta.json's content at hand, the config and summary decoded
    (and checked) from the index's text when first used, or read from the folder if that text
    fails the checks a fresh reading passes."""

    def __init__(self, path: Path, meta: dict[str, Any], rest: str, state: str,
                 row: dict[str, Any]):
        self.path, self.meta, self.state, self.row = path, meta, state, row
        self.metrics, self.evals = {}, {}
        self._rest: str | dict[str, Any] = rest

    # What a listing shows and filters by, from the index's row (``cached_row``).
    @property
    def loss(self) -> str:
        return self.row["loss"]

    @property
    def seed(self) -> int | None:
        return self.row["seed"]

    @property
    def flags(self) -> list[str]:
        return list(self.row["flags"])

    @property
    def group(self) -> str | None:
        return self.meta.get("group") or self.row["group"]

    def _decoded(self) -> dict[str, Any]:
        if isinstance(self._rest, str):
            data = decode_rest(self._rest)
            if data is None:
                data = _reading(self.path)
                if "error" in data:
                    raise RunFolderError(data["error"])
            self._rest = data
        return self._rest

    @property
    def config(self) -> dict[str, Any]:  # type: ignore[override]
        return self._decoded()["config"]

    @property
    def summary(self) -> dict[str, Any]:  # type: ignore[override]
        return self._decoded()["summary"]


def _reading(folder: Path) -> dict[str, Any]:
    """What ``read_entry`` parses of a folder, or its one-line error."""
    try:
        meta, version = read_versioned_meta(folder)
        config = read_config_mapping(folder)
        summary = read_summary(folder, version) if (folder / SUMMARY).exists() else {}
    except RunFolderError as e:
        return {"error": str(e)}
    return {"meta": meta, "config": config, "summary": summary}


def filter_runs(entries: Sequence[RunRecord], *, status: Sequence[str] = (),
                loss: Sequence[str] = (), group: str | None = None,
                last: int | None = None) -> list[RunRecord]:
    """The entries with one of ``status`` (a flag such as ``stalled`` matches too) and ``loss``,
    in ``group``; then the ``last`` newest (entries are newest first)."""
    if last is not None and last < 1:
        raise UsageError(f"--last must be at least 1, got {last}")
    out = [e for e in entries
           if (not status or e.status in status or set(e.flags) & set(status))
           and (not loss or e.loss in loss)
           and (group is None or e.group == group)]
    return out[:last] if last is not None else out


def differing_config(entries: Sequence[RunRecord]) -> list[str]:
    """The dotted config keys whose values are not all equal, in config order; a key some runs
    lack differs (``runs diff`` shows it as absent)."""
    return differing_keys([e.config for e in entries], absent_differs=True)


LIST_FIELDS = ("run", "loss", "status", "flags", "seed", "steps", "val_acc", "test_acc", "group",
               "started", "path")


def list_row(entry: RunRecord) -> dict[str, Any]:
    """What ``ce-lab runs`` shows of a run, as plain values (None: not known yet)."""
    row = entry.row if isinstance(entry, _IndexedRecord) else cached_row(entry)
    return {"run": entry.run_id, "loss": entry.loss, "status": entry.status, "flags": entry.flags,
            "seed": entry.seed, "steps": row["steps"], "val_acc": row["val_acc"],
            "test_acc": row["test_acc"], "group": entry.group, "started": entry.started,
            "path": str(entry.path)}


def resolve_run(run: str | Path, out_dir: Path | str) -> Path:
    """A run named by its folder, or by its id under ``out_dir``; UsageError if neither exists."""
    path = Path(run)
    if path.is_dir():
        return path
    under = Path(out_dir) / str(run)
    if under.is_dir():
        return under
    raise UsageError(f"no run {str(run)!r}: neither a folder nor a run id under {out_dir}")
