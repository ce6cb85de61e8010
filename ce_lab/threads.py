"""How many threads torch computes with on the CPU, and how its idle threads wait: one policy for
every command (``train``, ``compare``, ``batch``) and the API.

Why the default follows the load (benchmarks/README.md, "Threads", has the measurements): on an
idle 2-CPU machine two threads that spin while they wait (torch's own libgomp setting) are the
fastest, 1.2-1.7x faster than one thread or two that sleep; beside any other busy process one
thread is the fastest, and spinning threads collapse (2-8x slower), because a spinning thread
holds a CPU that the thread it waits for, or the other process, needs. No fixed setting is within
1.1x of the best in both. So the default gives torch one thread per usable CPU that other
processes leave free, measured from the kernel's counters (``ce_lab.cpu_load``) while the stack
trains: it starts with one thread, the first check comes 0.05 s in, the next ones at doubling
gaps up to every 0.5 s; and it lets its threads spin: when another process appears, the count
drops within one check, and a lone thread has no one to wait for.

The policy, first match wins:

- threads: ``--threads N`` (``threads=N`` in the API; per job in ``batch``) > ``OMP_NUM_THREADS``
  in the environment > the default: the CPUs this process may use (``os.sched_getaffinity``)
  less the CPUs' worth of work other processes did lately, rounded so that less than ``SLACK`` of
  a CPU takes no thread away, at least 1. A job of ``batch --jobs J`` takes at most its share,
  those CPUs divided by J (``OMP_NUM_THREADS`` included), unless ``--threads`` says otherwise.
  Where the counters cannot be read (not Linux), every usable CPU.
- waiting: ``OMP_WAIT_POLICY`` in the environment > ``PASSIVE`` where the count is fixed (by
  ``--threads`` or ``OMP_NUM_THREADS``: it cannot make room for other work, so its threads must
  not hold CPUs while they wait) > libgomp's own (spin a while, then sleep) for the default.
  libgomp reads it once, when torch is imported, so every entry point calls ``configure``/
  ``prepare`` before it imports torch; a process that imported torch earlier keeps the policy
  it started with.

The thread count changes no number a run logs: every reduction the step and the evaluation make
is split across threads by output row, never within one (``ce_lab.nn.layers``, ``step_stats``),
and the products were measured to give the same bits with 1 and 2 threads (docs/fusion.md,
"Threads change nothing"); tests/test_threads.py checks both. This module does not import torch at import
time.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ce_lab import cpu_load

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_ENV = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"
SLACK = 0.5  # other processes' work below this much of a CPU takes no thread away
FIRST_CHECK_S, CHECK_EVERY_S = 0.05, 0.5  # a stack's first load check, and the longest gap after

# The process's own request (--threads) and its CPU share (batch --jobs), set by entry points.
_requested: int | None = None
_share: int | None = None


@dataclass(frozen=True)
class Decision:
    threads: int
    source: str  # "--threads", "OMP_NUM_THREADS" or "default"


def env_threads(env: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS as torch reads it: a positive integer (the first of a list), else None."""
    text = env.get(THREADS_ENV, "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def decide(*, requested: int | None, env: Mapping[str, str], cpus: int,
           share: int | None = None, others: float | None = None) -> Decision:
    """The thread count from the inputs named in the module docstring (no side effects).

    ``cpus``: the CPUs this process may use; ``share``: the most a batch job may take (the CPUs
    divided among the jobs); ``others``: the CPUs' worth of work other processes did lately (None:
    not known).
    """
    if requested is not None:
        return Decision(requested, "--threads")
    cap = max(1, min(cpus, share or cpus))
    from_env = env_threads(env)
    if from_env is not None:  # a batch job takes no more than its share, whatever the variable says
        return Decision(min(from_env, cap) if share else from_env, THREADS_ENV)
    if others is None:
        return Decision(cap, "default")
    return Decision(max(1, min(cap, math.floor(cpus - others + SLACK))), "default")


def fixed(env: Mapping[str, str], threads: int | None = None) -> bool:
    """Whether the thread count is set (``threads``, this process's request, OMP_NUM_THREADS)
    rather than following the load."""
    return threads is not None or _requested is not None or env_threads(env) is not None


def wait_policy(env: Mapping[str, str], threads: int | None = None) -> str | None:
    """The OMP_WAIT_POLICY to set: PASSIVE for a fixed thread count; None where the environment
    already says one, or where the count follows the load (libgomp's own, spinning a while)."""
    return PASSIVE if not env.get(WAIT_ENV) and fixed(env, threads) else None


def prepare() -> bool:
    """Set the wait policy in this process's environment (``wait_policy``), so that torch,
    imported after, starts its threads with it; call before torch is imported. Returns False
    where torch was already imported (the setting then comes too late for this process; child
    processes still inherit it)."""
    policy = wait_policy(os.environ)
    if policy is not None:
        os.environ[WAIT_ENV] = policy
    return "torch" not in sys.modules


def child_env(threads: int | None = None) -> dict[str, str]:
    """Environment entries for a worker process: the wait policy (``wait_policy``), and with
    ``threads`` the count for the native thread pools that read it when they load."""
    env = {WAIT_ENV: p} if (p := wait_policy(os.environ, threads)) else {}
    if threads is not None:
        env.update({THREADS_ENV: str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def usable_cpus() -> int:
    return len(cpu_load.usable_cpus())


def current(others: float | None = None) -> Decision:
    """This process's decision now, given the other processes' load (None: not known)."""
    return decide(requested=_requested, env=os.environ, cpus=usable_cpus(), share=_share,
                  others=others)


class Threads:
    """Torch's thread count for one stack: decided as it starts; ``tick`` (called every step, a
    clock read unless a check is due) decides again as the load changes, for the default."""

    def __init__(self) -> None:
        decision = current()
        self.last = cpu_load.snapshot() if decision.source == "default" else None
        self.follows_load = self.last is not None
        if self.follows_load:
            # One thread until the first check has seen the load: it takes no CPU from anyone.
            # Idle that costs ~15 ms; starting with two spinning threads beside a busy process,
            # or beside a second ce-lab started at the same moment, cost more than that (~0.1 s).
            decision = Decision(1, "default")
        self.decision = self._set(decision)
        self.gap = FIRST_CHECK_S
        self.due = time.monotonic() + self.gap

    @staticmethod
    def _set(decision: Decision) -> Decision:
        import torch

        if torch.get_num_threads() != decision.threads:
            torch.set_num_threads(decision.threads)
        return decision

    def tick(self) -> None:
        if not self.follows_load or time.monotonic() < self.due:
            return
        now = cpu_load.snapshot()
        others = cpu_load.others_busy(self.last, now)
        if others is not None:  # else too soon to tell: the window grows until the next check
            self.last = now
            self.decision = self._set(current(others))
        self.gap = min(CHECK_EVERY_S, self.gap * 2)
        self.due = time.monotonic() + self.gap


def apply() -> Threads:
    """Decide and set torch's intra-op thread count as a stack starts training; the stack's loop
    calls ``tick`` on the result every step."""
    return Threads()


def configure(threads: int | None = None, share: int | None = None) -> None:
    """This process's request: stacks train with ``threads`` (None: the policy's choice, at most
    ``share``); prepares the wait policy. For entry points that
    are a whole process (a command, a batch worker, a benchmark); the API uses ``using``, which
    restores the previous request."""
    global _requested, _share
    if threads is not None and threads < 1:
        from ce_lab.errors import UsageError

        raise UsageError(f"threads must be at least 1, got {threads}")
    _requested, _share = threads, share
    prepare()


@contextmanager
def using(threads: int | None = None, share: int | None = None) -> Iterator[None]:
    """``configure`` for the block only (an API call): the previous request comes back after."""
    global _requested, _share
    saved = _requested, _share
    configure(threads, share)
    try:
        yield
    finally:
        _requested, _share = saved


def with_threads(fn):
    """For an API function with a ``threads`` keyword: the call runs within ``using(threads)``,
    entered before the function imports torch (its body only declares the parameter)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        n = kwargs.get("threads")
        if n is not None:
            from ce_lab.lab.params import positive_int

            positive_int(n, "threads")
        with using(n):
            return fn(*args, **kwargs)

    return call
