"""Batch workers die with their batch: the worker's watchdog stops it when its parent is not the one
expected or its batch is gone. The `kill -9` of a real `ce-lab batch`: tests/cli/test_faults_batch.py.

Processes are found and checked through /proc and os.kill(pid, 0) (psutil may not be installed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_watchdog_sends_sigterm_when_the_parent_is_not_the_one_expected(tmp_path):
    """The portable fallback where prctl is missing: the watchdog thread on its own."""
    code = textwrap.dedent("""
        import os, signal, sys, time
        from ce_lab.batches.worker import watch_parent

        def stopped(signum, frame):
            print("stopped by", signal.Signals(signum).name, flush=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, stopped)
        watch_parent(os.getppid() + 1_000_000, interval=0.05)  # a parent this process never had
        time.sleep(30)
        print("still running")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped by SIGTERM"


def test_worker_whose_batch_is_already_gone_stops_at_once(tmp_path):
    env = {**os.environ, "CE_LAB_BATCH_PID": str(os.getpid() + 1_000_000)}
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"task_id": "t0", "kind": "train", "entries": [0],
                                "configs": []}), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "ce_lab.batches.worker", str(task),
                           str(tmp_path / "r.json")], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert not (tmp_path / "r.json").exists()
