"""Run tasks in worker processes on this machine, N at once.

Each task is a fresh ``python -m ce_lab.batches.worker`` process with its own log file. Workers start
in their own session, so a Ctrl-C in the terminal reaches only the batch, which then forwards one
SIGINT to each worker: the training loop checkpoints and ends as interrupted (a second Ctrl-C would
make it stop without a checkpoint, so the batch never sends two). Workers die with the batch: if it
is killed (``kill -9`` included), each gets one SIGTERM and stops the same way (see
``ce_lab.batches.worker.die_with_parent``), instead of training on as orphans.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ce_lab.batches.store import LOGS
from ce_lab.batches.worker import PARENT_ENV
from ce_lab.runs.folder import Status
from ce_lab.safe_io import atomic_write_text, ensure_dir, open_for_writing
from ce_lab.threads import child_env, usable_cpus


def threads_per_job(jobs: int) -> int:
    """The most torch threads each of ``jobs`` concurrent workers takes by default: the usable
    cores divided between them (within that, ``ce_lab.threads`` decides)."""
    return max(1, usable_cpus() // max(1, jobs))


@dataclass
class _Running:
    task: dict[str, Any]
    proc: subprocess.Popen
    result_path: Path
    log_file: IO[bytes]
    log_path: Path


class LocalExecutor:
    """Up to ``jobs`` worker processes; tasks beyond that wait in the batch's queue."""

    name = "local"
    detached = False

    def __init__(self, batch_dir: Path, jobs: int = 1, threads: int | None = None):
        self.jobs = max(1, jobs)
        self.capacity = self.jobs
        self.threads = threads  # --threads: exactly this many per job; None: the policy's choice
        self.share = threads_per_job(self.jobs)
        self.work_dir = ensure_dir(Path(batch_dir) / LOGS)  # a link there: refused
        self._running: list[_Running] = []

    def running(self) -> int:
        return len(self._running)

    def log_path(self, task: dict[str, Any]) -> Path:
        return self.work_dir / f"{task['task_id']}.log"

    def start(self, task: dict[str, Any]) -> None:
        task = {**task, "threads": self.threads, "share": self.share}
        task_path = self.work_dir / f"{task['task_id']}.task.json"
        result_path = self.work_dir / f"{task['task_id']}.result.json"
        result_path.unlink(missing_ok=True)
        atomic_write_text(task_path, json.dumps(task, indent=2))  # links refused, not followed
        log_path = self.log_path(task)
        log_file = open_for_writing(log_path, "ab")
        # The wait policy (and an explicit --threads) for the native thread pools, which read
        # them when they load; the worker applies the same policy to torch (ce_lab.threads).
        env = {**os.environ, **child_env(self.threads)}
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_ENV] = str(os.getpid())  # the worker stops when this process is gone
        proc = subprocess.Popen(
            [sys.executable, "-m", "ce_lab.batches.worker", str(task_path), str(result_path)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        self._running.append(_Running(task, proc, result_path, log_file, log_path))

    def submit(self) -> None:
        """Nothing to do: start() started the task."""

    def wait(self, timeout: float) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The tasks that ended within ``timeout`` seconds (possibly none) and their results."""
        deadline = time.monotonic() + timeout
        while True:
            done = [r for r in self._running if r.proc.poll() is not None]
            if done or time.monotonic() >= deadline or not self._running:
                break
            time.sleep(0.05)
        out = []
        for r in done:
            self._running.remove(r)
            r.log_file.close()
            out.append((r.task, self._collect(r)))
        return out

    def _collect(self, r: _Running) -> list[dict[str, Any]]:
        try:
            return json.loads(r.result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        code = r.proc.returncode
        interrupted = code in (-signal.SIGINT, Status.INTERRUPTED.exit_code, -signal.SIGTERM)
        status = Status.INTERRUPTED if interrupted else Status.FAILED
        error = (f"worker {'interrupted' if interrupted else 'crashed'} (exit {code}); "
                 f"see {r.log_path}")
        return [{"index": i, "run_dir": r.task.get("run_dir"), "status": status,
                 "exit_code": status.exit_code, "error": error}
                for i in r.task["entries"]]

    def interrupt(self) -> None:
        """Ask every running worker to checkpoint and stop (one SIGINT each)."""
        for r in self._running:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        for r in self._running:
            if r.proc.poll() is None:
                r.proc.kill()

    def close(self) -> None:
        self.kill()
        for r in self._running:
            r.proc.wait()
            r.log_file.close()
        self._running.clear()
