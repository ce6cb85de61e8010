"""Benchmark: how ce-lab's bookkeeping grows with what it keeps (issue 20, §6), on generated folders
in a temp dir; no training, no data.

- runs: ``ce-lab runs`` and ``ce-lab runs --last 5`` over --runs run folders (default 10,000, at
  four learning rates, so the listing has an ``optim.lr`` column), each a command in its own
  process as a user runs it, cold (no index yet) and warm (the index beside the folders,
  ``.runs-index.json``). Target: warm, both under 2 s. Printed beside them (no target): warm
  ``--where optim.lr=0.1`` and ``--format csv``.
- batch: the bookkeeping of a batch of N entries (every entry started and ended once, as
  ``execute`` records it, against an executor that finishes at once), at N = --batch / 10 and N =
  --batch (default 10,000): seconds and bytes written to batch.json and its event log. Target:
  linear, the time per entry at N within 2x of that at N / 10. Printed beside it: what rewriting
  batch.json at every start and end (the old way) costs at N / 10.
- thresholds: ``ce-lab compare`` of two runs whose summaries hold T thresholds (T = 500, 4,000),
  table output to a pipe 80 columns wide, no plots. Target: linear: the time at 4,000 within 8 x
  1.5 of the time at 500 (12x), and not the 40x a quadratic fit takes.

Other processes share the CPU: the load average is printed at the start and the end.

Usage:  python benchmarks/bench_scale.py [--runs 10000] [--batch 10000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchutil import cpu_model, load_average  # noqa: E402

RUNS_TARGET_S = 2.0
LRS = (0.1, 0.3, 1.0, 3.0)  # the generated runs' learning rates: a config key that differs
LINEAR_SLACK = 2.0


def _cli(*args: str) -> float:
    """Seconds one ``ce-lab ARGS`` takes as a process (output to a pipe, 80 columns)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", "NO_COLOR": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ce_lab", *args], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"ce-lab {' '.join(args)} exited {done.returncode}: "
                         f"{done.stderr.strip()[-500:]}")
    return seconds


# --- runs -----------------------------------------------------------------------------------

def make_runs(out: Path, n: int) -> None:
    """``n`` run folders: one made by the test factory (the exact on-disk format), copied with
    its id, seed, learning rate (one of four), start time and accuracy changed."""
    from tests.run_factory import make_run

    template = make_run(out / ".template", "ce", name="template")
    meta = json.loads((template / "meta.json").read_text())
    summary = json.loads((template / "summary.json").read_text())
    config = (template / "config.yaml").read_text()
    for i in range(n):
        run_id = f"20261120-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-ce-{i:04x}"
        folder = out / run_id
        folder.mkdir()
        started = f"2026-11-20T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00"
        (folder / "meta.json").write_text(json.dumps(meta | {"run_id": run_id,
                                                             "started": started}, indent=2))
        (folder / "summary.json").write_text(json.dumps(
            summary | {"seed": i, "final": summary["final"] | {"val_acc": 0.9 + i / n / 20}},
            indent=2))
        (folder / "config.yaml").write_text(config.replace("seed: 0", f"seed: {i}", 1).replace(
            "  lr: 0.1\n", f"  lr: {LRS[i % len(LRS)]}\n", 1))
    shutil.rmtree(out / ".template")


def bench_runs(tmp: Path, n: int) -> dict[str, Any]:
    out = tmp / "runs"
    out.mkdir()
    t0 = time.perf_counter()
    make_runs(out, n)
    print(f"runs: made {n:,} run folders in {time.perf_counter() - t0:.1f} s", flush=True)
    base = ["runs", "--out-dir", str(out)]
    cold = _cli(*base)
    warm = [_cli(*base) for _ in range(3)]
    last = [_cli(*base, "--last", "5") for _ in range(3)]
    where = [_cli(*base, "--where", "optim.lr=0.1") for _ in range(3)]
    as_csv = [_cli(*base, "--format", "csv") for _ in range(3)]
    startup = [_cli("--version") for _ in range(3)]
    result = {"folders": n, "cold_s": cold, "warm_s": min(warm), "last5_warm_s": min(last),
              "where_warm_s": min(where), "csv_warm_s": min(as_csv), "startup_s": min(startup)}
    result["target_met"] = max(result["warm_s"], result["last5_warm_s"]) < RUNS_TARGET_S
    print(f"runs: ce-lab runs cold {cold:.2f} s, warm {result['warm_s']:.2f} s; runs --last 5 "
          f"warm {result['last5_warm_s']:.2f} s (interpreter start alone: "
          f"{result['startup_s']:.2f} s); target < {RUNS_TARGET_S} s warm: "
          f"{'met' if result['target_met'] else 'MISSED'}", flush=True)
    print(f"runs: warm, --where optim.lr=0.1 ({n // len(LRS):,} runs) {result['where_warm_s']:.2f} s, "
          f"--format csv {result['csv_warm_s']:.2f} s", flush=True)
    return result


# --- batch bookkeeping ----------------------------------------------------------------------

class InstantExecutor:
    """Finishes every task as soon as it starts, with no run folder: only the bookkeeping costs."""

    name, capacity = "instant", 1

    def __init__(self):
        self._done: list[dict[str, Any]] = []

    def running(self) -> int:
        return len(self._done)

    def start(self, task):
        self._done.append(task)

    def wait(self, timeout):
        done, self._done = self._done, []
        return [(t, [{"index": i, "run_dir": None, "status": "completed", "exit_code": 0,
                      "error": None} for i in t["entries"]]) for t in done]

    def interrupt(self):
        pass

    def kill(self):
        pass

    def close(self):
        pass

    def log_path(self, task):
        return None


class CountingWrites:
    """Counts the bytes ce-lab writes to batch.json and its event log while installed."""

    def __init__(self):
        import ce_lab.batches.store as store
        import ce_lab.safe_io as safe_io

        self.bytes = 0
        self._patches = []
        real_atomic, real_write = safe_io.atomic_write_bytes, os.write

        def atomic(path, data):
            self.bytes += len(data)
            return real_atomic(path, data)

        def write(fd, data):
            self.bytes += len(data)
            return real_write(fd, data)

        self._patches = [(safe_io, "atomic_write_bytes", atomic), (store.os, "write", write)]

    def __enter__(self):
        self._saved = [(mod, name, getattr(mod, name)) for mod, name, _ in self._patches]
        for mod, name, fn in self._patches:
            setattr(mod, name, fn)
        return self

    def __exit__(self, *exc):
        for mod, name, fn in self._saved:
            setattr(mod, name, fn)


def _opened(tmp: Path, n: int):
    from ce_lab.batches.plan import open_batch
    from ce_lab.batches.spec import load_batch

    tmp.mkdir(parents=True, exist_ok=True)
    f = tmp / f"b{n}.yaml"
    f.write_text(json.dumps({"name": f"scale{n}", "base": {"train": {"epochs": 1}},
                             "seeds": list(range(n))}))
    t0 = time.perf_counter()
    batch = load_batch(f, out_dir=tmp / f"out{n}")
    expand_s = time.perf_counter() - t0
    return open_batch(batch, None), expand_s


def bookkeeping(tmp: Path, n: int, old_way: bool = False) -> dict[str, Any]:
    from ce_lab.batches import execute as execute_mod
    from ce_lab.batches.tasks import plan_batch

    opened, expand_s = _opened(tmp / ("old" if old_way else "new"), n)
    plan = plan_batch(opened, workers=1)
    real = execute_mod.record_entries
    if old_way:  # what every start and end cost before: batch.json rewritten whole
        execute_mod.record_entries = lambda d, state, recs: execute_mod.write_state(d, state)
    try:
        with CountingWrites() as counted:
            t0 = time.perf_counter()
            execute_mod.execute(opened, plan, InstantExecutor(), poll_seconds=0)
            seconds = time.perf_counter() - t0
    finally:
        execute_mod.record_entries = real
    return {"entries": n, "seconds": seconds, "bytes_written": counted.bytes,
            "expand_s": expand_s, "per_entry_ms": 1000 * seconds / n}


def bench_batch(tmp: Path, n: int) -> dict[str, Any]:
    bookkeeping(tmp / "warm-up", 10)  # imports, first files: not part of either timing
    small, large = bookkeeping(tmp, n // 10), bookkeeping(tmp, n)
    old = bookkeeping(tmp, n // 10, old_way=True)
    ratio = large["per_entry_ms"] / small["per_entry_ms"]
    result = {"small": small, "large": large, "old_way_small": old, "per_entry_ratio": ratio,
              "target_met": ratio <= LINEAR_SLACK}
    for label, r in (("now", small), ("now", large), ("old way", old)):
        print(f"batch: {label:>7}: {r['entries']:>6,} entries: bookkeeping {r['seconds']:6.2f} s "
              f"({r['per_entry_ms']:.3f} ms an entry), {r['bytes_written'] / 1e6:8.1f} MB "
              f"written (expanding the batch file: {r['expand_s']:.1f} s)", flush=True)
    print(f"batch: time per entry at {n:,} / at {n // 10:,}: {ratio:.2f}x; target <= "
          f"{LINEAR_SLACK}x (linear): {'met' if result['target_met'] else 'MISSED'}", flush=True)
    return result


# --- thresholds -----------------------------------------------------------------------------

def make_threshold_runs(out: Path, t: int) -> list[Path]:
    """Two finished runs (ce, mse) whose summary.json and config.yaml hold ``t`` thresholds."""
    import yaml

    from tests.run_factory import make_run

    thresholds = [round(0.5 + 0.5 * (i + 1) / t, 6) for i in range(t)]
    runs = []
    for loss in ("ce", "mse"):
        run = make_run(out, loss, name=f"20261120-000000-{loss}-{t}")
        summary = json.loads((run / "summary.json").read_text())
        summary["thresholds"] = thresholds
        summary["convergence"] = {f"{x:.2f}": {"step": 100, "examples": 6400, "seconds": 1.0}
                                  for x in thresholds if x <= 0.9}
        (run / "summary.json").write_text(json.dumps(summary, indent=2))
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["log"]["thresholds"] = thresholds
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        runs.append(run)
    return runs


def bench_thresholds(tmp: Path, counts: list[int]) -> dict[str, Any]:
    seconds = {}
    for t in counts:
        runs = make_threshold_runs(tmp / f"thr{t}", t)
        seconds[t] = min(_cli("compare", *map(str, runs), "--no-plots",
                              "--out-dir", str(tmp / f"cmp{t}")) for _ in range(2))
        print(f"thresholds: compare of 2 runs with {t:,} thresholds: {seconds[t]:.2f} s",
              flush=True)
    lo, hi = min(counts), max(counts)
    growth = seconds[hi] / seconds[lo]
    allowed = LINEAR_SLACK * hi / lo
    result = {"seconds": seconds, "growth": growth, "allowed": allowed,
              "target_met": growth <= allowed}
    print(f"thresholds: {hi:,} / {lo:,} thresholds: {growth:.1f}x the time ({hi / lo:.0f}x the "
          f"thresholds); target <= {allowed:.0f}x (linear; quadratic would be "
          f"{(hi / lo) ** 2:.0f}x): {'met' if result['target_met'] else 'MISSED'}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--thresholds", default="500,4000")
    parser.add_argument("--only", choices=("runs", "batch", "thresholds"), action="append")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    only = set(args.only or ("runs", "batch", "thresholds"))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average at start "
          f"{load_average()}", flush=True)
    results: dict[str, Any] = {"cpu": cpu_model(), "load_start": load_average()}
    with tempfile.TemporaryDirectory(prefix="ce-lab-bench-scale-") as tmp:
        if "runs" in only:
            results["runs"] = bench_runs(Path(tmp), args.runs)
        if "batch" in only:
            results["batch"] = bench_batch(Path(tmp), args.batch)
        if "thresholds" in only:
            results["thresholds"] = bench_thresholds(
                Path(tmp), [int(x) for x in args.thresholds.split(",")])
    results["load_end"] = load_average()
    print(f"load average at end {results['load_end']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(r.get("target_met", True) for r in results.values()
                    if isinstance(r, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
