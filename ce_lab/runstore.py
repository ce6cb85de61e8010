"""Run folders on disk: exclusive creation, atomic JSON/YAML writes, flushed CSV rows.

The formats are documented in the README ("Files a run writes") so that pandas, a spreadsheet or jq
can read them without ce-lab.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ce_lab import __version__
from ce_lab.errors import CeLabError


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def create_run_dir(out_dir: Path, label: str, prefix: str = "") -> Path:
    """A new folder ``<out_dir>/<prefix><YYYYmmdd-HHMMSS>-<label>-<4 hex>``, created exclusively.

    ``mkdir`` fails if the name exists, so two runs started in the same second never share one.
    """
    out_dir = Path(out_dir)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = out_dir / f"{prefix}{timestamp()}-{label}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise CeLabError(f"cannot create a run folder under {out_dir}: {e.strerror or e}") from None
    raise CeLabError(f"could not create a new run folder under {out_dir}")


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
    atomic_write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


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


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def base_meta(run_id: str, device: str, group: str | None,
              fused_with: Iterable[str] | None, argv: Sequence[str] | None = None) -> dict[str, Any]:
    import torch

    argv = list(sys.argv if argv is None else argv)
    return {
        "kind": "run",
        "run_id": run_id,
        "status": "running",
        "group": group,
        "fused_with": list(fused_with) if fused_with else None,
        "command": " ".join(["ce-lab", *argv[1:]]) if argv else "ce-lab",
        "argv": argv,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ce_lab": __version__,
        },
        "device": device,
        "host": socket.gethostname(),
        "started": now_iso(),
        "ended": None,
        "git_commit": git_commit(),
    }
