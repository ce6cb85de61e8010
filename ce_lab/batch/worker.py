"""One task of a batch, run where the executor puts it: train (or fuse) entries, or resume one.

A task is plain JSON, so it crosses process and machine boundaries unchanged::

    {"task_id": "t003", "kind": "train" | "resume", "entries": [3, 4, ...], "group": batch id,
     "configs": [resolved config dicts, one per entry] (train), "run_dir": str (resume),
     "threads": torch threads for this task}

It returns one result per entry: ``{"index", "run_dir", "status", "exit_code", "error"}``.
``python -m ce_lab.batch.worker TASK.json RESULT.json`` is how the local executor runs it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ce_lab.errors import CeLabError
from ce_lab.runs.folder import Status


def _results(task: dict[str, Any], status: Status, error: str | None,
             run_dir: str | None = None) -> list[dict[str, Any]]:
    return [{"index": i, "run_dir": run_dir, "status": status, "exit_code": status.exit_code,
             "error": error}
            for i in task["entries"]]


def run_task(task: dict[str, Any], reporter=None) -> list[dict[str, Any]]:
    """Run one task in this process; never raises for a failed run (it is a result)."""
    try:
        import torch

        if task.get("threads"):
            torch.set_num_threads(int(task["threads"]))
        from ce_lab import train as training
        from ce_lab.config import validate

        group = task.get("group")
        if task["kind"] == "resume":
            outcomes = [training.resume(Path(task["run_dir"]), reporter=reporter)]
        else:
            cfgs = [validate(c) for c in task["configs"]]
            if len(cfgs) == 1:
                outcomes = [training.train(cfgs[0], group=group, reporter=reporter)]
            else:
                # The planner made this task one stack: train it as one.
                outcomes = training.train_paired(cfgs, group=group, reporter=reporter,
                                                 max_members=len(cfgs))
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


def main(argv: list[str]) -> int:
    from rich.console import Console

    from ce_lab.progress import PlainReporter
    from ce_lab.runs.files import atomic_write_text

    task_path, result_path = Path(argv[0]), Path(argv[1])
    task = json.loads(task_path.read_text(encoding="utf-8"))
    # The output goes to the task's log file: plain lines, no bar.
    console = Console(file=sys.stdout, force_terminal=False, width=120)
    results = run_task(task, reporter=PlainReporter(console))
    atomic_write_text(result_path, json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
