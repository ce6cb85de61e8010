"""Finished run folders as records, and choosing which runs a comparison looks at.

Every problem with a folder becomes a ``RunFolderError`` whose message is one line naming the folder
and the reason, so a comparison can report it and go on with the other runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ce_lab.errors import UsageError
from ce_lab.metrics import When, required_columns
from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import NON_RUN_PREFIXES, Status, threshold_key
from ce_lab.runs.formats import NewerFormat, upgrade_comparison, version_problem
from ce_lab.runs.liveness import describe_owner, effective_status
from ce_lab.runs.names import CHECKPOINT, COMPARISON_JSON, CONFIG, ERROR_LOG, EVALS, META, METRICS, SUMMARY
from ce_lab.runs.read import (
    is_number,
    read_config_mapping,
    read_csv_columns,
    read_mapping,
    read_meta,
    read_summary,
    read_versioned_meta,
)

METRICS_REQUIRED = tuple(required_columns(When.LOG))  # from the metric registry
EVAL_REQUIRED = tuple(required_columns(When.EVAL))

__all__ = ["RunFolderError", "RunRecord", "comparison_members", "load_run", "select_runs"]


@dataclass
class RunRecord:
    """One run folder as written to disk: THE record of a run read back, for ``runs``,
    ``compare``, the API (``ce_lab.Run`` wraps one) and the TensorBoard export.

    ``load_run`` reads a finished run, with its metric tables (columns of floats, nan/inf kept);
    ``ce_lab.runs.listing.read_entry`` any run, finished or not, without them (``summary`` is
    empty until the run has ended) and with ``state``, its effective status ("crashed" for a
    running run whose owner is gone)."""

    path: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, list[float]] = field(default_factory=dict)
    evals: dict[str, list[float]] = field(default_factory=dict)
    state: str | None = None

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def loss(self) -> str:
        loss = self.config.get("loss")
        return str(self.summary.get("loss") or (loss.get("name") if isinstance(loss, dict) else loss))

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed", self.config.get("seed"))
        return int(seed) if is_number(seed) else None

    @property
    def status(self) -> str:
        return self.state or str(self.summary.get("status") or self.meta.get("status"))

    @property
    def group(self) -> str | None:
        return self.meta.get("group") or self.summary.get("group")

    @property
    def started(self) -> str | None:
        return self.meta.get("started")

    @property
    def flags(self) -> list[str]:
        """summary.json's ``flags`` ("stalled", "chance"); [] for runs written before them."""
        return list(self.summary.get("flags") or [])

    @property
    def status_text(self) -> str:
        """The status with the summary's flags, e.g. ``completed (stalled)``."""
        return f"{self.status} ({', '.join(self.flags)})" if self.flags else self.status

    @property
    def thresholds(self) -> list[float]:
        return [float(t) for t in self.summary.get("thresholds") or []]

    def final(self, key: str) -> Any:
        return (self.summary.get("final") or {}).get(key)

    def convergence(self, threshold: float) -> dict[str, Any] | None:
        """{"step", "examples", "seconds"} when the run reached ``threshold``, else None."""
        return (self.summary.get("convergence") or {}).get(threshold_key(threshold))


def load_run(path: Path | str) -> RunRecord:
    """Read one run folder; RunFolderError (one line) if it is missing, unfinished or corrupt."""
    folder = Path(path)
    if not folder.exists():
        raise RunFolderError(f"{folder}: missing (no such folder)")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a run folder (a file)")
    if not (folder / META).exists():
        raise RunFolderError(f"{folder}: not a run folder (no {META})")
    meta, version = read_versioned_meta(folder)
    status = meta.get("status")
    effective = effective_status(meta)
    if effective == Status.RUNNING:
        raise RunFolderError(f"{folder}: unfinished (status running; still training: "
                             f"{describe_owner(meta)})")
    if effective == Status.CRASHED:
        raise RunFolderError(f"{folder}: {crashed_hint(folder)}")
    if not (folder / SUMMARY).exists():
        hint = f"; see {ERROR_LOG}" if (folder / ERROR_LOG).exists() else ""
        raise RunFolderError(f"{folder}: unfinished (status {status}, no {SUMMARY}{hint})")
    summary = read_summary(folder, version)  # required keys and types checked, upgraded
    config = read_config_mapping(folder)
    metrics = read_csv_columns(folder / METRICS, METRICS_REQUIRED)
    evals = read_csv_columns(folder / EVALS, EVAL_REQUIRED)
    return RunRecord(folder, config, meta, summary, metrics, evals)


def crashed_hint(folder: Path) -> str:
    """What a crashed run is and how to continue it (one line)."""
    if (folder / CHECKPOINT).is_file():
        return (f"crashed (status running, but its process is gone); continue it with: "
                f"ce-lab train --resume {folder}")
    return (f"crashed before its first checkpoint (status running, but its process is gone); "
            f"start it again with: ce-lab train --config {folder / CONFIG}")


# ---------------------------------------------------------------------------------------------
# Choosing runs


def _started(folder: Path, meta: dict[str, Any] | None = None) -> float:
    """When a run started (meta.json, or ``meta`` as read from it), for ordering; the folder's
    mtime if that is unreadable."""
    try:
        meta = read_meta(folder) if meta is None else meta
        return datetime.fromisoformat(str(meta["started"])).timestamp()
    except (RunFolderError, ValueError, KeyError, TypeError):
        return folder.stat().st_mtime


def _candidate_dirs(out_dir: Path) -> list[Path]:
    if not out_dir.is_dir():
        raise UsageError(f"no runs found: {out_dir} is not a folder (see --out-dir)")
    # A folder without meta.json is not a run (a user's own folder): it must not take a --last slot.
    dirs = [p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(NON_RUN_PREFIXES)
            and (p / META).exists()]
    return sorted(dirs, key=lambda p: (_started(p), p.name))


def _group_of(folder: Path) -> str | None:
    try:
        return read_meta(folder).get("group")
    except RunFolderError:
        return None


def comparison_members(comp_dir: Path) -> list[Path] | None:
    """The run folders a comparison folder lists (comparison.json), or None if it is not one."""
    try:
        data = read_mapping(Path(comp_dir) / COMPARISON_JSON)
    except RunFolderError:
        return None
    if version_problem(data):
        return None  # not what ce-lab writes: treat it as a plain folder
    try:
        data = upgrade_comparison(data)
    except NewerFormat as e:
        raise RunFolderError(f"{comp_dir}: {e}") from None
    runs = data.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, str) and r for r in runs):
        return None  # not what ce-lab writes: treat it as a plain folder
    out = []
    for run in runs:
        p = Path(run)
        out.append(p if p.is_absolute() else (comp_dir / p))
    return out


def select_runs(
    out_dir: Path,
    paths: list[Path] | tuple[Path, ...] = (),
    last: int | None = None,
    group: str | None = None,
) -> tuple[list[RunRecord], list[str]]:
    """The runs named by paths, ``--last N`` and ``--group ID`` (their union, each once).

    Returns the loaded records and one message per folder that was skipped. A path to a comparison
    folder stands for the runs it lists.
    """
    out_dir = Path(out_dir)
    wanted: list[Path] = []
    for p in paths:
        members = comparison_members(Path(p)) if Path(p).is_dir() else None
        wanted.extend(members if members is not None else [Path(p)])
    if last is not None:
        if last < 1:
            raise UsageError(f"--last must be at least 1, got {last}")
        candidates = _candidate_dirs(out_dir)
        if not candidates:
            raise UsageError(f"no run folders under {out_dir}")
        wanted.extend(candidates[-last:])
    if group is not None:
        in_group = [p for p in _candidate_dirs(out_dir) if _group_of(p) == group]
        listed = comparison_members(out_dir / group) or []
        if not in_group and not listed:
            raise UsageError(f"no runs in group {group!r} under {out_dir}")
        wanted.extend(listed)
        wanted.extend(in_group)

    records: list[RunRecord] = []
    skipped: list[str] = []
    seen: set[Path] = set()
    for p in wanted:
        key = p.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            records.append(load_run(p))
        except RunFolderError as e:
            skipped.append(str(e))
    return records, skipped
