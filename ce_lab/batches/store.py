"""The batch folder and its ``batch.json``: which entry ran where and how it ended.

``<out_dir>/batch-<name>-<YYYYmmdd-HHMMSS>-<4 hex>/`` holds:

- ``batch.yaml``: a copy of the batch file as written;
- ``base-config.yaml``: the resolved base config (after ``--set``/``--out-dir``), so that
  ``--resume`` expands exactly the same entries even if the base file changed since;
- ``batch.json``: the state, rewritten atomically whenever an entry starts or ends;
- ``logs/``: the output of every worker task (progress lines, tracebacks);
- the comparison (tables, plots, ``report.md``) once the batch ends.

Running the same batch file again continues the most recent batch folder of that name under the
out_dir (``--new`` starts another): an entry whose config hash is already completed there is
skipped, an interrupted one resumes from its checkpoint, a failed one runs again.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ce_lab.errors import UsageError
from ce_lab.runs.folder import BATCH_PREFIX, Status
from ce_lab.runs.liveness import pid_alive

BATCH_JSON = "batch.json"
BATCH_COPY = "batch.yaml"
BASE_COPY = "base-config.yaml"
LOGS = "logs"
LOCK = ".lock"  # the pid of the batch process running this folder

# Entry statuses (ce_lab.runs.folder.Status): pending, not started; running, a worker has it; the
# rest as in the run folder. RESULT_STATUSES: a diverged run is a result, not a failure.


@dataclass
class EntryRecord:
    index: int
    overrides: dict[str, Any]
    config_hash: str
    status: str = Status.PENDING
    run_dir: str | None = None  # relative to the batch folder when under the same out_dir
    error: str | None = None
    log: str | None = None  # relative to the batch folder
    attempts: int = 0
    started: str | None = None
    ended: str | None = None


@dataclass
class BatchState:
    batch_id: str
    name: str
    created: str
    updated: str
    source: str | None  # the batch file it was started from (absolute), None after --resume only
    status: str = Status.RUNNING  # running | completed | failed | interrupted
    executor: str = "local"
    varied_keys: list[str] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    entries: list[EntryRecord] = field(default_factory=list)
    kind: str = "batch"

    def by_hash(self) -> dict[str, EntryRecord]:
        return {e.config_hash: e for e in self.entries}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return out


def to_json(state: BatchState) -> dict[str, Any]:
    data = asdict(state)
    return {"kind": data.pop("kind"), **data}


_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "index": (int,), "overrides": (dict,), "config_hash": (str,), "status": (str,),
    "run_dir": (str, type(None)), "error": (str, type(None)), "log": (str, type(None)),
    "attempts": (int,), "started": (str, type(None)), "ended": (str, type(None)),
}
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "batch_id": (str,), "name": (str,), "created": (str,), "updated": (str,),
    "source": (str, type(None)), "status": (str,), "executor": (str,), "varied_keys": (list,),
    "group_by": (list,), "entries": (list,), "kind": (str,),
}


def _type_problem(data: dict[str, Any], types: dict[str, tuple[type, ...]], where: str) -> str | None:
    for key, allowed in types.items():
        if key in data and (not isinstance(data[key], allowed) or isinstance(data[key], bool)):
            return f"{where}{key} has the wrong type ({type(data[key]).__name__})"
    return None


def from_json(data: dict[str, Any]) -> BatchState:
    """The state in a batch.json; ValueError (one line) for any field of the wrong type."""
    problem = _type_problem(data, _STATE_TYPES, "")
    if problem:
        raise ValueError(problem)
    entries = []
    for n, e in enumerate(data.get("entries", [])):
        if not isinstance(e, dict):
            raise ValueError(f"entries[{n}] is not an object")
        problem = _type_problem(e, _ENTRY_TYPES, f"entries[{n}].")
        if problem:
            raise ValueError(problem)
        try:
            Status(e.get("status", Status.PENDING))
        except ValueError:
            raise ValueError(f"entries[{n}].status {e['status']!r} is unknown") from None
        entries.append(EntryRecord(**{k: v for k, v in e.items()
                                      if k in EntryRecord.__dataclass_fields__}))
    if not all(isinstance(k, str) for k in [*data.get("varied_keys", []),
                                            *data.get("group_by", [])]):
        raise ValueError("varied_keys / group_by hold a non-string")
    fields = {k: v for k, v in data.items() if k in BatchState.__dataclass_fields__}
    fields["entries"] = entries
    return BatchState(**fields)


def _read_json(path: Path) -> Any:
    """A batch.json read as untrusted: a regular file within the JSON bound (FIFO, directory,
    /dev/zero and huge files refused, as UnreadableFile)."""
    from ce_lab.safe_io import MAX_JSON_BYTES, read_limited_text

    return json.loads(read_limited_text(path, MAX_JSON_BYTES))


def write_state(batch_dir: Path, state: BatchState) -> None:
    """Rewrite batch.json atomically (a reader never sees half a file)."""
    from ce_lab.safe_io import now_iso, write_json

    state.updated = now_iso()
    write_json(Path(batch_dir) / BATCH_JSON, to_json(state))


def read_state(batch_dir: Path) -> BatchState:
    from ce_lab.safe_io import UnreadableFile

    path = Path(batch_dir) / BATCH_JSON
    try:
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("kind") != "batch":
            raise ValueError("not a batch.json")
        return from_json(data)
    except FileNotFoundError:
        raise UsageError(f"{batch_dir}: not a batch folder (no {BATCH_JSON})") from None
    except UnreadableFile as e:
        raise UsageError(f"{batch_dir}: unreadable {BATCH_JSON} ({e.reason})") from None
    except (OSError, ValueError, TypeError, RecursionError) as e:
        reason = " ".join(str(e).split())
        raise UsageError(f"{batch_dir}: unreadable {BATCH_JSON} ({reason})") from None


def latest_batch_dir(out_dir: Path, name: str) -> Path | None:
    """The most recent batch folder of this batch name under ``out_dir`` (None if there is none)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    found = []
    for p in out_dir.glob(f"{BATCH_PREFIX}{name}-*"):
        from ce_lab.errors import CeLabError

        try:
            data = _read_json(p / BATCH_JSON)
        except (OSError, ValueError, RecursionError, CeLabError):
            continue
        # "batch-a-b-..." also matches name "a": the recorded name decides.
        if isinstance(data, dict) and data.get("name") == name:
            found.append((str(data.get("created") or ""), p.name, p))
    return max(found)[2] if found else None


def run_path(batch_dir: Path, recorded: str | None) -> Path | None:
    """The run folder an entry names (stored relative to the batch folder)."""
    if recorded is None:
        return None
    p = Path(recorded)
    return p if p.is_absolute() else Path(batch_dir) / p


def relative_run(batch_dir: Path, run_dir: Path) -> str:
    """``../<run id>`` when the run sits next to the batch folder, else the absolute path."""
    run_dir, batch_dir = Path(run_dir).resolve(), Path(batch_dir).resolve()
    if run_dir.parent == batch_dir.parent:
        return f"../{run_dir.name}"
    return str(run_dir)


@contextmanager
def locked(batch_dir: Path):
    """Only one batch process works in a folder at a time (a stale lock of a dead one is taken
    over); two processes continuing the same batch would run its entries twice."""
    from ce_lab.safe_io import LinkRefused, open_fd

    path = Path(batch_dir) / LOCK
    for _ in range(3):
        try:
            fd = open_fd(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # 0666 less the umask
        except FileExistsError:
            from ce_lab.errors import CeLabError
            from ce_lab.safe_io import read_limited_text

            if os.path.islink(path):  # not a lock: neither read nor removed
                raise LinkRefused(path) from None

            try:
                pid = int(read_limited_text(path, 64).strip() or 0)
            except (OSError, ValueError, CeLabError):
                pid = 0
            if pid and pid != os.getpid() and pid_alive(pid):
                raise UsageError(f"{batch_dir} is being run by another ce-lab batch (pid {pid}); "
                                 "wait for it, or stop it") from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
