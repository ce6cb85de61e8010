"""Reading and writing the files of a run folder: meta.json, summary.json, config.yaml, the CSVs.

The formats are documented in the README ("Files a run writes") so that pandas, a spreadsheet or jq
can read them without ce-lab. Writers are atomic (a reader never sees half a file) or, for the
CSVs, flushed row by row (a killed run keeps what it logged). Readers of a folder that may be
corrupt raise ``RunFolderError`` with one line naming the folder and the reason, so a comparison
can report it and go on with the other runs.

No torch here: ``base_meta`` imports it only when asked for its version.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ce_lab import __version__
from ce_lab.errors import CeLabError
from ce_lab.runs.folder import Status

META = "meta.json"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
EVALS = "eval.csv"
ERROR_LOG = "error.log"
CHECKPOINT = "checkpoint.pt"  # written by ce_lab.train; named here so readers need no torch


class RunFolderError(CeLabError):
    """A run folder that is missing, unfinished or corrupt; the message says which and why."""


def now_iso() -> str:
    """Local time with its UTC offset, to the second: what ``started`` / ``ended`` hold."""
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Writing


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or Infinity: non-finite floats become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder and rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Indented JSON, non-finite floats as null, written atomically."""
    atomic_write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")


def format_value(v: Any) -> str:
    """CSV cell text: floats in full precision (repr), non-finite as nan / inf / -inf."""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


class CsvLog:
    """An append-only CSV file with a fixed header; every row is flushed as it is written."""

    def __init__(self, path: Path, header: Sequence[str], *, keep_until_step: int | None = None):
        self.path = Path(path)
        self.header = list(header)
        if keep_until_step is not None and self.path.exists():
            self._truncate_after(keep_until_step)
            self._file = open(self.path, "a", newline="", encoding="utf-8")
        else:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._file.write(",".join(self.header) + "\n")
            self._file.flush()

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run repeats them from its checkpoint)."""
        rows = read_csv_rows(self.path)
        kept = [r for r in rows if int(r["step"]) <= step]
        text = ",".join(self.header) + "\n" + "".join(
            ",".join(r[h] for h in self.header) + "\n" for r in kept
        )
        atomic_write_text(self.path, text)

    def write(self, row: Mapping[str, Any]) -> None:
        self._file.write(",".join(format_value(row[h]) for h in self.header) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the git repository around ``cwd`` (None outside one, or without git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def base_meta(run_id: str, device: str, group: str | None,
              fused_with: Iterable[str] | None, argv: Sequence[str] | None = None,
              torch_version: str | None = None) -> dict[str, Any]:
    """meta.json of a run that is starting. ``torch_version`` None: asked of torch, imported here
    only then, so that this module stays importable without torch."""
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    argv = list(sys.argv if argv is None else argv)
    return {
        "kind": "run",
        "run_id": run_id,
        "status": Status.RUNNING.value,
        "group": group,
        "fused_with": list(fused_with) if fused_with else None,
        "command": " ".join(["ce-lab", *argv[1:]]) if argv else "ce-lab",
        "argv": argv,
        "versions": {
            "python": platform.python_version(),
            "torch": torch_version,
            "ce_lab": __version__,
        },
        "device": device,
        "host": socket.gethostname(),
        "started": now_iso(),
        "ended": None,
        "git_commit": git_commit(),
    }


# ---------------------------------------------------------------------------------------------
# Reading


def read_json(path: Path) -> Any:
    """Plain JSON; errors as Python raises them (for files ce-lab itself just wrote)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV as {column: text}; for files ce-lab itself wrote."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_mapping(path: Path, folder: Path | None = None) -> dict[str, Any]:
    """A JSON object (``.json``) or YAML mapping (else) from a run folder; RunFolderError says
    what is wrong, naming ``folder`` (default: the file's folder)."""
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
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


def read_meta(run_dir: Path) -> dict[str, Any]:
    """A run's meta.json; RunFolderError (one line) if it is missing or not a JSON object.

    Every reader of meta.json goes through here; callers that only peek (ordering, grouping)
    catch RunFolderError and treat the folder as unknown.
    """
    return read_mapping(Path(run_dir) / META)


def read_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json (written when the run ended); RunFolderError if missing or corrupt."""
    return read_mapping(Path(run_dir) / SUMMARY)


def read_config_mapping(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml as plain data (not validated: an old run stays readable)."""
    return read_mapping(Path(run_dir) / CONFIG)


def read_status(run_dir: Path) -> Status | None:
    """The status meta.json records; None if unreadable or not a known status."""
    try:
        return Status(read_meta(run_dir).get("status"))
    except (RunFolderError, ValueError):
        return None


def read_csv_columns(path: Path, required: Sequence[str] = (),
                     folder: Path | None = None) -> dict[str, list[float]]:
    """A numeric CSV as columns of floats; float() reads the nan / inf / -inf the writer uses.

    RunFolderError (naming ``folder``, default the file's folder) if the file is missing, empty,
    lacks a ``required`` column, or has a ragged or non-numeric row.
    """
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
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
