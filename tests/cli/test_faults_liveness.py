"""Crashed and live runs met by the commands: compare skips a crashed run saying how to continue
it, resume is refused while a live process owns the run, a batch never starts an entry a live
process owns; and a ``ce-lab train`` killed with kill -9 before its first epoch end still resumes
to the same metric files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ce_lab.batches.plan import open_batch
from ce_lab.batches.store import read_state, run_path, write_state
from ce_lab.cli.app import app
from ce_lab.config import to_yaml, with_overrides
from ce_lab.runs.liveness import process_start
from ce_lab.training import resume, train
from tests.helpers import (
    FakeExecutor,
    InterruptAt,
    batch_with_two_runs,
    dead_pid,
    rows,
    run_fake,
    runner,
    set_meta,
    without_wall,
)
from tests.run_factory import make_run

# --- compare, train --resume and the batch see a crashed run as crashed -------------------------

def test_compare_skips_a_crashed_run_saying_how_to_continue_it(tmp_path):
    out = tmp_path / "runs"
    good = make_run(out, "ce")
    with_ckpt = make_run(out, "mse")
    set_meta(with_ckpt, status="running", pid=dead_pid(), host=socket.gethostname())
    (with_ckpt / "checkpoint.pt").write_bytes(b"x")
    without = make_run(out, "hinge")
    set_meta(without, status="running", pid=dead_pid(), host=socket.gethostname())
    live = make_run(out, "bce")
    set_meta(live, status="running", pid=os.getpid(), host=socket.gethostname())
    result = runner.invoke(app, ["compare", str(good), str(with_ckpt), str(without), str(live),
                                 "--no-plots", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith("skipped:")]
    assert len(lines) == 3
    assert "crashed" in lines[0] and f"ce-lab train --resume {with_ckpt}" in lines[0]
    assert "crashed before its first checkpoint" in lines[1]
    assert f"ce-lab train --config {without / 'config.yaml'}" in lines[1]
    assert "still training" in lines[2] and f"pid {os.getpid()}" in lines[2]


def test_resume_is_refused_while_a_live_process_owns_the_run(cfg, data):
    cut = train(cfg, data=data, reporter=InterruptAt(10))
    before = set_meta(cut.run_dir, status="running", pid=os.getpid(),
                      host=socket.gethostname(), pid_start=process_start(os.getpid()))
    result = runner.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 2, result.output
    assert "still being trained" in result.stderr and len(result.stderr.splitlines()) == 1
    assert json.loads((cut.run_dir / "meta.json").read_text()) == before  # untouched
    # Once its owner is gone the run reads as crashed, and resumes.
    set_meta(cut.run_dir, pid=dead_pid())
    assert resume(cut.run_dir, data=data).status == "completed"


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_how_to_start_again(cfg, data):
    cut = train(with_overrides(cfg, {"log.checkpoint": False}), data=data)
    (cut.run_dir / "checkpoint.pt").unlink(missing_ok=True)
    set_meta(cut.run_dir, status="running", pid=dead_pid(), host=socket.gethostname())
    result = runner.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "killed before its first checkpoint" in line
    assert f"ce-lab train --config {cut.run_dir / 'config.yaml'}" in " ".join(line.split())


# --- the batch -----------------------------------------------------------------------------------

def test_a_batch_never_starts_an_entry_a_live_process_still_owns(tmp_path):
    runs, batch, opened, state = batch_with_two_runs(tmp_path)
    rec = state.entries[0]
    path = run_path(opened.batch_dir, rec.run_dir)
    set_meta(path, status="running", pid=os.getpid(), host=socket.gethostname(),
             pid_start=process_start(os.getpid()))  # an orphan of a killed batch, still going
    (path / "summary.json").unlink()
    (path / "checkpoint.pt").write_bytes(b"fake")
    rec.status, rec.run_dir = "running", None  # the batch died before hearing of its folder
    write_state(opened.batch_dir, state)

    result = runner.invoke(app, ["batch", str(tmp_path / "b.yaml"), "--out-dir", str(runs),
                                 "--no-plots"])
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    said = [x for x in result.stderr.splitlines() if x.startswith("entry 0: skipped")]
    assert len(said) == 1 and "still being trained" in said[0] and path.name in said[0]
    state = read_state(opened.batch_dir)
    assert state.entries[0].attempts == 1  # not started again
    assert run_path(opened.batch_dir, state.entries[0].run_dir).resolve() == path.resolve()
    # Two completed runs for one entry never arise: when the orphan ends, its run is adopted.
    set_meta(path, status="completed")
    (path / "summary.json").write_text(json.dumps({"status": "completed"}))
    again = FakeExecutor(runs)
    run_fake(open_batch(batch, opened.batch_dir), again)
    assert again.started == []
    assert [e.status for e in read_state(opened.batch_dir).entries] == ["completed"] * 4


def test_compare_refuses_two_runs_with_the_same_seed_in_one_cell(tmp_path):
    out = tmp_path / "runs"
    a, b = make_run(out, "ce", seed=0), make_run(out, "ce", seed=0)
    c = make_run(out, "mse", seed=0)
    result = runner.invoke(app, ["compare", str(a), str(b), str(c), "--no-plots"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "same loss (ce)" in line and "seed (0)" in line
    assert not list(out.glob("compare-*"))  # refused before a folder was made


# --- kill -9 before the first epoch end ---------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_before_the_first_epoch_end_resumes_to_the_same_metric_files(cfg, data, tmp_path):
    cfg = with_overrides(cfg, {"train.batch_size": 2, "train.epochs": 1, "log.log_every": 5,
                               "log.eval_every": 20, "optim.momentum": 0.9})
    steps_per_epoch = (1200 - 200) // 2  # the tiny set's training images, two a step
    config = tmp_path / "kill.yaml"
    config.write_text(to_yaml(with_overrides(cfg, {"out_dir": str(tmp_path / "killed")})))
    proc = subprocess.Popen([sys.executable, "-m", "ce_lab", "train", "--config", str(config)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, ckpt = time.time() + 60, None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/checkpoint.pt"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.005)
    assert ckpt is not None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_dir = ckpt.parent
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < steps_per_epoch  # written long before the first epoch end
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "running"

    result = runner.invoke(app, ["compare", str(run_dir), "--no-plots"])
    assert "crashed" in result.stderr and "--resume" in result.stderr
    done = resume(run_dir, data=data)
    assert done.status == "completed"
    full = train(cfg, data=data)
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall(rows(run_dir / name)) == without_wall(rows(full.run_dir / name))


def _wait(predicate, timeout: float = 60.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _meta_pid(run_dir: Path):
    try:
        return json.loads((run_dir / "meta.json").read_text()).get("pid")
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_two_resumes_of_one_crashed_run_never_both_train_it(cfg, data, tmp_path):
    from ce_lab.runs.lock import RunLock, RunLocked
    from ce_lab.runs.names import LOCK

    cfg = with_overrides(cfg, {"train.batch_size": 1, "train.epochs": 3, "log.log_every": 2,
                               "log.eval_every": 40})
    config = tmp_path / "long.yaml"
    config.write_text(to_yaml(with_overrides(cfg, {"out_dir": str(tmp_path / "runs")})))
    cli = [sys.executable, "-m", "ce_lab", "train"]
    # A run killed outright: its .lock stays behind, stale (the kernel dropped its flock).
    proc = subprocess.Popen([*cli, "--config", str(config)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert _wait(lambda: list((tmp_path / "runs").glob("*/checkpoint.pt")), proc=proc), \
        proc.communicate()
    run_dir = next((tmp_path / "runs").glob("*/checkpoint.pt")).parent
    assert (run_dir / LOCK).exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # The first resume takes the stale lock over and trains; held mid-training.
    first = subprocess.Popen([*cli, "--resume", str(run_dir)], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait(lambda: _meta_pid(run_dir) == first.pid, proc=first), first.communicate()
        # The second saw the run crashed before the first wrote meta.json (the race): the lock
        # alone refuses it, naming the first.
        with pytest.raises(RunLocked, match=rf"locked by .*pid {first.pid} "):
            RunLock.acquire(run_dir)
        set_meta(run_dir, status="running", pid=dead_pid())
        result = runner.invoke(app, ["train", "--resume", str(run_dir)])
        assert "Traceback" not in result.output
        assert result.exit_code == 2, result.output
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and f"pid {first.pid} " in lines[0], result.stderr
        assert first.poll() is None  # the first goes on training
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert not (run_dir / LOCK).exists()  # removed as the run ended (interrupted)
    done = resume(run_dir, data=data)
    assert done.status == "completed"
    assert not (run_dir / LOCK).exists()  # and as it completed
