"""ce-lab batch with real (tiny) training in worker processes: parallel jobs, fused entries, a
failing entry, rerunning, and Ctrl-C (SIGINT to a real `ce-lab batch` process) then resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ce_lab.batches.spec import config_hash
from ce_lab.batches.store import read_state, run_path
from ce_lab.cli.app import app
from ce_lab.config import load_config
from tests.helpers import (
    child_pids,
    dry_run_stacks,
    only_batch_dir,
    runner,
    tiny_base,
    trained_stacks,
    wait_for,
    write_batch,
)
from tests.mnist_fixture import write_tiny_mnist


def test_parallel_jobs_train_fused_entries_into_distinct_folders_and_compare(tiny_mnist, tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "par", "base": tiny_base(tiny_mnist),
        "grid": {"loss.name": ["ce", "mse"]}, "seeds": [0, 1]})
    result = runner.invoke(app, ["batch", str(f), "--jobs", "2", "--no-plots"])
    assert result.exit_code == 0, result.output
    batch_dir = only_batch_dir(Path("runs"))
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 4
    dirs = [run_path(batch_dir, e.run_dir).resolve() for e in state.entries]
    assert len(set(dirs)) == 4 and all(d.parent == Path("runs").resolve() for d in dirs)
    for rec, d in zip(state.entries, dirs):
        meta = json.loads((d / "meta.json").read_text())
        assert meta["group"] == state.batch_id and meta["status"] == "completed"
        assert config_hash(load_config(d / "config.yaml")) == rec.config_hash
        assert (d / "summary.json").is_file()
    # Same seed, other loss: trained fused with each other.
    meta0 = json.loads((dirs[0] / "meta.json").read_text())  # ce, seed 0
    assert meta0["fused_with"] == [dirs[2].name]  # mse, seed 0
    # Two workers, the two cores divided between them: the thread policy decides within a share.
    tasks = [json.loads(p.read_text()) for p in (batch_dir / "logs").glob("*.task.json")]
    assert len(tasks) == 2
    assert {t["threads"] for t in tasks} == {None}
    assert {t["share"] for t in tasks} == {max(1, len(os.sched_getaffinity(0)) // 2)}
    assert (batch_dir / "batch.yaml").read_text() == f.read_text()
    # The comparison, grouped by loss (seeds aggregated), in the output and the batch folder.
    assert (batch_dir / "report.md").is_file() and (batch_dir / "table.csv").is_file()
    assert "mean ± sample std over seeds" in result.stdout
    assert "4 completed" in result.stdout


def test_the_workers_train_the_stacks_the_dry_run_shows(tiny_mnist, tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "same", "base": tiny_base(tiny_mnist),
        "grid": {"loss.name": ["ce", "mse"]}, "seeds": [0, 1, 2]})  # ce 0-2, then mse 0-2
    args = ["batch", str(f), "--jobs", "2", "--threads", "1", "--no-plots"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # Three stacks of a seed each on two workers: one is split rather than run alone at the end.
    expected = {frozenset({1, 4}), frozenset({2, 5}), frozenset({0}), frozenset({3})}
    assert dry_run_stacks(dry.stdout) == expected
    assert "3 stacks by the fusion rule (at most 32 members), split into 4" in dry.stdout
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    batch_dir = only_batch_dir(Path("runs"))
    assert trained_stacks(batch_dir) == expected
    tasks = [json.loads(p.read_text()) for p in (batch_dir / "logs").glob("*.task.json")]
    assert {frozenset(t["entries"]) for t in tasks} == expected


def test_a_failing_entry_does_not_stop_the_others_and_reruns_next_time(tiny_mnist, tmp_path):
    late = tmp_path / "late-data"  # no MNIST here yet: the entry fails at load time
    f = write_batch(tmp_path / "b.yaml", {
        "name": "fail", "base": tiny_base(tiny_mnist),
        "runs": [{}, {"data.root": str(late), "data.download": False}]})
    result = runner.invoke(app, ["batch", str(f), "--jobs", "2", "--no-plots"])
    assert result.exit_code == 1, result.output
    batch_dir = only_batch_dir(Path("runs"))
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed", "failed"]
    assert state.entries[1].error and "failed" in result.stdout
    assert state.entries[1].log and (batch_dir / state.entries[1].log).is_file()
    ok_dir = state.entries[0].run_dir
    # Paths as one opens them from here, not as batch.json records them (../RUN, logs/...).
    assert ok_dir.startswith("../") and "../" not in result.output
    done = [line for line in result.stderr.splitlines() if "completed #0 (base)" in line]
    assert len(done) == 1 and done[0].endswith(f" {Path('runs') / Path(ok_dir).name}")
    assert f"; log {batch_dir / state.entries[1].log}" in result.stdout

    write_tiny_mnist(late)  # fix the cause; running the same file again redoes only the failure
    result = runner.invoke(app, ["batch", str(f), "--jobs", "2", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert only_batch_dir(Path("runs")) == batch_dir
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed", "completed"]
    assert state.entries[0].run_dir == ok_dir and state.entries[0].attempts == 1
    assert state.entries[1].attempts == 2
    assert "1 started now, 1 already done" in result.stdout


def _workers(pid: int) -> list[int]:
    """Process ids of the batch workers whose parent is ``pid`` (Linux /proc)."""
    out = []
    for child in child_pids(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ce_lab.batches.worker" in cmdline:
            out.append(child)
    return out


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _sigint_pending(pid: int) -> bool:
    status = _proc_status(pid)
    bit = 1 << (signal.SIGINT - 1)
    return any(int(status[key], 16) & bit for key in ("ShdPnd", "SigPnd"))


EPOCHS = 20  # the entry that gets interrupted: frozen (SIGSTOP) from its first logged row on


STEPS_PER_EPOCH = 63  # ceil((1200 - 200 validation) / 16)


def test_sigint_interrupts_and_a_rerun_finishes_only_what_was_left(tiny_mnist, tmp_path, cli):
    # Deterministic on a busy machine: once the long entry has logged its first row (it is inside
    # the training loop, which owns Ctrl-C), its worker is stopped (SIGSTOP), so it cannot finish
    # whatever the scheduler does; the batch gets SIGINT, and only once the batch's forwarded
    # SIGINT is pending in the stopped worker does the worker continue (SIGCONT) and handle it.
    out = tmp_path / "out"
    f = write_batch(tmp_path / "b.yaml", {
        "name": "int",
        "base": tiny_base(tiny_mnist, batch_size=16,
                          log={"grad_stats": False, "log_every": 20, "eval_every": 10_000}),
        # entry 0 is quick; entry 1 is caught mid-run; entry 2 waits.
        "runs": [{"train.epochs": 1}, {"train.epochs": EPOCHS}, {"train.epochs": 2}]})
    proc = subprocess.Popen(
        # One thread: small models train fastest that way, above all on a busy machine.
        [sys.executable, "-m", "ce_lab", "batch", str(f), "--jobs", "1", "--threads", "1",
         "--no-plots", "--out-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        def long_run_logging():
            assert proc.poll() is None, proc.communicate()
            for metrics in out.glob("*/metrics.csv"):
                d = metrics.parent
                if d.name.startswith("batch-") or f"epochs: {EPOCHS}\n" not in (
                        d / "config.yaml").read_text():
                    continue
                if metrics.read_text().count("\n") >= 2:  # the header and a first row
                    return d
            return None

        long_dir = wait_for(long_run_logging, timeout=60.0, every=0.01)
        (worker,) = _workers(proc.pid)
        os.kill(worker, signal.SIGSTOP)
        wait_for(lambda: _proc_status(worker)["State"].startswith("T"), timeout=60.0, every=0.01)
        assert json.loads((long_dir / "meta.json").read_text())["status"] == "running"
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: _sigint_pending(worker), timeout=60.0, every=0.01)  # the batch forwarded it
        os.kill(worker, signal.SIGCONT)
        worker = None
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if worker is not None:
            os.kill(worker, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stdout  # the summary's counts: a result
    assert "interrupted: run the batch file again" in stderr  # what to do next: a note
    batch_dir = only_batch_dir(out)
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed", "interrupted", "pending"]
    assert run_path(batch_dir, state.entries[1].run_dir).resolve() == long_dir.resolve()
    assert json.loads((long_dir / "meta.json").read_text())["status"] == "interrupted"
    first_dir = state.entries[0].run_dir
    stopped_at = json.loads((long_dir / "summary.json").read_text())["steps"]
    assert 0 < stopped_at < EPOCHS * STEPS_PER_EPOCH
    assert (long_dir / "checkpoint.pt").is_file()  # written on Ctrl-C

    result = cli.invoke(app, ["batch", str(f), "--threads", "1", "--no-plots",
                              "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 3
    assert state.entries[0].run_dir == first_dir  # completed: skipped
    meta = json.loads((long_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["resumed"]  # resumed in its own folder
    assert json.loads((long_dir / "summary.json").read_text())["steps"] == EPOCHS * STEPS_PER_EPOCH
    runs = [d for d in out.iterdir() if not d.name.startswith("batch-")]
    assert len(runs) == 3  # nothing trained twice
