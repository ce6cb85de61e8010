"""Reliability, round 3 (issue 20), through the CLI with real processes: a batch worker killed
with kill -9 (§8), two batches of one file started together (§9), a CSV cell over the csv
module's field limit on --resume (§10), and Ctrl-C reaching a batch started in the background
by a script (§12)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ce_lab.batches.store import read_state
from ce_lab.cli.app import app
from ce_lab.config import resolve_config
from ce_lab.data.loader import load_mnist
from ce_lab.training import train
from tests.helpers import (
    InterruptAt,
    nested,
    runner,
    tiny_sets,
    tiny_settings,
    wait_for,
    write_batch,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or os.name != "posix",
                                reason="needs /proc and POSIX signals")

CE_LAB = [sys.executable, "-m", "ce_lab"]


def _base(root: Path, epochs: int) -> dict:
    """A batch base on the tiny MNIST: small steps, an early checkpoint (the first evaluation)."""
    settings = tiny_settings(root, {"model.hidden": [16], "train.epochs": epochs,
                                    "train.batch_size": 16, "log.log_every": 10,
                                    "log.eval_every": 10, "log.checkpoint": True})
    return nested(settings)


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(("batch-",
                                                                                    "compare-")))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


# --- §8: a killed worker -------------------------------------------------------------------------


def test_a_worker_killed_with_kill_9_is_resumed_by_the_rerun_not_trained_twice(tiny_mnist,
                                                                              tmp_path):
    out = tmp_path / "out"
    f = write_batch(tmp_path / "b.yaml", {"name": "killed", "base": _base(tiny_mnist, 30),
                                          "seeds": [0]})
    args = [*CE_LAB, "batch", str(f), "--out-dir", str(out), "--no-plots", "--threads", "1"]
    batch = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ckpt = wait_for(lambda: next(out.glob("*/checkpoint.pt"), None), what="a checkpoint")
        run = ckpt.parent
        # Recorded before training: the batch knows the entry's folder while the worker trains.
        batch_dir = next(out.glob("batch-*"))
        # batch.json and its event log (ce_lab.batches.store), as the batch itself reads them.
        entry = wait_for(lambda: (e := read_state(batch_dir).entries[0]).run_dir and e,
                         what="the run folder in batch.json")
        assert entry.run_dir == f"../{run.name}"
        worker = json.loads((run / "meta.json").read_text())["pid"]
        os.kill(worker, signal.SIGKILL)
        _, err = batch.communicate(timeout=120)
    finally:
        _stop(batch)
    assert batch.returncode == 1, err
    entry = read_state(batch_dir).entries[0]
    assert entry.status == "failed" and "exit -9" in entry.error
    assert entry.run_dir == f"../{run.name}"  # the crashed run, not a lost one

    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1 resume" in again.stdout
    assert _run_dirs(out) == [run]  # one run for the one entry
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed" and len(meta["resumed"]) == 1
    group = subprocess.run([*CE_LAB, "compare", "--group", batch_dir.name, "--out-dir", str(out),
                            "--no-plots", "--format", "csv"], capture_output=True, text=True,
                           timeout=120)
    assert group.returncode == 0, group.stderr
    assert "skipped" not in group.stderr and group.stdout.count("\n") == 2


# --- §9: two batches of one file at once ---------------------------------------------------------

# `ce-lab ARGS...` once the file argv[1] exists, its modules imported before: two of these start
# looking for the batch's folder within a millisecond of each other.
AT_ONCE = """
import os, pathlib, sys, time
import ce_lab.batches.plan, ce_lab.batches.spec, ce_lab.cli.app, ce_lab.lab.batch
from ce_lab.cli import main
go = pathlib.Path(sys.argv[1])
pathlib.Path(os.environ["READY"]).touch()
while not go.exists():
    time.sleep(0.001)
sys.argv = ["ce-lab", *sys.argv[2:]]
main()
"""


def test_two_batches_of_one_file_started_together_train_it_once(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    f = write_batch(tmp_path / "b.yaml", {"name": "twice", "base": _base(tiny_mnist, 400),
                                          "seeds": [0, 1]})
    go = tmp_path / "go"
    args = [sys.executable, "-c", AT_ONCE, str(go), "batch", str(f), "--out-dir", str(out),
            "--no-plots", "--threads", "1", "--jobs", "2"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "READY": str(tmp_path / f"ready-{n}")})
             for n in range(2)]
    try:
        wait_for(lambda: all((tmp_path / f"ready-{n}").exists() for n in range(2)),
                 what="both processes to be ready")
        go.touch()  # both look for the batch's folder at the same moment
        ended = wait_for(lambda: [p for p in procs if p.poll() is not None], what="a refusal")
        assert len(ended) == 1, [p.communicate() for p in ended]
        refused, running = ended[0], next(p for p in procs if p is not ended[0])
        err = refused.stderr.read()
        batch_dirs = list(out.glob("batch-*"))
        assert len(batch_dirs) == 1
        assert refused.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "being run by another ce-lab batch" in lines[0]
        assert batch_dirs[0].name in lines[0]
        assert running.poll() is None  # the first goes on
        wait_for(lambda: len(_run_dirs(out)) == 2, what="both entries training")
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=120)
        assert running.returncode == 130
    finally:
        for p in procs:
            _stop(p)
    assert len(list(out.glob("batch-*"))) == 1
    assert len(_run_dirs(out)) == 2  # two entries, two runs (never four)
    assert not list(out.glob(".batch-*.lock"))  # the claim leaves nothing behind


# --- §10: a CSV cell over the csv module's field limit -------------------------------------------


@pytest.fixture
def interrupted_run(tiny_mnist, tmp_path) -> Path:
    cfg = resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path / 'cut'}"))
    cut = train(cfg, data=load_mnist(cfg.data, cfg.seed, "cpu"), reporter=InterruptAt(25))
    assert cut.status == "interrupted"
    return cut.run_dir


@pytest.mark.parametrize("name", ["metrics.csv", "eval.csv"])
def test_resume_of_a_csv_with_a_cell_over_the_field_limit_is_one_line(interrupted_run, name,
                                                                      tmp_path):
    run = tmp_path / "copy" / interrupted_run.name
    shutil.copytree(interrupted_run, run)
    lines = (run / name).read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "1" * 131_073
    lines[1] = ",".join(cells)
    (run / name).write_text("\n".join(lines) + "\n")
    before = {p: p.read_bytes() for p in (run / "meta.json", run / name)}
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert "Traceback" not in result.output
    # As every other bad CSV cell on --resume (docs/faults.md: 1 for a bad CSV).
    assert result.exit_code == 1, result.output
    line = " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{run}: corrupt run folder ({name}: field larger than field limit" in line
    assert {p: p.read_bytes() for p in before} == before  # refused before the run went on
    assert not (run / ".lock").exists()


# --- §12: Ctrl-C reaches a batch started in the background ---------------------------------------


def _a_background_job_ignores_sigint() -> bool:
    """Whether `sh -c 'cmd &'` starts cmd with SIGINT ignored (/proc/PID/status, SigIgn)."""
    shell = subprocess.Popen(["sh", "-c", 'sleep 30 &\necho "$!"\nwait'], stdout=subprocess.PIPE,
                             text=True)
    try:
        pid = int(shell.stdout.readline())

        def ignored() -> int:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            return int(next(x for x in status if x.startswith("SigIgn:")).split()[1], 16)

        wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"),
                 what="the sleep")
        return bool(ignored() & (1 << (signal.SIGINT - 1)))
    finally:
        os.kill(pid, signal.SIGKILL)
        shell.communicate(timeout=30)


def test_a_batch_started_in_the_background_by_a_script_stops_on_sigint(tiny_mnist, tmp_path):
    """A non-interactive shell starts `cmd &` with SIGINT ignored; the batch must still stop."""
    out = tmp_path / "out"
    f = write_batch(tmp_path / "b.yaml", {"name": "bg", "base": _base(tiny_mnist, 400),
                                          "seeds": [0]})
    cmd = shlex.join([*CE_LAB, "batch", str(f), "--out-dir", str(out), "--no-plots",
                      "--threads", "1"])
    script = f'{cmd} >/dev/null 2>&1 &\necho "$!"\nwait "$!"\necho "exit $?"\n'
    assert _a_background_job_ignores_sigint()  # what the batch inherits
    shell = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(shell.stdout.readline())
        wait_for(lambda: any(p.read_text().count("\n") > 2 for p in out.glob("*/metrics.csv")),
                  what="training")
        os.kill(pid, signal.SIGINT)
        rest, _ = shell.communicate(timeout=90)
    finally:
        if shell.poll() is None:
            os.kill(pid, signal.SIGKILL)
            _stop(shell)
    assert rest.strip() == "exit 130"
    state = json.loads(next(out.glob("batch-*/batch.json")).read_text())
    assert state["status"] == "interrupted"
    run = _run_dirs(out)[0]
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
