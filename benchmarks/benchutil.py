"""Shared parts of the ce-lab benchmarks: the machine they ran on, timing statistics, the base config.

Not a test module and not part of the package: imported by bench_train.py and bench_fused.py, which
put this folder on sys.path by being run as scripts (``python benchmarks/bench_train.py``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def set_threads(threads: int | None) -> None:
    """--threads N, or None for ce-lab's thread policy (ce_lab/threads.py), as the commands do;
    call before torch is imported, which reads the wait policy once, as the commands do."""
    from ce_lab import threads as thread_policy

    thread_policy.configure(threads)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def hardware() -> dict[str, Any]:
    """What the timings depend on; printed and stored with every result."""
    import torch

    from ce_lab import threads as thread_policy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    decision = thread_policy.current()  # the default: the most a stack may take (it follows the load)
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": decision.threads,
        "torch_threads_source": decision.source,
        "omp_wait_policy": os.environ.get(thread_policy.WAIT_ENV, "libgomp default"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15min": load_average(),
    }


def describe_hardware(hw: Mapping[str, Any]) -> str:
    return (f"CPU: {hw['cpu']} ({hw['usable_cpus']} usable of {hw['logical_cpus']} logical CPUs), "
            f"torch {hw['torch']} with {hw['torch_threads']} intra-op thread(s) "
            f"({hw['torch_threads_source']}, OMP_WAIT_POLICY {hw['omp_wait_policy']}), "
            f"Python {hw['python']}; load average (1/5/15 min) {hw['load_average_1_5_15min']}")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def interleaved_rounds(fns: Mapping[str, Callable[[], Any]], repeats: int
                       ) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """One untimed warm-up round, then ``repeats`` rounds calling every fn in turn (a, b, c, a, b,
    c, ...) so that load from other processes falls on all of them alike. Returns the seconds and
    the return values of the timed rounds, per key."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    values: dict[str, list[Any]] = {k: [] for k in fns}
    for round_ in range(repeats + 1):
        label = "warm-up" if round_ == 0 else f"round {round_}/{repeats}"
        parts = []
        for key, fn in fns.items():
            seconds, value = timed(fn)
            if round_ > 0:
                times[key].append(seconds)
                values[key].append(value)
            parts.append(f"{key} {seconds:6.2f} s")
        print(f"  {label:>12}: " + "   ".join(parts), flush=True)
    return times, values


def stats(seconds: Sequence[float]) -> dict[str, Any]:
    xs = list(seconds)
    return {
        "n": len(xs),
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "min": min(xs),
        "max": max(xs),
        "all": xs,
    }


def fmt_stats(s: Mapping[str, Any]) -> str:
    return (f"{s['mean']:7.2f} s  ± {s['std']:5.2f}  (min {s['min']:.2f}, max {s['max']:.2f}, "
            f"n={s['n']})")


def base_config(out_dir: Path, epochs: int, max_steps: int | None, overrides: Mapping[str, Any]):
    """ce-lab's defaults (784-256-10, batch 64, SGD lr 0.1, ce) on the CPU, quiet, no checkpoints."""
    from ce_lab.config import RunConfig, with_overrides

    base = {
        "device": "cpu",
        "out_dir": str(out_dir),
        "train.epochs": epochs,
        "train.max_steps": max_steps,
        "log.checkpoint": False,
        "log.progress": "none",
    }
    return with_overrides(RunConfig(), {**base, **overrides})


def write_results(path: Path | None, results: Mapping[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}")
