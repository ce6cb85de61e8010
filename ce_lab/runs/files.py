"""Writing the files of a run folder (meta.json, summary.json, config.yaml, the CSVs); their names
are ``ce_lab.runs.names``, the bounded reads and atomic writes underneath ``ce_lab.safe_io``.

The formats are documented in docs/files.md ("A run folder") so that pandas, a spreadsheet or jq
can read them without ce-lab. Writers are atomic (a reader never sees half a file) or, for the
CSVs, flushed row by row (a killed run keeps what it logged); a failed write is one ``WriteError``
line.

No torch here: ``base_meta`` imports it only when asked for its version.
"""

from __future__ import annotations

import csv
import math
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ce_lab import __version__
from ce_lab.errors import CeLabError
from ce_lab.runs.folder import Status
from ce_lab.runs.formats import FORMAT
from ce_lab.runs.liveness import owner_fields
from ce_lab.safe_io import (
    MAX_CSV_BYTES,
    UnreadableFile,
    WriteError,
    atomic_write_bytes,
    atomic_write_text,
    now_iso,
    open_for_writing,
    os_error_text,
    read_limited_text,
    refuse_link,
)


class RunFolderError(CeLabError):
    """A run folder that is missing, unfinished or corrupt; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# Writing


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
        refuse_link(self.path)  # before a resumed file is read back through it
        if keep_until_step is not None and self.path.exists():
            self._truncate_after(keep_until_step)
            self._file = self._open("a")
        else:
            self._file = self._open("w")
            self._write_text(",".join(self.header) + "\n")

    def _open(self, mode: str):
        return open_for_writing(self.path, mode, newline="", encoding="utf-8")

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
        try:
            rows = list(csv.reader(lines[1:-1] if not cut_short else lines[1:]))
        except csv.Error as e:  # a cell over the csv module's field limit, a NUL byte
            raise RunFolderError(f"{folder}: corrupt run folder ({self.path.name}: "
                                 f"{' '.join(str(e).split())})") from None
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
        "format": FORMAT,  # of the folder: ce_lab.runs.formats
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
