"""A batch's plan: what ``plan`` decided for each entry, made into ``ce_lab.plan``'s tasks.

Entries to resume become one task each; fresh entries are fused into stacks by the one fusion
rule and, where the split policy says so, split for idle workers (``ce_lab.plan.make_plan``).
``--dry-run`` renders this plan, and ``execute`` hands exactly its tasks to the executor, as the
JSON a worker runs (``task_payload``).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from ce_lab.batches.plan import BUSY, RESUME, SKIP, Opened, action_for
from ce_lab.batches.store import run_path
from ce_lab.config import to_dict
from ce_lab.plan import DEFAULT_SPLIT, Entry, Plan, Split, Task, make_plan
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS


def plan_batch(opened: Opened, *, fuse: bool = True, workers: int | None = 1,
               max_members: int = DEFAULT_MAX_MEMBERS, split: Split = DEFAULT_SPLIT,
               exclude: Collection[int] = ()) -> Plan:
    """The tasks that bring ``opened`` up to date: entries done, or still owned by a live
    process, are left out (as is ``exclude``: entries whose SLURM jobs are still to collect);
    interrupted ones with a checkpoint are resumed; the rest train."""
    by_index = {e.index: e for e in opened.batch.entries}
    entries = []
    for rec in opened.state.entries:
        act = action_for(opened.batch_dir, rec)
        if act in (SKIP, BUSY) or rec.index in exclude:
            continue
        resume = run_path(opened.batch_dir, rec.run_dir) if act == RESUME else None
        entries.append(Entry(rec.index, by_index[rec.index].config, resume))
    return make_plan(entries, workers=workers, max_members=max_members, split=split, fuse=fuse)


def task_payload(task: Task, group: str) -> dict[str, Any]:
    """The task as the JSON a worker runs (``ce_lab.batches.worker``)."""
    stack = task.stack
    out: dict[str, Any] = {"kind": stack.kind, "entries": stack.indices}
    if stack.kind == "resume":
        out["run_dir"] = str(stack.entries[0].resume)
    else:
        out["configs"] = [to_dict(c) for c in stack.configs]
    out["task_id"] = task.task_id
    out["group"] = group
    return out


def absolute_task(task: dict[str, Any]) -> dict[str, Any]:
    """The task with its folders absolute (out_dir, data.root, the run to resume), for a worker
    that does not share the batch process's working folder (a Ray task, a SLURM job)."""
    out = {**task, "configs": [_absolute_paths(c) for c in task.get("configs", [])]}
    if task.get("run_dir"):
        out["run_dir"] = os.path.abspath(task["run_dir"])
    return out


def _absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    config = {**config, "out_dir": os.path.abspath(config["out_dir"])}
    for key in ("root", "path"):  # the cache folder; a custom set's files
        where = config.get("data", {}).get(key)
        if where is not None:
            config["data"] = {**config["data"], key: os.path.abspath(where)}
    return config
