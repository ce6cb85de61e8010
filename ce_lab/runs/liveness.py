"""Is a run that says ``running`` still being trained? The one place that decides.

meta.json names its owner: ``pid``, ``host``, ``pid_start`` (the process's start time from
/proc/<pid>/stat, where there is one, so a recycled pid is not taken for the owner) and
``heartbeat`` (refreshed by the training loop every few seconds at logged and evaluated steps).
A run whose meta.json says ``running`` but whose owner is gone reads as ``crashed``:

- same host: the pid is not alive, or it is alive but started at another time (another process);
- another host (a shared filesystem): the SLURM job it ran in (``slurm_job``, recorded when it ran
  in one) is no longer pending or running, where ``squeue`` can tell; else the heartbeat is older
  than ``HEARTBEAT_TIMEOUT_S``;
- no owner recorded at all (written by an older ce-lab, or by hand): it cannot be alive.

Plain Python, no torch: the CLI, the batch and a comparison all ask here.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ce_lab.runs.folder import Status
from ce_lab.safe_io import now_iso

HEARTBEAT_EVERY_S = 5.0  # the loop writes meta.json at most this often
HEARTBEAT_TIMEOUT_S = 600.0  # an owner on another host is gone once its heartbeat is this old


def this_host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (/proc/<pid>/stat field 22); None where
    there is no /proc or no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):  # a zombie has stopped running
            return None
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    if Path("/proc/self/stat").exists() and Path(f"/proc/{pid}").exists():
        return process_start(pid) is not None  # not a zombie
    return True


def owner_fields() -> dict[str, Any]:
    """What meta.json records about the process that trains the run (refreshed on resume)."""
    pid = os.getpid()
    fields = {"pid": pid, "host": this_host(), "pid_start": process_start(pid),
              "heartbeat": now_iso()}
    if os.environ.get("SLURM_JOB_ID"):  # a job SLURM may kill without a word (see owner_alive)
        fields["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return fields


def heartbeat_age(meta: Mapping[str, Any], now: dt.datetime | None = None) -> float | None:
    """Seconds since the last heartbeat; None if there is none or it is unreadable."""
    beat = meta.get("heartbeat")
    if not isinstance(beat, str):
        return None
    try:
        when = dt.datetime.fromisoformat(beat)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.astimezone()
    now = now or dt.datetime.now(dt.timezone.utc)
    return (now - when).total_seconds()


def owner_alive(meta: Mapping[str, Any], *, timeout_s: float = HEARTBEAT_TIMEOUT_S) -> bool:
    """Whether the process meta.json names as the run's owner is still running it."""
    pid, host = meta.get("pid"), meta.get("host")
    if isinstance(pid, bool) or not isinstance(pid, int):
        pid = None
    if pid is not None and host == this_host():
        if not pid_alive(pid):
            return False
        recorded = meta.get("pid_start")
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            now = process_start(pid)
            if now is not None and now != recorded:
                return False  # the pid was reused by another process
        return True
    job = meta.get("slurm_job")
    if isinstance(job, str) and job.isdigit():
        from ce_lab.slurm_queue import job_active

        active = job_active(job)  # SLURM knows at once; a heartbeat tells only minutes later
        if active is not None:
            return active
    age = heartbeat_age(meta)
    if age is None:
        return False  # no owner recorded, or not on this host without a heartbeat
    return age < timeout_s


def effective_status(meta: Mapping[str, Any]) -> Status | None:
    """The status a run folder stands at: meta.json's, except that a ``running`` run whose owner
    is gone is ``crashed``. None if meta.json holds no known status."""
    try:
        status = Status(meta.get("status"))
    except ValueError:
        return None
    if status == Status.RUNNING and not owner_alive(meta):
        return Status.CRASHED
    return status


def describe_owner(meta: Mapping[str, Any]) -> str:
    """``pid 123 on host h, heartbeat 4 s ago``: who holds a running run, for messages."""
    parts = [f"pid {meta.get('pid')} on {meta.get('host')}"]
    age = heartbeat_age(meta)
    if age is not None:
        parts.append(f"last heartbeat {max(age, 0):.0f} s ago")
    return ", ".join(parts)
