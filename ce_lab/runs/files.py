"""Writing the files of a run folder (meta.json, summary.json, config.yaml, the CSVs), their names,
and the bounded, regular-file reads that every reader builds on (``ce_lab.runs.read``).

The formats are documented in the README ("Files a run writes") so that pandas, a spreadsheet or jq
can read them without ce-lab. Writers are atomic (a reader never sees half a file) or, for the
CSVs, flushed row by row (a killed run keeps what it logged); a failed write is one ``WriteError``
line.

No torch here: ``base_meta`` imports it only when asked for its version.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import json
import math
import os
import platform
import secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
CHECKPOINT = "checkpoint.pt"  # written by ce_lab.training; named here so readers need no torch
TEST_LOGITS = "test_logits.npz"  # a completed run's test logits (float32) and labels (int64)


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


def new_temp_file(path: Path, suffix: str) -> tuple[int, Path]:
    """A new file beside ``path``, ``.NAME.<random>SUFFIX``, opened for writing: (fd, its path).

    Its mode is what every file ce-lab creates gets, 0666 less the umask (and a folder's default
    ACL), applied by the kernel when O_CREAT makes it, as for metrics.csv, so the file renamed
    over ``path`` is as readable as a shared results folder's umask says. tempfile.mkstemp would
    make it 0600. Nor is the umask read to chmod it: os.umask can only read it by setting it, and
    for that instant every other thread of the process would create files with the wrong mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(
        os, "O_BINARY", 0)
    for _ in range(100):  # O_EXCL: a name another writer took is tried again, never reused
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path.parent))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder and rename it over ``path``: a reader sees the old
    file or the new one, never half of one. An OSError (a full disk, a read-only folder) removes
    the temp file and raises WriteError, one line naming ``path``; the old file stays as it was."""
    path = Path(path)
    try:
        fd, tmp = new_temp_file(path, ".tmp")
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


def write_npz(path: Path, **arrays: Any) -> None:
    """Numpy arrays as one .npz file (np.load reads it; no pickle), written atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def format_value(v: Any) -> str:
    """CSV cell text: floats in full precision (repr), non-finite as nan / inf / -inf."""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


class CsvLog:
    """An append-only CSV file with a fixed header; every row is flushed as it is written.

    ``added_later``: columns of ``header`` that runs written before them lack. A resumed file
    whose header is ``header`` without them keeps its own header (the run goes on writing the
    columns it has), rather than being refused as another run's."""

    def __init__(self, path: Path, header: Sequence[str], *, keep_until_step: int | None = None,
                 added_later: Sequence[str] = ()):
        self.path = Path(path)
        self.header = list(header)
        self._older_header = [h for h in self.header if h not in added_later]
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
        found = lines[0].rstrip("\r").split(",") if lines else None
        if found == self._older_header:
            self.header = found  # a run from before the added_later columns
        if found != self.header:
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
    if text == "":  # a cell not computed at that step (see runs.read.read_csv_columns)
        return True
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
