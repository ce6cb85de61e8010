"""Benchmark: losses (and learning rates) trained fused in one stacked model vs one after another.

Three settings, all ce-lab's defaults otherwise (784-256-10 ReLU MLP, batch 64, SGD, seed 0, one
epoch or --max-steps N, gradient logging on as by default: log.grad_stats=true, log_every=10):

  default     4 members: ce, mse, hinge, nll-manual at lr 0.1
  --grid      20 members: those 4 losses x lr 0.03, 0.1, 0.3, 1, 3 (configs/sweep-lr.yaml, one seed)
  --members N N members: the 4 losses x N/4 learning rates log-spaced over [0.01, 3] (e.g. 64 on
              a GPU, where a fused stack is what pays off)

  fused       one ``train_paired(cfgs, data=...)`` call: one stack, one forward/backward/update per
              batch for every member, each with its own loss and learning rate
  sequential  the same configs, one ``train(cfg, data=...)`` call after another, in one process

Claim checked: sequential / fused >= 1.4 (ratio of mean wall times), written to --out under
``ratio_sequential_over_fused_mean``. Correctness check: every fused member reproduces its lone
run: the same status and step count and, on the CPU, the metrics.csv ``loss`` column and the final
validation accuracy equal to the bit (on a GPU kernels may choose other reduction orders for other
shapes, so there the loss column is compared within --rtol/--atol and val acc within --acc-tol).

Timed: each whole call (run folders, the loop, validation and test passes, CSV rows, summaries).
Not timed: parsing MNIST (``load_mnist`` once, passed as ``data=``). Checkpoints and the progress
display are off; runs go to a temp dir that is deleted at the end.

Method (as KellerJordan/cifar10-airbench): one untimed warm-up of each, then --repeats rounds
interleaved fused, sequential, fused, sequential, ...; mean, standard deviation, min and max; the
ratio of means (and of minima). Hardware, torch threads and the load average are printed; results
measured on the development machine are in benchmarks/README.md.

Usage:  python benchmarks/bench_fused.py [--grid | --members N] [--device cpu|cuda|mps]
            [--epochs 1] [--max-steps N] [--repeats 3] [--threads N] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
from pathlib import Path

from benchutil import (
    base_config,
    describe_hardware,
    fmt_stats,
    hardware,
    interleaved_rounds,
    set_threads,
    stats,
    timed,
    write_results,
)

LOSSES = ("ce", "mse", "hinge", "nll-manual")
GRID_LRS = (0.03, 0.1, 0.3, 1.0, 3.0)  # configs/sweep-lr.yaml


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop every run after this many steps (default: the whole epoch)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed rounds of fused + sequential (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--grid", action="store_true",
                   help="4 losses x 5 learning rates (the sweep-lr grid), 20 members")
    p.add_argument("--members", type=int, default=None,
                   help="4 losses x members/4 log-spaced learning rates (a multiple of 4)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.add_argument("--rtol", type=float, default=1e-3,
                   help="off the CPU: relative tolerance for the loss column (default 1e-3)")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="off the CPU: absolute tolerance for the loss column (default 1e-5)")
    p.add_argument("--acc-tol", type=float, default=0.002,
                   help="off the CPU: largest difference of final val acc (default 0.002, i.e. "
                        "10 of the 5,000 validation images)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def loss_column(run_dir: Path) -> tuple[list[int], list[float]]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def member_grid(args) -> list[dict]:
    """The members' overrides: the 4 losses, at lr 0.1 or over a grid of learning rates."""
    if args.members is not None:
        if args.members < 4 or args.members % 4:
            raise SystemExit("--members must be a multiple of 4 (4 losses x learning rates)")
        k = args.members // 4
        lrs = [0.01 * (300 ** (i / max(k - 1, 1))) for i in range(k)]
    else:
        lrs = list(GRID_LRS) if args.grid else [0.1]
    return [{"loss.name": n, "optim.lr": lr} for n in LOSSES for lr in lrs]


def label(overrides: dict) -> str:
    return f"{overrides['loss.name']} lr={overrides['optim.lr']:.3g}"


def outcome_record(out) -> dict:
    s = out.summary or {}
    final = s.get("final") or {}
    return {"run_dir": str(out.run_dir), "status": out.status, "steps": s.get("steps"),
            "val_acc": final.get("val_acc"), "loss_rows": loss_column(out.run_dir)}


def run_fused(cfgs, data) -> list[dict]:
    from ce_lab.runs.read import read_meta
    from ce_lab.training import train_paired

    outs = train_paired(cfgs, data=data, max_members=len(cfgs))
    for o in outs:  # make sure the members really shared one model
        if not read_meta(o.run_dir).get("fused_with"):
            raise SystemExit(f"{o.run_dir}: not fused (meta.json fused_with is empty)")
    return [outcome_record(o) for o in outs]


def run_sequential(cfgs, data) -> list[dict]:
    from ce_lab.training import train

    return [outcome_record(train(c, data=data)) for c in cfgs]


def same_value(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def compare(fused: list[dict], seq: list[dict], labels: list[str], args) -> tuple[bool, list[dict]]:
    """Per member: does the fused member reproduce its lone run?"""
    exact = args.device == "cpu"
    ok_all = True
    rows = []
    for name, f, s in zip(labels, fused, seq):
        f_steps, f_loss = f["loss_rows"]
        s_steps, s_loss = s["loss_rows"]
        same_rows = f_steps == s_steps
        if exact:  # bit for bit, NaN where NaN
            close = same_rows and all(a == b or (math.isnan(a) and math.isnan(b))
                                      for a, b in zip(f_loss, s_loss))
        else:
            close = same_rows and all(same_value(a, b, args.rtol, args.atol)
                                      for a, b in zip(f_loss, s_loss))
        finite = [(a, b) for a, b in zip(f_loss, s_loss) if math.isfinite(a) and math.isfinite(b)]
        max_abs = max((abs(a - b) for a, b in finite), default=0.0)
        max_rel = max((abs(a - b) / max(abs(b), 1e-12) for a, b in finite), default=0.0)
        fa, sa = f["val_acc"], s["val_acc"]
        acc_ok = (fa == sa) if exact else ((fa is None and sa is None) or (
            fa is not None and sa is not None and abs(fa - sa) <= args.acc_tol))
        ok = f["status"] == s["status"] and f["steps"] == s["steps"] and close and acc_ok
        ok_all &= ok
        rows.append({"member": name, "ok": ok, "status": [f["status"], s["status"]],
                     "steps": [f["steps"], s["steps"]], "val_acc": [fa, sa],
                     "loss_rows": len(f_loss), "same_logged_steps": same_rows,
                     "loss_column_equal" if exact else "loss_column_close": close,
                     "max_abs_diff": max_abs, "max_rel_diff": max_rel})
    return ok_all, rows


def fmt_acc(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    from ce_lab.data.loader import load_mnist
    from ce_lab.training import fusable

    tmp = tempfile.TemporaryDirectory(prefix="ce-lab-bench-")
    out_dir = Path(tmp.name)
    grid = member_grid(args)
    labels = [label(o) for o in grid]
    cfgs = [base_config(out_dir, args.epochs, args.max_steps, {**o, "device": args.device})
            for o in grid]
    if not fusable(cfgs):
        raise SystemExit("the configs cannot share a stack; nothing to benchmark")
    load_s, data = timed(lambda: load_mnist(cfgs[0].data, cfgs[0].seed, args.device))

    hw_start = hardware()
    lrs = sorted({o["optim.lr"] for o in grid})
    print(f"bench_fused: {len(cfgs)} members ({', '.join(LOSSES)} x lr "
          f"{', '.join(f'{lr:.3g}' for lr in lrs)}) fused (train_paired) vs sequential "
          f"({len(cfgs)} x train); 784-256-10 / batch 64 / SGD / {args.device} / grad logging on")
    print(describe_hardware(hw_start))
    print(f"{data.n_train:,} training images; epochs={args.epochs}"
          + (f", max_steps={args.max_steps}" if args.max_steps else "")
          + f"; MNIST parse ({load_s:.2f} s) excluded from timings")
    print(f"warm-up: one untimed run of each; then {args.repeats} timed rounds interleaved "
          f"fused, sequential")

    methods = {"fused": lambda: run_fused(cfgs, data), "sequential": lambda: run_sequential(cfgs, data)}
    times, results = interleaved_rounds(methods, args.repeats)
    hw_end = hardware()
    tmp.cleanup()

    st = {k: stats(v) for k, v in times.items()}
    speedup = st["sequential"]["mean"] / st["fused"]["mean"]
    speedup_min = st["sequential"]["min"] / st["fused"]["min"]
    ok_speed = speedup >= 1.4
    print()
    for key in methods:
        print(f"{key:11s} {fmt_stats(st[key])}")
    print()
    print(f"sequential / fused, ratio of means: {speedup:.2f}x   (of minima {speedup_min:.2f}x)   "
          f"target >= 1.4x: {'MET' if ok_speed else 'MISSED'}")

    # Every round trains the same seed, so any round will do; check them all.
    checks = [compare(f, s, labels, args)
              for f, s in zip(results["fused"], results["sequential"])]
    ok_match = all(ok for ok, _ in checks)
    how = ("loss column and val acc equal to the bit" if args.device == "cpu" else
           f"val acc within {args.acc_tol}, loss column within rtol {args.rtol:g} / atol "
           f"{args.atol:g}")
    print(f"fused members match sequential runs ({how}, every round): "
          f"{'YES' if ok_match else 'NO'}")
    for r in checks[0][1]:
        fa, sa = r["val_acc"]
        print(f"  {r['member']:18s} {r['status'][0]:>9s}/{r['status'][1]:<9s} steps {r['steps'][0]}/"
              f"{r['steps'][1]}  val acc fused {fmt_acc(fa)} seq {fmt_acc(sa)}  loss rows "
              f"{r['loss_rows']}: max |diff| {r['max_abs_diff']:.2e}, max rel "
              f"{r['max_rel_diff']:.2e}  {'ok' if r['ok'] else 'MISMATCH'}")
    print(f"load average at end (1/5/15 min): {hw_end['load_average_1_5_15min']}")
    if args.max_steps is not None:
        print("note: --max-steps run; the targets are stated for whole epochs")

    for recs in (*results["fused"], *results["sequential"]):
        for rec in recs:
            rec.pop("loss_rows")  # long; the comparison keeps the differences
    write_results(args.out, {
        "benchmark": "bench_fused",
        "argv": sys.argv,
        "hardware_start": hw_start,
        "hardware_end": hw_end,
        "members": labels,
        "device": args.device,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "repeats": args.repeats,
        "mnist_parse_seconds_excluded": load_s,
        "seconds": st,
        "ratio_sequential_over_fused_mean": speedup,
        "ratio_sequential_over_fused_min": speedup_min,
        "target_ge_1.4x": ok_speed,
        "members_match": ok_match,
        "comparison_per_round": [rows for _, rows in checks],
        "runs": results,
    })
    return 0 if ok_match else 1


if __name__ == "__main__":
    sys.exit(main())
