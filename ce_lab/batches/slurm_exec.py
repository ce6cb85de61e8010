"""Run tasks as SLURM jobs through submitit: the tasks a batch call starts go to SLURM together,
as one job array, each array element one task of the plan (a fused stack), run by
``ce_lab.batches.worker.run_logged`` on the node SLURM picks.

submitit is an optional extra (``pip install "ce-lab[slurm]"``), imported only here, only when this
executor is chosen. Its folder (the sbatch script, the pickles, each job's stdout and stderr) is
``<batch folder>/slurm``. The nodes must share the file system that holds the batch folder, the
runs and the data, so a batch folder under this machine's temporary folder is refused.

Whether a job still runs is asked of ``squeue`` (submitit's watcher asks ``sacct``, which a
cluster without accounting storage cannot answer): a job no longer pending or running has ended.
Its results are the pickle the job wrote; a job SLURM killed before it could write one (time
limit, preemption, node failure, out of memory, scancel) gives one interrupted or failed result
per entry naming SLURM's state, and its runs, which read as crashed, resume from their checkpoint.

Signals: scancel and preemption send SIGTERM, which the training loop takes as Ctrl-C (the step
ends, the run checkpoints as interrupted); SLURM warns of the time limit with SIGUSR2, which the
job turns into the same SIGTERM (submitit's own handler would fail a callable it cannot requeue).

The jobs not yet collected are listed in ``<batch folder>/slurm/jobs.json`` (``--detach``, or a
batch process that was killed): the next ``ce-lab batch`` of that folder collects them first.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ce_lab.batches.tasks import absolute_task
from ce_lab.errors import CeLabError, MissingDependency, ParamError, UsageError
from ce_lab.runs.folder import Status
from ce_lab.slurm_queue import ACTIVE, my_jobs

SUBMITIT_DIR = "slurm"
JOBS_FILE = "jobs.json"
OPTIONS_FILE = "options.json"
CLUSTER_ENV = "CE_LAB_SUBMITIT_CLUSTER"  # "local": submitit runs each job as a local process
CLUSTERS = ("slurm", "local")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local executor kills a job after 2 minutes
SQUEUE_EVERY_S = 5.0  # how often the driver asks SLURM (a cluster's controller is shared)
RESULT_GRACE_S = 15.0  # as submitit waits for a result pickle
# Ended without a result, but as the training loop stops on Ctrl-C: the runs checkpointed.
STOPPED = {"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE"}


@dataclass(frozen=True)
class SlurmOptions:
    """What each job asks SLURM for; None leaves it to the partition's defaults."""

    partition: str | None = None
    time: str | None = None  # SLURM's format: minutes, HH:MM:SS, D-HH:MM, ...
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str | None = None  # SLURM's format: 4G, 500M, ...
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch parameters, without --

    def parameters(self, jobs: int | None = None) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters. No ``--time`` unless given: the partition's limit
        (submitit's own default would be 5 minutes)."""
        extra = {**self.extra}
        if self.time is not None:  # as typed: sbatch checks it and says what is wrong
            extra["time"] = self.time
        out: dict[str, Any] = {"job_name": "ce-lab", "time": None,
                               "cpus_per_task": self.cpus_per_task,
                               "additional_parameters": extra}
        if self.partition:
            out["partition"] = self.partition
        if self.gpus_per_task:
            out["gpus_per_task"] = self.gpus_per_task
        if self.mem is not None:
            out["mem"] = self.mem
        if jobs:
            out["array_parallelism"] = jobs
        return out


def cluster() -> str:
    """Where submitit sends the jobs: SLURM, or (``CE_LAB_SUBMITIT_CLUSTER=local``) local
    processes, which need no shared file system: a try of a batch on a machine without SLURM."""
    value = os.environ.get(CLUSTER_ENV) or "slurm"
    if value not in CLUSTERS:
        raise UsageError(f"${CLUSTER_ENV} must be one of {', '.join(CLUSTERS)}, got {value!r}")
    return value


def check_shared(folder: Path) -> None:
    """Refuse a batch folder under the temporary folder: SLURM's nodes do not share it."""
    if cluster() == "local":
        return
    tmp = Path(os.path.realpath(tempfile.gettempdir()))
    where = Path(os.path.realpath(folder))
    if where == tmp or tmp in where.parents:
        raise ParamError(f"«executor» slurm needs the batch folder on a file system the nodes "
                         f"share; {folder} is under the temporary folder {tmp}: give «out_dir» "
                         "on a shared file system")


def import_submitit():
    try:
        import submitit
    except ImportError:
        error = MissingDependency('--executor slurm needs submitit, which is not installed: '
                                  'pip install "ce-lab[slurm]"')
        error.exit_code = 2
        raise error from None
    return submitit


def _job_body(task: dict[str, Any]) -> list[dict[str, Any]]:
    """What a SLURM job runs: the task, SIGUSR2 (the time limit is near) taken as SIGTERM."""
    import signal

    from ce_lab.batches.worker import run_logged

    signal.signal(signal.SIGUSR2, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    return run_logged(task)


def jobs_path(batch_dir: Path) -> Path:
    return Path(batch_dir) / SUBMITIT_DIR / JOBS_FILE


def uncollected(batch_dir: Path) -> list[dict[str, Any]]:
    """``[{"job_id", "cluster", "task"}]``: jobs submitted from this folder whose results no
    batch process has collected yet; [] when there are none (or the list is unreadable)."""
    from ce_lab.safe_io import MAX_JSON_BYTES, read_limited_text

    path = jobs_path(batch_dir)
    if not path.is_file():
        return []
    try:
        data = json.loads(read_limited_text(path, MAX_JSON_BYTES))
    except (OSError, ValueError, CeLabError):
        return []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    return [j for j in jobs or [] if isinstance(j, dict) and isinstance(j.get("job_id"), str)
            and isinstance(j.get("task"), dict)]


def saved_options(batch_dir: Path) -> dict[str, Any]:
    """The options a batch folder's jobs were last submitted with ({} if none)."""
    from ce_lab.safe_io import MAX_JSON_BYTES, read_limited_text

    try:
        data = json.loads(read_limited_text(Path(batch_dir) / SUBMITIT_DIR / OPTIONS_FILE,
                                            MAX_JSON_BYTES))
    except (OSError, ValueError, CeLabError):
        return {}
    names = {"partition", "time", "cpus_per_task", "gpus_per_task", "mem", "extra"}
    return {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}


def _sbatch_reason(error: BaseException) -> str:
    """SLURM's own words from a refused submission, on one line."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    said = [line for line in lines if "error:" in line]
    return "; ".join(dict.fromkeys(said)) or next((x for x in reversed(lines) if x), repr(error))


class SlurmExecutor:
    """Every task it is given becomes a SLURM job; SLURM decides how many run at once
    (``jobs``: at most that many of an array, ``%N``)."""

    name = "slurm"

    def __init__(self, batch_dir: Path, options: SlurmOptions, jobs: int | None = None,
                 detach: bool = False, adopt: list[dict[str, Any]] | None = None):
        submitit = import_submitit()
        self.cluster = cluster()
        self.folder = Path(os.path.abspath(batch_dir)) / SUBMITIT_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.options = options
        self.capacity = 1_000_000  # all at once: SLURM queues them
        self.detach = detach
        self.detached = False  # submitted and let go: their results are collected later
        from ce_lab.safe_io import write_json

        write_json(self.folder / OPTIONS_FILE, asdict(options))  # what --resume asks for again
        if self.cluster == "slurm":
            self._executor = submitit.SlurmExecutor(folder=self.folder)
            self._executor.update_parameters(**options.parameters(jobs))
        else:  # as many at once as there are tasks, and no time limit to speak of
            self._executor = submitit.LocalExecutor(folder=self.folder)
            self._executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        self._pending: list[dict[str, Any]] = []
        self._running: dict[str, tuple[Any, dict[str, Any]]] = {}  # job id -> (job, task)
        self._states: dict[str, str] = {}
        self._ended: dict[str, float] = {}  # when SLURM first said a job had ended
        # A result written on a node may show on this machine's view of a network file system
        # only seconds later (attribute caches): a job without one is given this long.
        self._grace = RESULT_GRACE_S if self.cluster == "slurm" else 0.0
        self._asked = 0.0
        self._cancelled = False
        self._gave_up = False
        self.job_ids: list[str] = []
        for item in adopt or []:
            job = self._job_of(item["job_id"], item.get("cluster", self.cluster))
            self._running[item["job_id"]] = (job, item["task"])

    def _job_of(self, job_id: str, where: str):
        if where == "slurm":
            from submitit.slurm.slurm import SlurmJob

            return SlurmJob(folder=self.folder, job_id=job_id)
        from submitit.local.local import LocalJob

        return LocalJob(folder=self.folder, job_id=job_id)

    def running(self) -> int:
        return 0 if self.detached or self._gave_up else len(self._pending) + len(self._running)

    def log_path(self, task: dict[str, Any]) -> None:
        return None  # known once submitted: <batch>/slurm/<job id>_0_log.out

    def start(self, task: dict[str, Any]) -> None:
        self._pending.append({**absolute_task(task), "threads": self.options.cpus_per_task})

    def submit(self) -> None:
        """The tasks start() was given, as one job array (one job if there is one task)."""
        if not self._pending:
            return
        tasks, self._pending = self._pending, []
        try:
            # submitit prints sbatch's complaint too: the one line below says it.
            with contextlib.redirect_stderr(io.StringIO()), self._executor.batch():
                jobs = [self._executor.submit(_job_body, t) for t in tasks]
        except Exception as e:  # sbatch refused: no such partition, more than a node has, ...
            raise CeLabError(f"SLURM refused the jobs: {_sbatch_reason(e)}") from None
        for job, task in zip(jobs, tasks):
            self._running[job.job_id] = (job, task)
            self.job_ids.append(job.job_id)
        self._save()

    def _save(self) -> None:
        """The jobs not collected yet, for a later batch process (``uncollected``)."""
        from ce_lab.safe_io import write_json

        path = jobs_path(self.folder.parent)
        if not self._running:
            path.unlink(missing_ok=True)
            return
        write_json(path, {"jobs": [{"job_id": k, "cluster": self.cluster, "task": t}
                                   for k, (_, t) in self._running.items()]})

    def _active(self) -> set[str]:
        """The ids of the jobs that have not ended."""
        if self.cluster == "local":  # a local job's id is its process id
            from ce_lab.runs.liveness import pid_alive

            return {k for k in self._running if pid_alive(int(k))}
        if time.monotonic() - self._asked >= SQUEUE_EVERY_S:
            self._asked = time.monotonic()
            states = my_jobs(sorted({k.split("_")[0] for k in self._running}))
            for k in self._running if states is not None else ():  # None: ask again later
                self._states[k] = states.get(k, "ENDED")  # absent: SLURM has forgotten it
        # A job submitted since SLURM was last asked is pending.
        return {k for k in self._running if self._states.get(k, "PENDING") in ACTIVE}

    def wait(self, timeout: float) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        self.submit()
        if self.detach:
            self.detached = True
            return []
        deadline = time.monotonic() + timeout
        while True:
            active, now = self._active(), time.monotonic()
            for k in self._running:
                if k not in active:
                    self._ended.setdefault(k, now)
            done = [k for k, (job, _) in self._running.items()
                    if job.paths.result_pickle.exists()
                    or now - self._ended.get(k, now) > self._grace]
            if done or time.monotonic() >= deadline or not self._running:
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        out = []
        for k in done:
            job, task = self._running.pop(k)
            out.append((task, self._collect(job, task)))
        if done:
            self._save()
        return out

    def _collect(self, job, task: dict[str, Any]) -> list[dict[str, Any]]:
        if job.paths.result_pickle.exists():
            try:
                return job.result()
            except Exception as e:  # the job raised, or its pickle is unreadable
                status, error = Status.FAILED, " ".join(str(e).split())[:500]
        else:
            state = self._states.get(job.job_id, "ENDED")
            stopped = self._cancelled or state in STOPPED
            status = Status.INTERRUPTED if stopped else Status.FAILED
            error = (f"SLURM job {job.job_id} ended ({state.lower()}) before it wrote a result; "
                     f"see {job.paths.stdout}")
        return [{"index": i, "run_dir": task.get("run_dir"), "status": status,
                 "exit_code": status.exit_code, "error": error} for i in task["entries"]]

    def interrupt(self) -> None:
        """Cancel every job (scancel): queued ones never start, running ones get SIGTERM and
        checkpoint."""
        self._cancelled = True
        self._pending.clear()
        if self.cluster == "slurm":
            for array in sorted({k.split("_")[0] for k in self._running}):
                self._job_of(array, "slurm").cancel(check=False)  # the whole array at once
        else:
            for job, _ in self._running.values():
                job.cancel(check=False)

    def kill(self) -> None:
        """A second Ctrl-C: stop waiting (SLURM kills what is left after its KillWait); the jobs
        stay listed for the next call to collect."""
        self._gave_up = True

    def close(self) -> None:
        if self.detached:
            return
        if self._running and not self._cancelled:
            self.interrupt()
        self._save()  # what is still running (a second Ctrl-C) is collected by the next call
