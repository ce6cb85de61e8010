#!/usr/bin/env bash
# GPU check (one script, under 8 minutes on one GPU): the training, backprop, optimizer, loss and
# fusion tests on CUDA and the test that a training step never synchronises with the GPU
# (tests/test_cuda_sync.py), then bench_fused.py --grid (20 members, one epoch) and a 64-member
# stack (300 steps) on CUDA, fused against the same runs one after another, then the member-scaling
# benchmark (bench_scaling.py: stacks of K = 1, 4, 16, 64, 256, 1024 members, member-epochs per
# second, the speed-up over K lone runs and the fraction of the memory-bandwidth floor; its header
# has the arithmetic). Prints the ratios against their targets; JSON results go to $OUT (or
# benchmarks/out/). Needs MNIST in ce-lab's cache (bench_scaling.py does not); on a machine without
# network, pass a folder holding the four IDX files (plain or .gz) as MNIST_DIR and it is imported
# first.
#
#   bash benchmarks/gpu_check.sh                  # MNIST already cached
#   MNIST_DIR=path/to/idx bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/out}"
mkdir -p "$out"

python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch.cuda.is_available() is False; nothing to check")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY
if [ -n "${MNIST_DIR:-}" ]; then
  ce-lab data import "$MNIST_DIR"
fi
ce-lab data status

start=$(date +%s)
echo "== tests on cuda"
timeout 180 python -m pytest -q -p no:cacheprovider --device cuda \
  tests/test_nn.py tests/test_optim.py tests/test_losses.py tests/test_fusion.py tests/test_train.py \
  tests/test_cuda_sync.py

echo "== bench_fused --grid (4 losses x 5 lr) on cuda"
timeout 200 python benchmarks/bench_fused.py --grid --device cuda --repeats 2 \
  --out "$out/bench_fused_grid_cuda.json" | tail -n 30

echo "== bench_fused --members 64 (4 losses x 16 lr, 300 steps) on cuda"
timeout 150 python benchmarks/bench_fused.py --members 64 --max-steps 300 --device cuda --repeats 1 \
  --out "$out/bench_fused_64_cuda.json" | tail -n 8

echo "== bench_scaling (K = 1 ... 1024 members, 100 steps each) on cuda"
timeout 60 python benchmarks/bench_scaling.py --device cuda --steps 100 \
  --out "$out/bench_scaling_cuda.json"

python - "$out" <<'PY'
import json, sys
from pathlib import Path
for name in ("bench_fused_grid_cuda.json", "bench_fused_64_cuda.json"):
    r = json.loads((Path(sys.argv[1]) / name).read_text())
    print(f"{name}: {len(r['members'])} members, sequential/fused ratio of means "
          f"{r['ratio_sequential_over_fused_mean']:.2f}x, members match: {r['members_match']}")
r = json.loads((Path(sys.argv[1]) / "bench_scaling_cuda.json").read_text())
print(f"bench_scaling_cuda.json: targets {r['targets']}")
PY
echo "gpu_check: done in $(( $(date +%s) - start )) s"
