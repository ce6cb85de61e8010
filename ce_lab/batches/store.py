"""The batch folder and its ``batch.json``: which entry ran where and how it ended.

``<out_dir>/batch-<name>-<YYYYmmdd-HHMMSS>-<4 hex>/`` holds:

- ``batch.yaml``: a copy of the batch file as written;
- ``base-config.yaml``: the resolved base config (after ``--set``/``--out-dir``), so that
  ``--resume`` expands exactly the same entries even if the base file changed since;
- ``batch.json``: the state, rewritten atomically when the batch opens and ends;
- ``batch.events.jsonl``: between those, one line per entry as it starts or ends (its whole
  record), appended: rewriting batch.json at every event would make the bookkeeping quadratic in
  the batch. The log is folded into batch.json once it outgrows it (so the work stays linear) and
  read back over it by ``read_state``; each line carries a sequence number, and only lines past
  the one batch.json records are applied, so a crash at any moment leaves a state that reads back
  exactly;
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
EVENTS = "batch.events.jsonl"
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
    seq: int = 0  # the last line of the event log folded into this state

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
    "group_by": (list,), "entries": (list,), "kind": (str,), "seq": (int,),
}


def _type_problem(data: dict[str, Any], types: dict[str, tuple[type, ...]], where: str) -> str | None:
    for key, allowed in types.items():
        if key in data and (not isinstance(data[key], allowed) or isinstance(data[key], bool)):
            return f"{where}{key} has the wrong type ({type(data[key]).__name__})"
    return None


def _entry(e: Any, where: str) -> EntryRecord:
    """One entry's record (in batch.json, or a line of the event log); ValueError if malformed."""
    if not isinstance(e, dict):
        raise ValueError(f"{where} is not an object")
    problem = _type_problem(e, _ENTRY_TYPES, f"{where}.")
    if problem:
        raise ValueError(problem)
    try:
        Status(e.get("status", Status.PENDING))
    except ValueError:
        raise ValueError(f"{where}.status {e['status']!r} is unknown") from None
    return EntryRecord(**{k: v for k, v in e.items() if k in EntryRecord.__dataclass_fields__})


def from_json(data: dict[str, Any]) -> BatchState:
    """The state in a batch.json; ValueError (one line) for any field of the wrong type."""
    problem = _type_problem(data, _STATE_TYPES, "")
    if problem:
        raise ValueError(problem)
    entries = [_entry(e, f"entries[{n}]") for n, e in enumerate(data.get("entries", []))]
    if not all(isinstance(k, str) for k in [*data.get("varied_keys", []),
                                            *data.get("group_by", [])]):
        raise ValueError("varied_keys / group_by hold a non-string")
    fields = {k: v for k, v in data.items() if k in BatchState.__dataclass_fields__}
    fields["entries"] = entries
    return BatchState(**fields)


def _read_json(path: Path) -> Any:
    """A batch.json read as untrusted: a regular file within the bound its batch file implies
    (FIFO, directory, /dev/zero and larger files refused, as UnreadableFile)."""
    from ce_lab.batches.sizes import state_bound
    from ce_lab.safe_io import read_limited_text

    return json.loads(read_limited_text(path, state_bound(path.parent / BATCH_COPY)))


def write_state(batch_dir: Path, state: BatchState) -> None:
    """Rewrite batch.json atomically (a reader never sees half a file), folding the event log
    into it: the log is removed once batch.json holds its last line (``state.seq``)."""
    from ce_lab.safe_io import now_iso, write_json

    state.updated = now_iso()
    write_json(Path(batch_dir) / BATCH_JSON, to_json(state))
    (Path(batch_dir) / EVENTS).unlink(missing_ok=True)


def record_entries(batch_dir: Path, state: BatchState, records: list[EntryRecord]) -> None:
    """Save what changed in ``records`` (entries starting or ending): a line each, appended to the
    event log, at a cost that does not grow with the batch. Once the log is larger than batch.json
    it is folded into it, so over a whole batch the bytes written stay linear in its size."""
    from ce_lab.safe_io import WriteError, now_iso, open_fd, os_error_text

    state.updated = now_iso()
    lines = []
    for rec in records:
        state.seq += 1
        lines.append(json.dumps({"seq": state.seq, "updated": state.updated,
                                 "entry": asdict(rec)}, separators=(",", ":")) + "\n")
    path = Path(batch_dir) / EVENTS
    try:
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never through a link
        try:
            data = memoryview("".join(lines).encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        compacted = os.stat(Path(batch_dir) / BATCH_JSON).st_size
    except OSError as e:
        raise WriteError(os_error_text(e, path)) from None
    if size > max(compacted, COMPACT_BYTES):
        write_state(batch_dir, state)


# The event log is folded into batch.json once it is larger than this or batch.json, whichever is
# larger: a small batch keeps one file, a large one never rewrites batch.json more often than the
# log doubles it.
COMPACT_BYTES = 64 << 10


def _replay(batch_dir: Path, state: BatchState) -> BatchState:
    """``state`` with the event log's lines past ``state.seq`` applied. The log's last line may be
    cut short by a crash mid-append: it is ignored (its entry reads as it was before)."""
    from ce_lab.batches.sizes import state_bound
    from ce_lab.safe_io import read_limited_text

    path = Path(batch_dir) / EVENTS
    try:
        text = read_limited_text(path, 2 * state_bound(Path(batch_dir) / BATCH_COPY))
    except FileNotFoundError:
        return state
    at = {rec.config_hash: i for i, rec in enumerate(state.entries)}
    for n, line in enumerate(text.split("\n")[:-1]):  # the last piece has no newline: not whole
        try:
            event = json.loads(line)
        except ValueError:
            raise ValueError(f"{EVENTS} line {n + 1} is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("entry"), dict):
            raise ValueError(f"{EVENTS} line {n + 1} is not an entry event")
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= state.seq:
            continue  # folded into batch.json already (a crash before the log was removed)
        if seq != state.seq + 1:  # batch.json was rewritten between the two reads: again
            raise _Folded
        record = _entry(event["entry"], f"{EVENTS} line {n + 1}")
        if record.config_hash in at:
            state.entries[at[record.config_hash]] = record
        state.seq = seq
        if isinstance(event.get("updated"), str):
            state.updated = event["updated"]
    return state


class _Folded(Exception):
    """The log was folded into batch.json while it was being read (a reader beside the batch)."""


def read_state(batch_dir: Path) -> BatchState:
    """batch.json with the event log's newer lines applied; UsageError (one line) if unreadable."""
    from ce_lab.safe_io import UnreadableFile

    path = Path(batch_dir) / BATCH_JSON
    try:
        for _ in range(9):
            data = _read_json(path)
            if not isinstance(data, dict) or data.get("kind") != "batch":
                raise ValueError("not a batch.json")
            try:
                return _replay(batch_dir, from_json(data))
            except _Folded:
                continue
        raise ValueError(f"{EVENTS} kept changing while it was read")
    except FileNotFoundError:
        raise UsageError(f"{batch_dir}: not a batch folder (no {BATCH_JSON})") from None
    except UnreadableFile as e:
        raise UsageError(f"{batch_dir}: unreadable {e.path.name} ({e.reason})") from None
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
