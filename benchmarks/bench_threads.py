"""Benchmark: ce-lab's default thread policy (ce_lab/threads.py) against fixed thread counts, on an
idle machine, beside one CPU-bound process and beside a second ce-lab.

Settings, each in its own worker process (libgomp reads its wait policy once, when torch loads):

  default   what every command does now: ce_lab.threads decides (one thread per usable CPU that
            other processes leave free, checked as the stack trains; libgomp's own spinning wait)
  1         --threads 1
  2         --threads 2 (a fixed count: its idle threads sleep, OMP_WAIT_POLICY=PASSIVE)
  2-spin    2 threads with torch's own wait policy (libgomp spins): what ce-lab did first
  N-spinK   N threads spinning GOMP_SPINCOUNT=K times before they sleep (for exploring; not in
            the default set)

Conditions:

  idle      nothing started beside the worker (other users of a shared machine are not stopped:
            the load average is printed)
  cpu-hog   beside one CPU-bound process (a pure-Python busy loop, one CPU), started before the
            round and running throughout
  ce-lab    beside a second ce-lab: two workers of the same setting train at the same moment
            (two people running the same command); the time is the mean of the two

Workloads (--members): 1, a lone ``train`` (ce); 4, the 4-loss ``compare`` stack (ce, mse, hinge,
nll-manual). ce-lab's defaults otherwise (784-256-10, batch 64, SGD lr 0.1), --steps steps (300),
validation at step 200 and at the end, the test pass, logging on, no checkpoints.

Method: the workers load the data and train one short warm-up run first; then every round runs
each setting once, interleaved, each timed inside its worker around the whole
``train``/``train_paired`` call, --pause seconds apart; each round starts one setting later than
the one before (default, 1, 2, 2-spin / 1, 2, 2-spin, default / ...), so that every setting takes
every place in a round equally often (use a multiple of the number of settings as --rounds). A
run slower than --cap seconds is stopped and counted as --cap (a lower bound, marked ">="), and
that setting sits out the rest of the condition. Per condition: mean and min per setting, and
default / best as a ratio of means (target: at most 1.10 in every condition; best is the fastest
setting, the default included).

Data: MNIST from ce-lab's cache if it is there, else a synthetic MNIST of the real size (60,000 +
10,000 images, tests/mnist_fixture.py; timing depends only on the sizes) in a temp folder.

Usage:  python benchmarks/bench_threads.py [--members 1,4] [--rounds 3] [--steps 300]
            [--conditions idle,cpu-hog,ce-lab] [--settings default,1,2,2-spin] [--cap 10]
            [--nice N] [--hog-cpu N] [--out FILE.json]
A full run takes about 3-5 minutes on an idle 2-CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import hardware, load_average, write_results

ROOT = Path(__file__).resolve().parent.parent
LOSSES = ("ce", "mse", "hinge", "nll-manual")
SETTINGS = ("default", "1", "2", "2-spin")
SPIN = re.compile(r"(\d+)-spin(\d*)")  # N threads spinning (libgomp's count, or GOMP_SPINCOUNT)
CONDITIONS = ("idle", "cpu-hog", "ce-lab")
TARGET = 1.10
HOG = "while True: pass"


# --- the worker: one setting, one process ---------------------------------------------------------

def worker(setting: str, members: list[int], steps: int, data_root: str, verify: bool,
           tmp: str) -> None:
    """Load the data and warm up; then for each line read from stdin (a stack size) train once and
    print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from ce_lab import threads

    spin = SPIN.fullmatch(setting)
    if spin:
        if spin[2]:  # libgomp reads its spin count once, when it loads
            os.environ["GOMP_SPINCOUNT"] = spin[2]
        import torch  # first: libgomp starts with torch's own (spinning) wait policy

        policy = f"libgomp spin ({spin[2] or 'default count'})"
        threads.configure(int(spin[1]))
    else:
        threads.configure(None if setting == "default" else int(setting))
        policy = os.environ.get(threads.WAIT_ENV, "")
        import torch

    from ce_lab.config import RunConfig, with_overrides
    from ce_lab.data.loader import load_mnist
    from ce_lab.training import train, train_paired

    out = tempfile.mkdtemp(prefix="runs-", dir=tmp)  # in the parent's temp folder: a stopped
    # worker leaves nothing behind
    base = {"device": "cpu", "out_dir": out, "train.max_steps": steps, "log.checkpoint": False,
            "log.progress": "none", "data.root": data_root, "data.verify_md5": verify,
            "data.download": False}
    cfgs = {m: [with_overrides(RunConfig(), {**base, "loss.name": LOSSES[i % 4]})
                for i in range(m)] for m in members}
    data = load_mnist(cfgs[members[0]][0].data, 0, "cpu")

    def run(cs):
        return train(cs[0], data=data) if len(cs) == 1 else train_paired(cs, data=data)

    for cs in cfgs.values():  # warm-up, untimed
        run([with_overrides(c, {"train.max_steps": 20}) for c in cs])
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            t0 = time.perf_counter()
            run(cfgs[int(line)])
            seconds = time.perf_counter() - t0
            print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(),
                              "wait_policy": policy}),
                  flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


# --- the parent -----------------------------------------------------------------------------------

def niced(nice: int | None) -> list[str]:
    """The command prefix that runs a process (the workers, the CPU hog) at niceness ``nice``."""
    return [] if nice is None else ["nice", "-n", str(nice)]


class Worker:
    def __init__(self, setting: str, args, data_root: str, verify: bool, tmp: str):
        self.ready = False
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                                "MKL_NUM_THREADS", "GOMP_SPINCOUNT")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.setting = setting
        self.proc = subprocess.Popen(
            [*niced(args.nice), sys.executable, __file__, "--worker", setting, "--members", args.members,
             "--steps", str(args.steps), "--data-root", data_root, "--verify", str(int(verify)),
             "--tmp", tmp],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def read(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.setting} ended (exit {self.proc.wait()})")
        return json.loads(line)

    def wait_ready(self) -> None:
        if not self.ready and self.read(600) is None:
            raise SystemExit(f"worker {self.setting} did not get ready in 10 minutes")
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def go(self, members: int) -> None:
        self.proc.stdin.write(f"{members}\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_condition(condition: str, members: int, pool: dict[str, list[Worker]], args,
                  start_worker) -> dict:
    """One condition for one stack size; ``pool`` holds two workers per setting, replaced (before
    the condition starts) where an earlier condition stopped one."""
    per = 2 if condition == "ce-lab" else 1
    for s in args.settings:
        pool[s] = [w if w.alive() else start_worker(s) for w in pool[s]]
    workers = {s: pool[s][:per] for s in args.settings}
    hog = None
    try:
        for ws in pool.values():
            for w in ws:
                w.wait_ready()
        if condition == "cpu-hog":
            pin = [] if args.hog_cpu is None else ["taskset", "-c", str(args.hog_cpu)]
            hog = subprocess.Popen([*pin, *niced(args.nice), sys.executable, "-c", HOG])
            time.sleep(1.0)
        load_start = load_average()
        times: dict[str, list[float]] = {s: [] for s in args.settings}
        capped: dict[str, bool] = {s: False for s in args.settings}
        used: dict[str, set] = {s: set() for s in args.settings}
        for r in range(1, args.rounds + 1):
            parts = []
            # Each round starts one setting later (default, 1, 2 / 1, 2, default / ...): a run's
            # place in the round changed its time by up to 1.7x here, so every setting takes
            # every place in turn.
            shift = (r - 1) % len(args.settings)
            for s in args.settings[shift:] + args.settings[:shift]:
                if capped[s]:
                    continue
                time.sleep(args.pause)  # the last run's writes leave the page cache meanwhile
                for w in workers[s]:
                    w.go(members)
                results = [w.read(args.cap) for w in workers[s]]
                if any(x is None for x in results):
                    for w in workers[s]:
                        w.stop()
                    capped[s] = True
                    times[s].append(args.cap)
                    parts.append(f"{s} >={args.cap:.0f} s (stopped)")
                    continue
                seconds = statistics.fmean(x["seconds"] for x in results)
                times[s].append(seconds)
                used[s].update(x["threads"] for x in results)
                parts.append(f"{s} {seconds:5.2f} s")
            print(f"  {condition:>8} round {r}/{args.rounds}: " + "   ".join(parts), flush=True)
        load_end = load_average()
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    summary = {s: {"mean": statistics.fmean(t), "min": min(t), "all": t, "stopped": capped[s],
                   "threads_used": sorted(used[s])} for s, t in times.items() if t}
    best = min(summary, key=lambda s: summary[s]["mean"])
    out = {"condition": condition, "settings": summary, "best": best,
           "load_average_start": load_start, "load_average_end": load_end}
    if "default" in summary:
        out["default_over_best"] = summary["default"]["mean"] / summary[best]["mean"]
        out["default_over_best_of_minima"] = summary["default"]["min"] / min(
            v["min"] for v in summary.values())
    return out


def print_condition(res: dict) -> None:
    for s, v in res["settings"].items():
        ge = ">=" if v["stopped"] else "  "
        print(f"    {s:>8}: mean {ge}{v['mean']:6.2f} s   min {v['min']:6.2f} s   "
              f"torch threads {v['threads_used'] or '-'}")
    if "default_over_best" in res:
        ratio = res["default_over_best"]
        verdict = "met" if ratio <= TARGET else "MISSED"
        print(f"    default / best ({res['best']}): {ratio:.2f}x (of minima "
              f"{res['default_over_best_of_minima']:.2f}x)   target <= {TARGET:.2f}x: {verdict}")
    print(f"    load average (1/5/15 min) at start {res['load_average_start']}, "
          f"at end {res['load_average_end']}")


def data_source(tmp: Path) -> tuple[str, bool, str]:
    """(data.root, verify md5, description): the cached MNIST, else a synthetic one of its size."""
    from ce_lab.config import RunConfig
    from ce_lab.data.fetch import ensure_mnist
    from ce_lab.data.files import resolve_root
    from ce_lab.errors import DataError

    try:
        root = resolve_root(RunConfig().data.root)
        ensure_mnist(root, download=False, verify_md5=True)
        return str(root), True, f"MNIST from the cache ({root})"
    except DataError:
        sys.path.insert(0, str(ROOT))
        from tests.mnist_fixture import write_tiny_mnist

        write_tiny_mnist(tmp, n_train=60_000, n_test=10_000)
        return str(tmp), False, "synthetic MNIST of the real size (MNIST is not cached here)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", default="1,4", help="stack sizes to time, comma-separated "
                   "(1: a lone train; 4: the 4-loss compare stack; default 1,4)")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds per condition (default 4)")
    p.add_argument("--steps", type=int, default=300, help="steps per timed run (default 300)")
    p.add_argument("--conditions", default=",".join(CONDITIONS),
                   help="comma-separated, of idle, cpu-hog, ce-lab (default all)")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help="comma-separated, of default, N, N-spin, N-spinK (default: default,1,2,2-spin)")
    p.add_argument("--cap", type=float, default=10.0,
                   help="stop a run after this many seconds and count it as that (default 10)")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds between two timed runs (default 0.5)")
    p.add_argument("--nice", type=int, default=None,
                   help="run the workers and the CPU hog at this niceness, e.g. -10 (root) to shield "
                   "the measurement from other users of a shared machine (default: as this process)")
    p.add_argument("--hog-cpu", type=int, default=None,
                   help="pin the CPU-bound process to this CPU (with --nice on a shared machine: the "
                   "scheduler balances niced processes by weight and would otherwise put the hog "
                   "and a worker on one CPU, the other users on the other)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--verify", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.settings = [s for s in args.settings.split(",") if s]
    args.conditions = [c for c in args.conditions.split(",") if c]
    bad = [s for s in args.settings if not re.fullmatch(r"default|\d+|\d+-spin\d*", s)] + [
        c for c in args.conditions if c not in CONDITIONS]
    if bad:
        p.error(f"unknown setting or condition: {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        worker(args.worker, [int(m) for m in args.members.split(",")], args.steps, args.data_root,
               bool(args.verify), args.tmp)
        return 0
    sys.path.insert(0, str(ROOT))
    hw = hardware()
    print(f"CPU: {hw['cpu']} ({hw['usable_cpus']} usable of {hw['logical_cpus']} logical CPUs), "
          f"torch {hw['torch']}, Python {hw['python']}; load average (1/5/15 min) "
          f"{hw['load_average_1_5_15min']}")
    t_start = time.perf_counter()
    results = {"hardware": hw, "steps": args.steps, "rounds": args.rounds, "cap_s": args.cap,
               "nice": args.nice, "hog_cpu": args.hog_cpu, "target": TARGET, "workloads": []}
    with tempfile.TemporaryDirectory(prefix="bench-threads-data-") as tmp:
        data_root, verify, described = data_source(Path(tmp))
        print(f"data: {described}; {args.steps} steps per run, {args.rounds} rounds, settings "
              f"{', '.join(args.settings)}", flush=True)

        def start_worker(setting: str) -> Worker:
            return Worker(setting, args, data_root, verify, tmp)

        pool = {s: [start_worker(s), start_worker(s)] for s in args.settings}
        try:
            for members in (int(m) for m in args.members.split(",")):
                what = "a lone train (ce)" if members == 1 else f"a stack of {members} members"
                print(f"\n== {what}", flush=True)
                entry = {"members": members, "conditions": []}
                for condition in args.conditions:
                    res = run_condition(condition, members, pool, args, start_worker)
                    print_condition(res)
                    entry["conditions"].append(res)
                results["workloads"].append(entry)
        finally:
            for ws in pool.values():
                for w in ws:
                    w.stop()
    ratios = [c["default_over_best"] for w in results["workloads"] for c in w["conditions"]
              if "default_over_best" in c]
    results["worst_default_over_best"] = max(ratios) if ratios else None
    results["wall_s"] = time.perf_counter() - t_start
    if ratios:
        print(f"\nworst default / best: {max(ratios):.2f}x (target <= {TARGET:.2f}x: "
              f"{'met' if max(ratios) <= TARGET else 'MISSED'}); {results['wall_s']:.0f} s in all")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
