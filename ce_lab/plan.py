"""One plan, executed anywhere: entries -> stacks (the fusion rule) -> tasks.

A batch, a comparison and a tuning grid all train a list of runs. The plan says, before anything
trains, which of them share a stack and what each worker gets:

1. entries: the runs to train, each a resolved config, or an interrupted run to resume;
2. stacks: ``ce_lab.training.fusion.plan_stacks``, the one fusion rule, groups the fresh entries
   into stacks of at most ``max_members``; a resumed run is a stack of its own (it continues its
   own checkpoint), and ``fuse=False`` leaves every entry alone;
3. tasks: one task is one stack, trained fused in one process (a local worker, a Ray task, or
   the calling process one stack after another).

Fusion and parallelism trade off: a stack is one worker's work, so a few big stacks can leave
workers idle, and splitting one gives up the fusion's savings for wall time. ``Split`` decides it,
and the plan records what it decided, so that a dry run shows it:

- ``when-idle`` (the default): split the biggest stack in two while workers would sit idle - fewer
  tasks than workers, or a last round that leaves some idle (tried until there are 4 stacks per
  worker); with no worker count (Ray without ``--jobs``: the cluster decides how many run at once)
  nothing can be said to idle, so nothing is split;
- ``never``: keep every stack whole.

Every executor runs exactly ``Plan.tasks``, and the dry run renders the same object. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ce_lab.config import RunConfig
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS, plan_stacks

RESUME, TRAIN = "resume", "train"


class Split(str, Enum):
    """When a stack the fusion rule made is split over several workers."""

    when_idle = "when-idle"
    never = "never"

    __str__ = str.__str__


DEFAULT_SPLIT = Split.when_idle


@dataclass(frozen=True)
class Entry:
    """One run to train: ``index`` names it to the caller (a batch entry, a position in a list)."""

    index: int
    config: RunConfig
    resume: Path | None = None  # an interrupted run folder, continued from its checkpoint


@dataclass(frozen=True)
class Stack:
    """Entries trained as one stacked model: same batches, same initial weights."""

    entries: tuple[Entry, ...]

    @property
    def kind(self) -> str:
        return RESUME if self.entries[0].resume is not None else TRAIN

    @property
    def indices(self) -> list[int]:
        return [e.index for e in self.entries]

    @property
    def configs(self) -> list[RunConfig]:
        return [e.config for e in self.entries]


@dataclass(frozen=True)
class Task:
    """One stack, as one worker runs it; ``number`` is its place in the plan (from 0)."""

    number: int
    stack: Stack

    @property
    def task_id(self) -> str:
        return f"task-{self.number:03d}-" + "-".join(str(i) for i in self.stack.indices[:4])


@dataclass(frozen=True)
class Plan:
    tasks: tuple[Task, ...]
    workers: int | None  # tasks at once; None: as many as the executor fits (Ray without --jobs)
    max_members: int
    split: Split
    fuse: bool
    rule_stacks: int  # stacks of fresh entries the fusion rule made, before any split

    @property
    def stacks(self) -> list[Stack]:
        return [t.stack for t in self.tasks]

    @property
    def trains(self) -> list[Stack]:
        return [s for s in self.stacks if s.kind == TRAIN]

    def stack_of(self) -> dict[int, tuple[int, int]]:
        """Entry index -> (task number, members in that task)."""
        return {i: (t.number, len(t.stack.entries)) for t in self.tasks for i in t.stack.indices}

    def describe(self) -> str:
        """One line: how many tasks, what the fusion rule made, and what the split decided."""
        if not self.tasks:
            return "plan: nothing to train"
        n = len(self.tasks)
        who = ("as many workers as the cluster fits" if self.workers is None
               else f"{self.workers} worker{'s' if self.workers != 1 else ''}")
        resumes = n - len(self.trains)
        parts = [f"{resumes} resumed run{'s' if resumes != 1 else ''}"] if resumes else []
        if self.trains:
            if not self.fuse:
                parts.append(f"{len(self.trains)} entries, each alone (no fusion)")
            else:
                parts.append(f"{_count(self.rule_stacks, 'stack')} by the fusion rule "
                             f"(at most {self.max_members} members){self._split_text()}")
        return f"plan: {_count(n, 'task')} for {who}: " + "; ".join(parts)

    def _split_text(self) -> str:
        made = len(self.trains)
        if self.split is Split.never:
            return ", kept whole (split-stacks never)"
        if made > self.rule_stacks:
            return f", split into {made} for workers that would sit idle (split-stacks when-idle)"
        if self.workers is None:
            return ", kept whole (split-stacks when-idle needs a number of workers)"
        n = len(self.tasks)
        why = ("no worker would sit idle" if n >= self.workers and n % self.workers == 0
               else "no stack has 2 members" if all(len(s.entries) < 2 for s in self.trains)
               else "already 4 stacks per worker")
        return f", none split (split-stacks when-idle: {why})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _split_for_idle(groups: list[list[Entry]], others: int, workers: int) -> list[list[Entry]]:
    """Halve the biggest group while workers would idle: fewer tasks than workers, or a last
    round that leaves some idle (until there are 4 stacks per worker)."""
    groups = list(groups)
    while (others + len(groups) < workers
           or (others + len(groups)) % workers and len(groups) < 4 * workers):
        big = max(range(len(groups)), key=lambda i: len(groups[i]), default=None)
        if big is None or len(groups[big]) < 2:
            break
        members = groups.pop(big)
        half = (len(members) + 1) // 2
        groups[big:big] = [members[:half], members[half:]]
    return groups


def make_plan(entries: Sequence[Entry], *, workers: int | None = 1,
              max_members: int = DEFAULT_MAX_MEMBERS, split: Split = DEFAULT_SPLIT,
              fuse: bool = True) -> Plan:
    """The tasks that train ``entries``: resumed runs first (one each), then the stacks of fresh
    entries, longest first, so that a short task, not a long one, ends up alone in the last
    round."""
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    split = Split(split)
    resumes = [e for e in entries if e.resume is not None]
    fresh = [e for e in entries if e.resume is None]
    if fuse:
        groups = [[fresh[i] for i in s] for s in plan_stacks([e.config for e in fresh], max_members)]
    else:
        if max_members < 1:
            raise ValueError("max_members must be at least 1")
        groups = [[e] for e in fresh]
    rule_stacks = len(groups)
    if split is Split.when_idle and workers is not None:
        groups = _split_for_idle(groups, len(resumes), workers)
    trains = sorted(groups, key=lambda g: (-len(g), g[0].index))
    stacks = [Stack((e,)) for e in resumes] + [Stack(tuple(g)) for g in trains]
    return Plan(tuple(Task(n, s) for n, s in enumerate(stacks)), workers, max_members, split,
                fuse, rule_stacks)


def plan_runs(cfgs: Sequence[RunConfig], *, workers: int | None = 1,
              max_members: int = DEFAULT_MAX_MEMBERS, split: Split = DEFAULT_SPLIT,
              fuse: bool = True) -> Plan:
    """The plan for a list of configs (a comparison's seed, a tuning grid); entry ``i`` is
    ``cfgs[i]``."""
    return make_plan([Entry(i, c) for i, c in enumerate(cfgs)], workers=workers,
                     max_members=max_members, split=split, fuse=fuse)
