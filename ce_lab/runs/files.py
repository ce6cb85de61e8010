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
import errno
import io
import json
import math
import os
import platform
import socket
import stat
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
from ce_lab.runs.liveness import owner_fields

META = "meta.json"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
EVALS = "eval.csv"
ERROR_LOG = "error.log"
CHECKPOINT = "checkpoint.pt"  # written by ce_lab.train; named here so readers need no torch


class RunFolderError(CeLabError):
    """A run folder that is missing, unfinished or corrupt; the message says which and why."""


class WriteError(CeLabError):
    """A file could not be written (a full disk, a read-only folder): one line naming it."""


# Bounds on what is read back: every file ce-lab reads from disk may be hostile (huge, a FIFO, a
# symlink to /dev/zero); nothing ce-lab writes comes near these.
MAX_JSON_BYTES = 1 << 20
MAX_YAML_BYTES = 1 << 20
MAX_CSV_BYTES = 64 << 20


class UnreadableFile(CeLabError):
    """A file that is not a regular file, is over its size bound or is not UTF-8 text;
    ``reason`` says which, without the path (callers name the folder their own way)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def _size_text(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def check_regular_file(path: Path, limit: int | None = None) -> os.stat_result:
    """``path`` (symlinks followed) is a regular file of at most ``limit`` bytes; else
    UnreadableFile. FileNotFoundError passes through."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(path, f"not a regular file ({_kind(st.st_mode)})")
    if limit is not None and st.st_size > limit:
        raise UnreadableFile(path, f"{_size_text(st.st_size)}, over the {_size_text(limit)} "
                             "limit for this file")
    return st


def read_limited_bytes(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file, never blocking: a FIFO, a device, a directory
    or a file over the limit raise UnreadableFile; FileNotFoundError and other OSErrors pass."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(path, f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise UnreadableFile(path, f"{_size_text(st.st_size)}, over the "
                                 f"{_size_text(limit)} limit for this file")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise UnreadableFile(path, f"over the {_size_text(limit)} limit for this file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_limited_text(path: Path, limit: int) -> str:
    """``read_limited_bytes`` decoded as UTF-8 (UnreadableFile if it is not)."""
    raw = read_limited_bytes(path, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(path, f"not UTF-8 text (byte {e.start})") from None


def os_error_text(e: OSError, path: Path | str | None = None, doing: str = "writing") -> str:
    """One line for an OSError: ``no space left on device while writing PATH`` for a full disk,
    else ``cannot write PATH: <reason>``."""
    where = path if path is not None else (e.filename or "a file")
    if e.errno == errno.ENOSPC:
        return f"no space left on device while {doing} {where}"
    if e.errno == errno.EDQUOT:
        return f"disk quota exceeded while {doing} {where}"
    verb = {"writing": "write", "reading": "read", "using": "use"}.get(doing, doing)
    return f"cannot {verb} {where}: {e.strerror or e}"


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder and rename it over ``path``: a reader sees the old
    file or the new one, never half of one. An OSError (a full disk, a read-only folder) removes
    the temp file and raises WriteError, one line naming ``path``; the old file stays as it was."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(os_error_text(e, path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(os_error_text(e, path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text written as ``atomic_write_bytes`` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


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
        self._file = None
        if keep_until_step is not None and self.path.exists():
            self._truncate_after(keep_until_step)
            self._file = self._open("a")
        else:
            self._file = self._open("w")
            self._write_text(",".join(self.header) + "\n")

    def _open(self, mode: str):
        try:
            return open(self.path, mode, newline="", encoding="utf-8")
        except OSError as e:
            raise WriteError(os_error_text(e, self.path)) from None

    def _write_text(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as e:
            raise WriteError(os_error_text(e, self.path)) from None

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run repeats them from its checkpoint).

        The file is read as untrusted: a last line cut short (a run killed while writing it) is
        dropped; any other malformed row, or a header that is not this run's, is a
        RunFolderError (one line), and the file is left as it was."""
        folder = self.path.parent
        try:
            text = read_limited_text(self.path, MAX_CSV_BYTES)
        except (UnreadableFile, OSError) as e:
            reason = e.reason if isinstance(e, UnreadableFile) else (e.strerror or str(e))
            raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name}: {reason})") from None
        lines = text.split("\n")
        cut_short = not text.endswith("\n")  # the last line was never finished
        rows = list(csv.reader(lines[1:-1] if not cut_short else lines[1:]))
        if not lines or lines[0].rstrip("\r").split(",") != self.header:
            raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name}: its header "
                                 "is not this run's; cannot resume)")
        kept = []
        for n, row in enumerate(rows, start=2):
            last = n == len(rows) + 1
            if not row:
                continue
            if len(row) != len(self.header):
                if last and cut_short:
                    break  # half a row: it is logged again from the checkpoint
                raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name} line {n} "
                                     f"has {len(row)} fields, header has {len(self.header)})")
            try:
                row_step = int(row[0])
            except ValueError:
                if last and cut_short:
                    break
                raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name} line {n}: "
                                     f"step {row[0]!r} is not an integer)") from None
            if row_step > step:
                continue
            bad = next((c for c in row if not _is_float(c)), None)
            if bad is not None:
                raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name} line {n}: "
                                     f"{bad[:40]!r} is not a number)")
            kept.append(row)
        out = ",".join(self.header) + "\n" + "".join(",".join(r) + "\n" for r in kept)
        atomic_write_text(self.path, out)

    def write(self, row: Mapping[str, Any]) -> None:
        self._write_text(",".join(format_value(row[h]) for h in self.header) + "\n")

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as e:
            raise WriteError(os_error_text(e, self.path)) from None
        finally:
            self._file = None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        **owner_fields(),  # pid, host, pid_start, heartbeat: see ce_lab.runs.liveness
        "started": now_iso(),
        "ended": None,
        "git_commit": git_commit(),
    }


# ---------------------------------------------------------------------------------------------
# Reading


def read_json(path: Path) -> Any:
    """JSON of at most MAX_JSON_BYTES from a regular file; errors as Python raises them, or
    UnreadableFile (for files ce-lab itself just wrote)."""
    return json.loads(read_limited_text(Path(path), MAX_JSON_BYTES))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV as {column: text}; for files ce-lab itself wrote (bounded, regular)."""
    text = read_limited_text(Path(path), MAX_CSV_BYTES)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _why(e: BaseException) -> str:
    if isinstance(e, UnreadableFile):
        return e.reason
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return " ".join(str(e).split())


def read_mapping(path: Path, folder: Path | None = None) -> dict[str, Any]:
    """A JSON object (``.json``) or YAML mapping (else) from a run folder; RunFolderError says
    what is wrong, naming ``folder`` (default: the file's folder). The file is untrusted: it must
    be a regular file (symlinks followed) within its size bound, and parse to a mapping."""
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
    if path.suffix == ".json":
        parse, errors, kind, limit = json.loads, (json.JSONDecodeError,), "a JSON object", MAX_JSON_BYTES
    else:
        parse, errors, kind, limit = _safe_yaml, (yaml.YAMLError,), "a mapping", MAX_YAML_BYTES
    try:
        data = parse(read_limited_text(path, limit))
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: corrupt run folder (no {path.name})") from None
    except (OSError, UnreadableFile, RecursionError, ValueError, *errors) as e:
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {_why(e)})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name} is not {kind})")
    return data


def _safe_yaml(text: str) -> Any:
    """yaml.safe_load behind the config reader's guards against alias bombs and deep nesting."""
    from ce_lab.yaml_files import shape_problem

    problem = shape_problem(text)
    if problem:
        raise ValueError(f"line {problem}")
    return yaml.safe_load(text)


def read_meta(run_dir: Path) -> dict[str, Any]:
    """A run's meta.json; RunFolderError (one line) if it is missing or not a JSON object.

    Every reader of meta.json goes through here; callers that only peek (ordering, grouping)
    catch RunFolderError and treat the folder as unknown. The types of the fields readers use
    are checked (a ``"pid": "x"`` is a corrupt folder, not a traceback later).
    """
    meta = read_mapping(Path(run_dir) / META)
    problem = meta_problem(meta)
    if problem:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({META}: {problem})")
    return meta


SUMMARY_REQUIRED = ("status", "loss", "steps")


def read_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json (written when the run ended); RunFolderError if missing, corrupt, or
    holding a field of the wrong type."""
    summary = read_mapping(Path(run_dir) / SUMMARY)
    missing = [k for k in SUMMARY_REQUIRED if k not in summary]
    if missing:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({SUMMARY} lacks {', '.join(missing)})")
    problem = summary_problem(summary)
    if problem:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({SUMMARY}: {problem})")
    return summary


def read_config_mapping(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml as plain data (not validated: an old run stays readable)."""
    return read_mapping(Path(run_dir) / CONFIG)


def read_status(run_dir: Path) -> Status | None:
    """The status meta.json records; None if unreadable or not a known status."""
    try:
        return Status(read_meta(run_dir).get("status"))
    except (RunFolderError, ValueError):
        return None


def read_effective_status(run_dir: Path) -> Status | None:
    """The status a run folder stands at (``crashed`` for a ``running`` one whose owner is gone,
    see ce_lab.runs.liveness); None if meta.json is unreadable or holds no known status."""
    from ce_lab.runs.liveness import effective_status

    try:
        return effective_status(read_meta(run_dir))
    except RunFolderError:
        return None


def read_csv_columns(path: Path, required: Sequence[str] = (),
                     folder: Path | None = None) -> dict[str, list[float]]:
    """A numeric CSV as columns of floats; float() reads the nan / inf / -inf the writer uses.

    RunFolderError (naming ``folder``, default the file's folder) if the file is missing, not a
    regular file, over MAX_CSV_BYTES, empty, lacks a ``required`` column, or has a ragged or
    non-numeric row.
    """
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
    try:
        reader = csv.reader(io.StringIO(read_limited_text(path, MAX_CSV_BYTES), newline=""))
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
    except (OSError, UnreadableFile, csv.Error) as e:
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {_why(e)})") from None
    return columns


# ---------------------------------------------------------------------------------------------
# The fields readers use, checked: a summary.json or meta.json that is valid JSON may still hold
# anything. Each check returns the first problem as text, or None.

_NUM = "a number or null"


def _is_num(v: Any, *, none: bool = True) -> bool:
    if v is None:
        return none
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any, *, none: bool = False) -> bool:
    if v is None:
        return none
    return isinstance(v, int) and not isinstance(v, bool)


def summary_problem(summary: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a summary.json's fields that readers use; None if fine."""
    checks: list[tuple[str, bool, str]] = [
        ("status", isinstance(summary.get("status"), str), "a string"),
        ("loss", isinstance(summary.get("loss"), str), "a string"),
        ("steps", _is_int(summary.get("steps")), "an integer"),
        ("seed", _is_int(summary.get("seed"), none=True), "an integer or null"),
    ]
    for key in ("epochs_completed", "examples", "wall_seconds", "seconds_per_epoch",
                "best_val_acc", "best_val_step", "diverged_at"):
        checks.append((key, _is_num(summary.get(key)), _NUM))
    for key in ("diverged_quantity", "group"):
        checks.append((key, summary.get(key) is None or isinstance(summary.get(key), str),
                       "a string or null"))
    for key, ok, want in checks:
        if not ok:
            return f"{key} is not {want}"
    final = summary.get("final")
    if final is not None:
        if not isinstance(final, dict):
            return "final is not an object"
        bad = next((k for k, v in final.items() if not _is_num(v)), None)
        if bad is not None:
            return f"final.{bad} is not {_NUM}"
    thresholds = summary.get("thresholds")
    if thresholds is not None and (not isinstance(thresholds, list)
                                   or not all(_is_num(t, none=False) for t in thresholds)):
        return "thresholds is not a list of numbers"
    conv = summary.get("convergence")
    if conv is not None:
        if not isinstance(conv, dict):
            return "convergence is not an object"
        for k, hit in conv.items():
            if hit is None:
                continue
            if not isinstance(hit, dict):
                return f"convergence.{k} is not an object or null"
            bad = next((f for f in ("step", "examples", "seconds") if not _is_num(hit.get(f))),
                       None)
            if bad is not None:
                return f"convergence.{k}.{bad} is not {_NUM}"
    grads = summary.get("grad_summary")
    if grads is not None:
        if not isinstance(grads, dict):
            return "grad_summary is not an object"
        for part in ("first_epoch", "last_epoch"):
            layers = grads.get(part)
            if layers is None:
                continue
            if not isinstance(layers, dict):
                return f"grad_summary.{part} is not an object"
            bad = next((k for k, v in layers.items() if not _is_num(v)), None)
            if bad is not None:
                return f"grad_summary.{part}.{bad} is not {_NUM}"
        for key in ("logit_grad_norm_start", "logit_grad_norm_end"):
            if not _is_num(grads.get(key)):
                return f"grad_summary.{key} is not {_NUM}"
    return None


def meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a meta.json's fields that readers use; None if fine."""
    for key in ("status", "run_id", "group", "started", "host", "heartbeat"):
        v = meta.get(key)
        if v is not None and not isinstance(v, str):
            return f"{key} is not a string"
    for key in ("pid", "pid_start"):
        if not _is_int(meta.get(key), none=True):
            return f"{key} is not an integer"
    fused = meta.get("fused_with")
    if fused is not None and (not isinstance(fused, list)
                              or not all(isinstance(x, str) for x in fused)):
        return "fused_with is not a list of run ids"
    resumed = meta.get("resumed")
    if resumed is not None and (not isinstance(resumed, list)
                                or not all(isinstance(x, dict) for x in resumed)):
        return "resumed is not a list of objects"
    return None
