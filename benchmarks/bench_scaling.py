"""Benchmark: how a fused stack's training step scales with its number of members K.

For K = 1, 4, 16, 64, 256, 1024 (--members), a stack of K members of ce-lab's default model
(784-256-10 ReLU MLP, batch 64, SGD, the ce loss, learning rates log-spaced over [0.01, 0.3]) runs
--steps training steps as the training loop runs them between two read-backs: the batch indexed on
the device, ``Stack.step`` (forward, the loss gradient, backward, the gradient norms, the update)
and the divergence watch's record; no logged, evaluated or checkpointed step, no files. The data
are random tensors of MNIST's shapes on the device (the timing depends only on the shapes): no
MNIST needed. Timed after --warmup untimed steps, with the device synchronised before and after.

Reported per K:
  member-epochs/s  K x steps/s / 860 (an epoch of 55,000 images is 860 batches of 64)
  vs K lone runs   the stack's throughput over K = 1's: how much faster than the same K runs one
                   after another (K = 1 repeated)
  floor fraction   the memory-bandwidth floor of a step over its measured time (1 = at the floor)

The memory-bandwidth floor (what a step must move, at the device's bandwidth). Per member the
model has P = 784*256 + 256 + 256*10 + 10 = 203,530 float32 parameters. A step of the unfused
algorithm ce-lab runs must at least
  read the weights in the forward pass                      P floats
  write the weight gradients in the backward pass           P
  read the gradients for the gradient norms                 P
  read weights and gradients and write the weights (SGD)   3P
that is 6P floats = 24 P bytes = 4.885 MB per member per step (activations, 64 x 266 floats per
member and pass, and the batch, shared, are below 10% of it and left out: the floor is a lower
bound). Floor time of a step = 24 P K / bandwidth; floor fraction = floor time / measured time.
The bandwidth is measured on the device (a copy of a 1 GiB buffer on a GPU, 256 MiB on a CPU, bytes
read plus written over the time; the best of 5), not taken from a data sheet.

Targets (printed against, on a GPU): K = 64 at least 20x the throughput of 64 lone runs; the time
per member at K = 1024 within 3x of the floor (floor fraction >= 0.33).

Usage:  python benchmarks/bench_scaling.py [--device cuda] [--members 1,4,16,64,256,1024]
            [--steps 200] [--warmup 20] [--threads N] [--out FILE.json]
On a CPU, for a smoke run:  python benchmarks/bench_scaling.py --device cpu --members 1,4,16 --steps 20
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from benchutil import hardware, set_threads, write_results

HIDDEN = 256
N_IN, N_OUT, BATCH = 784, 10, 64
STEPS_PER_EPOCH = math.ceil(55_000 / BATCH)  # 860
PARAMS = N_IN * HIDDEN + HIDDEN + HIDDEN * N_OUT + N_OUT  # 203,530 per member
FLOOR_BYTES_PER_MEMBER = 6 * PARAMS * 4  # see the header
TARGET_K64_SPEEDUP, TARGET_K1024_FLOOR = 20.0, 1 / 3


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def bandwidth(device) -> float:
    """Bytes per second a copy moves on ``device`` (read plus written), best of 5."""
    import torch

    n = (1 << 30 if device.type != "cpu" else 1 << 28) // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / best


def time_stack(k: int, steps: int, warmup: int, device) -> float:
    """Seconds per step of a K-member stack (the step as the loop runs it, no read-back)."""
    import torch

    from ce_lab.config import RunConfig, with_overrides
    from ce_lab.training.divergence import DivergenceWatch
    from ce_lab.training.stack import Stack

    base = with_overrides(RunConfig(), {"device": device.type, "model.hidden": [HIDDEN],
                                        "train.batch_size": BATCH})
    lrs = [0.01 * 30 ** (i / max(k - 1, 1)) for i in range(k)]
    cfgs = [with_overrides(base, {"optim.lr": lr}) for lr in lrs]
    stack = Stack(cfgs, device, warmup + steps, N_IN, N_OUT)
    watch = DivergenceWatch(k, ["loss", *stack.watch_names], 10, device)
    gen = torch.Generator().manual_seed(0)
    n = 16 * BATCH
    xs = torch.rand(n, N_IN, generator=gen).to(device)
    ys = torch.randint(0, N_OUT, (n,), generator=gen).to(device)
    order = torch.randperm(n, generator=gen).to(device)

    def run(first: int, count: int) -> None:
        for step in range(first, first + count):
            idx = order[(step % 16) * BATCH : (step % 16 + 1) * BATCH]
            losses, sq_norms, _ = stack.step(xs.index_select(0, idx), ys.index_select(0, idx),
                                             step, False)
            watch.record(step + 1, losses, sq_norms)

    with torch.no_grad():  # as the training loop runs
        run(0, warmup)
        sync(device)
        t0 = time.perf_counter()
        run(warmup, steps)
        sync(device)
        seconds = time.perf_counter() - t0
    return seconds / steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, mps or cpu (default cuda)")
    p.add_argument("--members", default="1,4,16,64,256,1024",
                   help="stack sizes K, comma-separated (default 1,4,16,64,256,1024)")
    p.add_argument("--steps", type=int, default=200, help="timed steps per K (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: ce-lab's thread policy)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    set_threads(args.threads)  # before torch is imported
    import torch

    from ce_lab.device import resolve_device
    from ce_lab.errors import CeLabError

    try:
        device = resolve_device(args.device)
    except CeLabError as e:
        raise SystemExit(f"bench_scaling: {e}") from None
    ks = [int(k) for k in args.members.split(",")]
    hw = hardware()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else hw["cpu"]
    bw = bandwidth(device)
    print(f"device: {device} ({name}); torch {hw['torch']}; measured copy bandwidth "
          f"{bw / 1e9:.0f} GB/s; {args.steps} timed steps per K after {args.warmup}")
    print(f"floor per member-step: {FLOOR_BYTES_PER_MEMBER / 1e6:.3f} MB -> "
          f"{FLOOR_BYTES_PER_MEMBER / bw * 1e6:.2f} us at that bandwidth")
    print(f"{'K':>6} {'ms/step':>9} {'us/member-step':>15} {'member-epochs/s':>16} "
          f"{'vs K lone runs':>15} {'floor fraction':>15}")
    rows = []
    lone = None
    for k in ks:
        try:
            per_step = time_stack(k, args.steps, args.warmup, device)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the stack just timed is gone: its memory back
        except (CeLabError, torch.cuda.OutOfMemoryError) as e:
            print(f"{k:>6}  not run: {' '.join(str(e).split())[:120]}")
            rows.append({"members": k, "error": str(e)})
            continue
        if k == 1:
            lone = per_step
        speedup = lone * k / per_step if lone is not None else None
        floor_s = FLOOR_BYTES_PER_MEMBER * k / bw
        row = {"members": k, "seconds_per_step": per_step,
               "member_epochs_per_s": k / per_step / STEPS_PER_EPOCH,
               "speedup_over_lone_runs": speedup, "floor_seconds_per_step": floor_s,
               "floor_fraction": floor_s / per_step}
        rows.append(row)
        print(f"{k:>6} {per_step * 1e3:>9.3f} {per_step / k * 1e6:>15.2f} "
              f"{row['member_epochs_per_s']:>16.2f} "
              f"{'-' if speedup is None else f'{speedup:.1f}x':>15} {row['floor_fraction']:>15.3f}")
    by_k = {r["members"]: r for r in rows if "error" not in r}
    verdicts = {}
    if 64 in by_k and by_k[64]["speedup_over_lone_runs"] is not None:
        s = by_k[64]["speedup_over_lone_runs"]
        verdicts["k64_speedup_ge_20x"] = s >= TARGET_K64_SPEEDUP
        print(f"K = 64: {s:.1f}x the throughput of 64 lone runs (target >= 20x: "
              f"{'met' if s >= TARGET_K64_SPEEDUP else 'MISSED'})")
    if 1024 in by_k:
        f = by_k[1024]["floor_fraction"]
        verdicts["k1024_within_3x_of_floor"] = f >= TARGET_K1024_FLOOR
        print(f"K = 1024: {1 / f:.2f}x the bandwidth floor per member (target <= 3x: "
              f"{'met' if f >= TARGET_K1024_FLOOR else 'MISSED'})")
    write_results(args.out, {"hardware": hw, "device": str(device), "device_name": name,
                             "bandwidth_bytes_per_s": bw, "steps": args.steps,
                             "warmup": args.warmup, "floor_bytes_per_member_step":
                             FLOOR_BYTES_PER_MEMBER, "rows": rows, "targets": verdicts})
    return 0


if __name__ == "__main__":
    sys.exit(main())
