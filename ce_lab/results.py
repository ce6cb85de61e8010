"""Loading finished run folders (the format in notes/run-format.md) and choosing which to compare.

Every problem with a folder becomes a ``RunFolderError`` whose message is one line naming the folder
and the reason, so a comparison can report it and go on with the other runs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ce_lab.errors import CeLabError, UsageError

METRICS_REQUIRED = ("step", "epoch", "examples", "wall_s", "lr", "loss", "acc")
EVAL_REQUIRED = ("step", "epoch", "examples", "wall_s", "val_loss", "val_acc")
SUMMARY_REQUIRED = ("status", "loss", "steps")
# Folders under out_dir that hold comparisons or batches, not runs.
NON_RUN_PREFIXES = ("compare-", "batch-", ".")


class RunFolderError(CeLabError):
    """A run folder that is missing, unfinished or corrupt; the message says which and why."""


@dataclass
class RunRecord:
    """One finished run as written to disk; metric tables are columns of floats (nan/inf kept)."""

    path: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, list[float]] = field(default_factory=dict)
    evals: dict[str, list[float]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def loss(self) -> str:
        return str(self.summary.get("loss") or self.config.get("loss", {}).get("name"))

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed", self.config.get("seed"))
        return int(seed) if seed is not None else None

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or self.meta.get("status"))

    @property
    def thresholds(self) -> list[float]:
        return [float(t) for t in self.summary.get("thresholds") or []]

    def convergence(self, threshold: float) -> dict[str, Any] | None:
        """{"step", "examples", "seconds"} when the run reached ``threshold``, else None."""
        return (self.summary.get("convergence") or {}).get(f"{threshold:.2f}")

    def measured(self, threshold: float) -> bool:
        """Whether the run tracked ``threshold`` at all (so a None convergence means 'not reached')."""
        return f"{threshold:.2f}" in (self.summary.get("convergence") or {})


def _read_mapping(path: Path, folder: Path) -> dict[str, Any]:
    """A JSON object or YAML mapping from a run folder; RunFolderError says what is wrong."""
    if path.suffix == ".json":
        parse, errors, kind = json.loads, (json.JSONDecodeError,), "a JSON object"
    else:
        parse, errors, kind = yaml.safe_load, (yaml.YAMLError,), "a mapping"
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: corrupt run folder (no {path.name})") from None
    except (OSError, UnicodeDecodeError, *errors) as e:
        reason = " ".join(str(e).split())
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {reason})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name} is not {kind})")
    return data


def _read_csv(path: Path, folder: Path, required: tuple[str, ...]) -> dict[str, list[float]]:
    """A numeric CSV as columns; float() reads the nan / inf / -inf the writer uses."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise RunFolderError(f"{folder}: corrupt run folder ({path.name} is empty)")
            missing = [c for c in required if c not in header]
            if missing:
                raise RunFolderError(
                    f"{folder}: corrupt run folder ({path.name} lacks column(s) "
                    f"{', '.join(missing)})"
                )
            columns: dict[str, list[float]] = {name: [] for name in header}
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise RunFolderError(
                        f"{folder}: corrupt run folder ({path.name} line {line_no} has "
                        f"{len(row)} fields, header has {len(header)})"
                    )
                try:
                    values = [float(v) for v in row]
                except ValueError as e:
                    raise RunFolderError(
                        f"{folder}: corrupt run folder ({path.name} line {line_no}: {e})"
                    ) from None
                for name, value in zip(header, values, strict=True):
                    columns[name].append(value)
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: corrupt run folder (no {path.name})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {e})") from None
    return columns


def load_run(path: Path | str) -> RunRecord:
    """Read one run folder; RunFolderError (one line) if it is missing, unfinished or corrupt."""
    folder = Path(path)
    if not folder.exists():
        raise RunFolderError(f"{folder}: missing (no such folder)")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a run folder (a file)")
    if not (folder / "meta.json").exists():
        raise RunFolderError(f"{folder}: not a run folder (no meta.json)")
    meta = _read_mapping(folder / "meta.json", folder)
    status = meta.get("status")
    if status == "running":
        raise RunFolderError(f"{folder}: unfinished (status running; still training or killed)")
    if not (folder / "summary.json").exists():
        hint = "; see error.log" if (folder / "error.log").exists() else ""
        raise RunFolderError(f"{folder}: unfinished (status {status}, no summary.json{hint})")
    summary = _read_mapping(folder / "summary.json", folder)
    missing = [k for k in SUMMARY_REQUIRED if k not in summary]
    if missing:
        raise RunFolderError(
            f"{folder}: corrupt run folder (summary.json lacks {', '.join(missing)})"
        )
    config = _read_mapping(folder / "config.yaml", folder)
    metrics = _read_csv(folder / "metrics.csv", folder, METRICS_REQUIRED)
    evals = _read_csv(folder / "eval.csv", folder, EVAL_REQUIRED)
    return RunRecord(folder, config, meta, summary, metrics, evals)


# ---------------------------------------------------------------------------------------------
# Choosing runs


def _started(folder: Path) -> float:
    """When a run started (meta.json), for ordering; the folder's mtime if that is unreadable."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return datetime.fromisoformat(str(meta["started"])).timestamp()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return folder.stat().st_mtime


def _candidate_dirs(out_dir: Path) -> list[Path]:
    if not out_dir.is_dir():
        raise UsageError(f"no runs found: {out_dir} is not a folder (see --out-dir)")
    # A folder without meta.json is not a run (a user's own folder): it must not take a --last slot.
    dirs = [p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(NON_RUN_PREFIXES)
            and (p / "meta.json").exists()]
    return sorted(dirs, key=lambda p: (_started(p), p.name))


def _group_of(folder: Path) -> str | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("group") if isinstance(meta, dict) else None


def comparison_members(comp_dir: Path) -> list[Path] | None:
    """The run folders a comparison folder lists (comparison.json), or None if it is not one."""
    try:
        data = json.loads((comp_dir / "comparison.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    out = []
    for run in data.get("runs") or []:
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
