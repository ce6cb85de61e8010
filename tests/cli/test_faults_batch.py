"""A `kill -9` of a real `ce-lab batch` process leaves no orphan training on: its workers stop and
the run checkpoints. The worker's own watchdog: tests/test_faults_batch.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import child_pids, proc_stat, wait_for
from tests.mnist_fixture import TINY_VAL_SIZE

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has stopped running


def test_kill_9_of_the_batch_stops_its_workers_and_the_run_checkpoints(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    batch_file = tmp_path / "b.yaml"
    batch_file.write_text(yaml.safe_dump({
        "name": "orphans",
        "base": {"device": "cpu",
                 "data": {"root": str(tiny_mnist), "verify_md5": False,
                          "val_size": TINY_VAL_SIZE},
                 "model": {"hidden": [16]},
                 "train": {"epochs": 400, "batch_size": 16},  # far longer than the test waits
                 "log": {"grad_stats": False, "log_every": 10, "eval_every": 10_000,
                         "checkpoint": False}},
        "seeds": [0, 1]}), encoding="utf-8")
    batch = subprocess.Popen(
        [sys.executable, "-m", "ce_lab", "batch", str(batch_file), "--jobs", "2", "--threads", "1",
         "--no-plots", "--out-dir", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        def training():
            metrics = [p for p in out.glob("*/metrics.csv") if p.read_text().count("\n") > 2]
            return metrics if len(metrics) == 2 else None

        runs = [p.parent for p in wait_for(training)]
        workers = child_pids(batch.pid)
        assert len(workers) == 2, workers
        batch.send_signal(signal.SIGKILL)
        batch.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "workers outlived the batch"
    finally:
        if batch.poll() is None:
            batch.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    for run in runs:  # each worker stopped the way SIGTERM stops it
        assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
        assert (run / "checkpoint.pt").is_file()
