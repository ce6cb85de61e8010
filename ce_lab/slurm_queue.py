"""What SLURM's queue says about jobs (``squeue``), for the slurm executor and for deciding whether a
run's owner, a SLURM job on another node, is still alive (``ce_lab.runs.liveness``).

Plain Python, no ce_lab imports: ``squeue`` is asked, never ``sacct`` (a cluster without
accounting storage cannot answer that). A job SLURM no longer lists has ended.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
import time

# squeue states of a job that has not ended (its processes may still write).
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                    "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT",
                    "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
CACHE_S = 5.0  # how long an answer about one job holds (a listing asks about many runs)
_asked: dict[str, tuple[float, bool | None]] = {}


def squeue_states(jobs: list[str], user: str | None = None) -> dict[str, str] | None:
    """{job id: state} of ``jobs`` (ids or array ids; array elements listed one by one, as
    ``123_4``), as squeue lists them; a job SLURM has forgotten is absent. None when there is no
    squeue here, or it failed for another reason (ask again later)."""
    if not jobs:
        return {}
    args = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
            f"--jobs={','.join(jobs)}"]
    if user is not None:
        args.append(f"--user={user}")
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return {} if "invalid job id" in out.stderr.lower() else None
    states = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state.strip():
            states[job_id] = state.strip().split()[0]
    return states


def my_jobs(jobs: list[str]) -> dict[str, str] | None:
    """``squeue_states`` of this user's jobs."""
    return squeue_states(jobs, getpass.getuser())


def job_active(job: str) -> bool | None:
    """Whether SLURM job ``job`` (its ``$SLURM_JOB_ID``) is pending or running; None when this
    machine has no SLURM to ask, or it did not answer."""
    now = time.monotonic()
    cached = _asked.get(job)
    if cached is not None and now - cached[0] < CACHE_S:
        return cached[1]
    if shutil.which("squeue") is None:
        answer = None
    else:
        states = squeue_states([job])
        answer = None if states is None else any(s in ACTIVE for s in states.values())
    _asked[job] = (now, answer)
    return answer
