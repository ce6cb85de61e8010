"""How many threads torch computes with on the CPU, and how its idle threads wait: one policy for
every command (``train``, ``compare``, ``batch``) and the API.

Why: torch's OpenMP threads (libgomp) spin while they wait for work. Alone on a machine that is a
little faster; beside any other busy process it collapses (2-40x slower), because a spinning
thread holds a CPU that the thread it waits for, or the other process, needs. Threads that sleep
while they wait (``OMP_WAIT_POLICY=PASSIVE``) never take a CPU from anyone, so every usable CPU
can be given a thread: alone they use the machine, beside other work the scheduler shares it
(benchmarks/README.md, "Threads", has the measurements, and why the load is not an input).

The policy, first match wins:

- threads: ``--threads N`` (``threads=N`` in the API; per job in ``batch``) > ``OMP_NUM_THREADS``
  in the environment > the default: the CPUs this process may use (``os.sched_getaffinity``). A
  job of ``batch --jobs J`` takes at most its share, those CPUs divided by J (``OMP_NUM_THREADS``
  included), unless ``--threads`` says otherwise.
- waiting: ``OMP_WAIT_POLICY`` in the environment > ``PASSIVE``. libgomp reads it once, when torch
  is imported, so every entry point calls ``prepare()`` before it imports torch; a process that
  imported torch earlier (a notebook that did ``import torch`` first) keeps the policy it started
  with: set ``OMP_WAIT_POLICY=PASSIVE`` before starting it.

The thread count is applied as each stack starts (``apply``, from the training loop). On a CPU it
can change the last bits of a lone run's gradient-norm statistics (threaded reductions); the
default depends only on the machine, so a rerun on the same machine gives the same bits.
This module does not import torch at import time.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_ENV = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"

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
           share: int | None = None) -> Decision:
    """The thread count from the inputs named in the module docstring (no side effects).

    ``cpus``: the CPUs this process may use; ``share``: the most a batch job may take (the CPUs
    divided among the jobs).
    """
    if requested is not None:
        return Decision(requested, "--threads")
    cap = max(1, min(cpus, share or cpus))
    from_env = env_threads(env)
    if from_env is not None:  # a batch job takes no more than its share, whatever the variable says
        return Decision(min(from_env, cap) if share else from_env, THREADS_ENV)
    return Decision(cap, "default")


def wait_policy(env: Mapping[str, str]) -> str | None:
    """The OMP_WAIT_POLICY to set: None where the environment already says one."""
    return None if env.get(WAIT_ENV) else PASSIVE


def prepare() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in this process's environment unless it is set, so that
    torch, imported after, starts its threads with it; call before torch is imported. Returns
    False where torch was already imported (the setting then comes too late for this process;
    child processes still inherit it)."""
    policy = wait_policy(os.environ)
    if policy is not None:
        os.environ[WAIT_ENV] = policy
    return "torch" not in sys.modules


def child_env(threads: int | None = None) -> dict[str, str]:
    """Environment entries for a worker process: the wait policy (unless set), and with
    ``threads`` the count for the native thread pools that read it when they load."""
    env = {WAIT_ENV: p} if (p := wait_policy(os.environ)) else {}
    if threads is not None:
        env.update({THREADS_ENV: str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def current() -> Decision:
    """This process's decision now."""
    return decide(requested=_requested, env=os.environ, cpus=usable_cpus(), share=_share)


def apply() -> Decision:
    """Decide and set torch's intra-op thread count (called as a stack starts training)."""
    import torch

    decision = current()
    if torch.get_num_threads() != decision.threads:
        torch.set_num_threads(decision.threads)
    return decision


def configure(threads: int | None = None, share: int | None = None) -> None:
    """This process's request: stacks train with ``threads`` (None: the policy's choice, at most
    ``share``); prepares the wait policy. For entry points that are a whole process (a command, a
    batch worker, a benchmark); the API uses ``using``, which restores the previous request."""
    global _requested, _share
    if threads is not None and threads < 1:
        from ce_lab.errors import UsageError

        raise UsageError(f"threads must be at least 1, got {threads}")
    prepare()
    _requested, _share = threads, share


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
