"""A batch's tasks: what ``plan`` decided, grouped into what one worker runs at a time.

Fresh entries that can share a stack (``ce_lab.training.fusion``: they may differ in the loss, the
optimizer's hyperparameters and the schedule) are fused into one task (``train_paired``: one
stacked model, identical batches) of at most ``max_members`` entries, and groups are split
further where that would leave workers idle.
"""

from __future__ import annotations

from typing import Any

from ce_lab.batch.plan import BUSY, RESUME, SKIP, Opened, action_for
from ce_lab.batch.spec import Entry
from ce_lab.batch.store import run_path
from ce_lab.config import to_dict
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS, fusion_key


def build_tasks(opened: Opened, fuse: bool, capacity: int,
                max_members: int = DEFAULT_MAX_MEMBERS) -> list[dict[str, Any]]:
    """Resumes first (one run each), then fresh entries, fused into stacks of at most
    ``max_members`` by ``ce_lab.training.fusion``'s rule."""
    batch, state = opened.batch, opened.state
    by_index = {e.index: e for e in batch.entries}
    resumes: list[dict[str, Any]] = []
    groups: dict[str, list[Entry]] = {}
    for rec in state.entries:
        act = action_for(opened.batch_dir, rec)
        if act in (SKIP, BUSY):
            continue
        if act == RESUME:
            resumes.append({"kind": "resume", "entries": [rec.index],
                            "run_dir": str(run_path(opened.batch_dir, rec.run_dir))})
            continue
        entry = by_index[rec.index]
        key = fusion_key(entry.config) if fuse else str(entry.index)
        groups.setdefault(key, []).append(entry)
    chunks = [members[i : i + max_members] for members in groups.values()
              for i in range(0, len(members), max_members)]
    # Fusing saves work, but not at the price of idle workers: split the biggest group while
    # workers would idle (fewer tasks than workers, or a last round that leaves some idle).
    while (len(resumes) + len(chunks) < capacity
           or (len(resumes) + len(chunks)) % capacity and len(chunks) < 4 * capacity):
        big = max(range(len(chunks)), key=lambda i: len(chunks[i]), default=None)
        if big is None or len(chunks[big]) < 2:
            break
        members = chunks.pop(big)
        half = (len(members) + 1) // 2
        chunks[big:big] = [members[:half], members[half:]]
    trains = [{"kind": "train", "entries": [e.index for e in members],
               "configs": [to_dict(e.config) for e in members]} for members in chunks]
    # Longest first, so that a short task, not a long one, ends up alone in the last round.
    tasks = resumes + sorted(trains, key=lambda t: (-len(t["entries"]), t["entries"][0]))
    for n, task in enumerate(tasks):
        task["task_id"] = f"task-{n:03d}-" + "-".join(str(i) for i in task["entries"][:4])
        task["group"] = state.batch_id
    return tasks


def stack_of_entries(opened: Opened, fuse: bool, capacity: int,
                     max_members: int = DEFAULT_MAX_MEMBERS) -> dict[int, tuple[int, int]]:
    """Entry index -> (task number, members in that task), as ``execute`` would schedule them."""
    out = {}
    for n, task in enumerate(build_tasks(opened, fuse, capacity, max_members)):
        for i in task["entries"]:
            out[i] = (n, len(task["entries"]))
    return out
