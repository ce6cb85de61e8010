"""One task of a batch, run where the executor puts it: train (or fuse) entries, or resume one.

A task is plain JSON, so it crosses process and machine boundaries unchanged::

    {"task_id": "t003", "kind": "train" | "resume", "entries": [3, 4, ...], "group": batch id,
     "configs": [resolved config dicts, one per entry] (train), "run_dir": str (resume),
     "runs_file": where to write {entry: run folder} once they exist (train),
     "threads": torch threads for this task}

It returns one result per entry: ``{"index", "run_dir", "status", "exit_code", "error"}``.
``python -m ce_lab.batches.worker TASK.json RESULT.json`` is how the local executor runs it.

A worker dies with its batch: started with ``$CE_LAB_BATCH_PID`` set to the batch's pid, it gets a
SIGTERM when that process is gone (a ``kill -9`` of the batch included), on Linux from the kernel
(``PR_SET_PDEATHSIG``), elsewhere from a watchdog thread that sees its parent change. The training
loop takes SIGTERM as it takes one Ctrl-C: the step finishes, the run checkpoints as interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ce_lab.errors import CeLabError
from ce_lab.runs.folder import Status

PARENT_ENV = "CE_LAB_BATCH_PID"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, interval: float = 0.2) -> threading.Thread:
    """A daemon thread that sends this process one SIGTERM once its parent is no longer ``parent``
    (an orphan is adopted by another process, so its parent pid changes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="ce-lab-parent-watchdog", daemon=True)
    thread.start()
    return thread


def die_with_parent(parent: int | None) -> None:
    """Make sure this worker stops, as SIGTERM stops it, when the batch process ``parent`` dies."""
    if parent is None:
        return
    armed = _parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the batch died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not armed:
        watch_parent(parent)


def _results(task: dict[str, Any], status: Status, error: str | None,
             run_dir: str | None = None) -> list[dict[str, Any]]:
    return [{"index": i, "run_dir": run_dir, "status": status, "exit_code": status.exit_code,
             "error": error}
            for i in task["entries"]]


def runs_recorder(task: dict[str, Any], cfgs: list[Any]):
    """The ``on_open`` of a train task: writes ``{entry index: run folder}`` to the task's
    ``runs_file`` as its run folders are made, before training, so that the batch knows them
    even if this worker is killed (kill -9, the OOM killer) and resumes them instead of training
    the entries again (``ce_lab.batches.execute``). None when the task names no such file."""
    path = task.get("runs_file")
    if not path:
        return None
    opened: dict[str, str] = {}

    def on_open(runs) -> None:
        from ce_lab.safe_io import write_json

        for cfg, run_dir in runs:
            # Every entry of a batch has its own config (their hashes differ): the config
            # tells which entry a run folder is.
            opened[str(task["entries"][cfgs.index(cfg)])] = os.path.abspath(run_dir)
        try:
            write_json(Path(path), opened)
        except (OSError, CeLabError):  # the batch then finds the folders by their group
            pass

    return on_open


def run_task(task: dict[str, Any], reporter=None) -> list[dict[str, Any]]:
    """Run one task in this process; never raises for a failed run (it is a result)."""
    try:
        from ce_lab import threads

        # Before torch is imported: --threads (or Ray's CPUs per task), else the policy within
        # this job's share of the CPUs.
        threads.configure(task.get("threads") or None, task.get("share"))
        from ce_lab import training
        from ce_lab.config import validate

        group = task.get("group")
        if task["kind"] == "resume":
            outcomes = [training.resume(Path(task["run_dir"]), reporter=reporter)]
        else:
            cfgs = [validate(c) for c in task["configs"]]
            on_open = runs_recorder(task, cfgs)
            if len(cfgs) == 1:
                outcomes = [training.train(cfgs[0], group=group, reporter=reporter,
                                           on_open=on_open)]
            else:
                # The planner made this task one stack: train it as one.
                outcomes = training.train_paired(cfgs, group=group, reporter=reporter,
                                                 max_members=len(cfgs), on_open=on_open)
    except KeyboardInterrupt:  # before the training loop took over Ctrl-C
        return _results(task, Status.INTERRUPTED, "interrupted before training started",
                        task.get("run_dir"))
    except CeLabError as e:
        return _results(task, Status.FAILED, str(e), task.get("run_dir"))
    except Exception as e:  # a failed entry must not take the batch down
        return _results(task, Status.FAILED, f"{type(e).__name__}: {e}", task.get("run_dir"))
    return [
        {"index": i, "run_dir": str(o.run_dir), "status": o.status, "exit_code": o.exit_code,
         "error": o.message}
        for i, o in zip(task["entries"], outcomes, strict=True)
    ]


def run_logged(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a task with its progress on stdout, which is the task's log file (a local worker's,
    a SLURM job's): plain lines, no bar."""
    from rich.console import Console

    from ce_lab.progress import PlainReporter

    console = Console(file=sys.stdout, force_terminal=False, width=120)
    return run_task(task, reporter=PlainReporter(console))


def main(argv: list[str]) -> int:
    from ce_lab.safe_io import atomic_write_text

    die_with_parent(int(os.environ.get(PARENT_ENV) or 0) or None)
    task_path, result_path = Path(argv[0]), Path(argv[1])
    task = json.loads(task_path.read_text(encoding="utf-8"))
    results = run_logged(task)
    atomic_write_text(result_path, json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
