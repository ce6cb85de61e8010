"""Run, comparison and batch folders: their names, their exclusive creation, and run statuses.

Everything here is plain Python (no torch), so the CLI, the batch orchestrator and a notebook can
name and inspect folders without loading a training stack.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from ce_lab.errors import CeLabError

COMPARISON_PREFIX = "compare-"
BATCH_PREFIX = "batch-"
# Folders under an out_dir that hold comparisons or batches (or are hidden), not runs.
NON_RUN_PREFIXES = (COMPARISON_PREFIX, BATCH_PREFIX, ".")


class Status(str, Enum):
    """How a run (or a batch entry, or a whole batch) stands; the value is what the files hold.

    A str so that ``status == "completed"`` and JSON written from it keep working; ``str()`` and
    f-strings give the plain value on every Python version.
    """

    PENDING = "pending"  # a batch entry not started yet
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    # Never written: how a "running" run reads once its owner process is gone (killed, the
    # machine rebooted); see ce_lab.runs.liveness.effective_status.
    CRASHED = "crashed"

    __str__ = str.__str__
    __format__ = str.__format__

    @property
    def exit_code(self) -> int:
        """The exit code of a command whose run ended so (``ce-lab train``'s documented codes)."""
        try:
            return _EXIT_CODES[self]
        except KeyError:
            raise ValueError(f"status {self.value!r} has not ended; it has no exit code") from None

    @property
    def is_result(self) -> bool:
        """Completed or diverged: the run finished and its numbers count (divergence is a result)."""
        return self in (Status.COMPLETED, Status.DIVERGED)


_EXIT_CODES = {Status.COMPLETED: 0, Status.DIVERGED: 3, Status.INTERRUPTED: 130, Status.FAILED: 1}
RESULT_STATUSES = (Status.COMPLETED, Status.DIVERGED)
ENDED_STATUSES = tuple(_EXIT_CODES)  # what a run or an entry can end with


def threshold_key(t: float) -> str:
    """The key of an accuracy threshold in summary.json and in table columns: 0.9 -> "0.90"."""
    return f"{t:.2f}"


def timestamp() -> str:
    """Local time to the second, as folder names carry it (they sort by time)."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def safe_label(label: str) -> str:
    """A label usable in a folder name: anything but letters, digits, ``_.-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def run_folder_name(label: str) -> str:
    """``<YYYYmmdd-HHMMSS>-<label>-<4 hex>``: the folder of one run (label: its loss)."""
    return f"{timestamp()}-{safe_label(label)}-{secrets.token_hex(2)}"


def comparison_folder_name() -> str:
    """``compare-<YYYYmmdd-HHMMSS>-<4 hex>``; also the group id of the runs it trains."""
    return f"{COMPARISON_PREFIX}{timestamp()}-{secrets.token_hex(2)}"


def batch_folder_name(name: str) -> str:
    """``batch-<name>-<YYYYmmdd-HHMMSS>-<4 hex>`` (the batch name is folder-safe already)."""
    return f"{BATCH_PREFIX}{name}-{timestamp()}-{secrets.token_hex(2)}"


def create_folder(out_dir: Path | str, make_name: Callable[[], str], what: str) -> Path:
    """A new folder ``<out_dir>/<make_name()>``, created exclusively; ``what`` names it in errors.

    ``mkdir`` fails if the name exists, so two runs (or batches) started in the same second never
    share one: a new name is drawn instead. An out_dir that is a file, unwritable, ... raises a
    one-line CeLabError, not a traceback.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = out_dir / make_name()
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue  # same second, same 4 hex digits: draw again
    except OSError as e:
        raise CeLabError(f"cannot create a {what} folder under {out_dir}: {e.strerror or e}") from None
    raise CeLabError(f"could not create a new {what} folder under {out_dir}")


def create_run_dir(out_dir: Path | str, label: str) -> Path:
    """A new run folder for a run of ``label`` (its loss)."""
    return create_folder(out_dir, lambda: run_folder_name(label), "run")


def create_comparison_dir(out_dir: Path | str) -> Path:
    """A new comparison folder; its name is the group id of the runs it trains."""
    return create_folder(out_dir, comparison_folder_name, "comparison")


def create_batch_dir(out_dir: Path | str, name: str) -> Path:
    """A new folder for batch ``name`` (running the batch file again continues the newest)."""
    return create_folder(out_dir, lambda: batch_folder_name(name), "batch")
