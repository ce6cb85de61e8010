"""ce-lab batch --executor slurm against a real SLURM: a one-node cluster on localhost
(tests/slurm_cluster.py: munged, slurmctld and slurmd started here and stopped by their pids).

Marked ``slurm``: the ordinary ``pytest`` leaves them out (``-m "not slurm"`` in pyproject.toml);
``pytest -m slurm`` runs them, as .ci/run does. Skipped where SLURM is not installed, with the
command that installs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ce_lab.batches.slurm_exec import jobs_path, uncollected
from ce_lab.batches.store import read_state, run_path
from ce_lab.cli.app import app
from tests.helpers import (
    assert_same_runs,
    runner,
    slurm_losses_batch,
    tiny_base,
    trained_stacks,
    wait_for,
    write_batch,
)
from tests.slurm_cluster import local_slurm, missing

pytestmark = pytest.mark.slurm
if missing():
    pytest.skip(missing(), allow_module_level=True)
pytest.importorskip("submitit")

EPOCHS = 20  # the entries that are killed: caught after their first checkpoint
STEPS_PER_EPOCH = 63  # ceil((1200 - 200 validation) / 16)


@pytest.fixture(scope="module")
def slurm():
    with local_slurm() as env:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def shared():
    """A folder outside the temporary folder (which a batch on SLURM refuses)."""
    folder = Path(tempfile.mkdtemp(prefix="celab-slurm-test-", dir=Path.home()))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_batch_runs_as_one_job_array_with_the_local_executors_numbers(slurm, tiny_mnist, shared):
    f = slurm_losses_batch(shared, tiny_mnist)
    result = runner.invoke(app, ["batch", str(f), "--executor", "slurm", "--no-plots",
                                 "--out-dir", str(shared / "out")])
    assert result.exit_code == 0, result.output
    (batch_dir,) = (shared / "out").glob("batch-*")
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 4 and state.executor == "slurm"
    assert trained_stacks(batch_dir) == {frozenset({0, 2}), frozenset({1, 3})}
    logs = sorted(p.name for p in (batch_dir / "slurm").glob("*_log.out"))
    array = logs[0].split("_")[0]
    assert logs == [f"{array}_0_0_log.out", f"{array}_1_0_log.out"]  # one array of two jobs
    assert not jobs_path(batch_dir).exists() and (batch_dir / "report.md").is_file()

    local = runner.invoke(app, ["batch", str(f), "--no-plots", "--threads", "1",
                                "--out-dir", str(shared / "local")])
    assert local.exit_code == 0, local.output
    (local_dir,) = (shared / "local").glob("batch-*")
    assert_same_runs(batch_dir, local_dir)


def _job_of(batch_dir: Path, entry: int) -> str:
    (job,) = [j["job_id"] for j in uncollected(batch_dir) if entry in j["task"]["entries"]]
    return job


def test_jobs_killed_midway_leave_runs_resumable_and_resume_finishes_them(slurm, tiny_mnist,
                                                                          shared):
    """Entry 1's job is cancelled (scancel: SIGTERM, the run checkpoints), entry 2's training
    process killed (SIGKILL, as by the OOM killer: its run is left crashed, with its last epoch's
    checkpoint), entry 3's warned of its time limit (SIGUSR2: it stops as on SIGTERM); entry 0
    completes. --resume resubmits only 1 to 3, which continue from their checkpoints."""
    out = shared / "out"
    f = write_batch(shared / "b.yaml", {
        "name": "kill", "base": tiny_base(tiny_mnist, {"checkpoint": True}, batch_size=16),
        "runs": [{"train.epochs": 1}, *({"train.epochs": EPOCHS, "seed": s} for s in (1, 2, 3))]})
    proc = _batch_process(f, out)
    runs = {}
    try:
        for seed, how in ((1, ["scancel"]), (2, None), (3, ["scancel", "--signal=USR2"])):
            # Frozen (SIGSTOP) once it has a checkpoint, so that it is mid-run when signalled.
            run = wait_for(lambda s=seed: _checkpointed(proc, out, s), timeout=120.0, every=0.02)
            pid = json.loads((run / "meta.json").read_text())["pid"]
            os.kill(pid, signal.SIGSTOP)
            runs[seed] = run
            batch_dir = next(out.glob("batch-*"))
            if how is None:
                os.kill(pid, signal.SIGKILL)  # as the OOM killer does: no word from the job
                continue
            subprocess.run([*how, _job_of(batch_dir, seed)], check=True)
            os.kill(pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr  # not every entry has a result
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed", "interrupted", "failed",
                                                 "interrupted"], stderr
    assert state.entries[2].error.startswith("SLURM job ") and "before it wrote a result; see " \
        f"{batch_dir / 'slurm'}" in state.entries[2].error
    assert not jobs_path(batch_dir).exists()
    for seed, run in runs.items():
        assert (run / "checkpoint.pt").is_file()
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == ("running" if seed == 2 else "interrupted")  # 2: crashed
    listed = runner.invoke(app, ["runs", "--out-dir", str(out)])
    assert "crashed" in listed.stdout and " running " not in listed.stdout, listed.stdout

    again = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--executor", "slurm",
                                "--no-plots"])
    assert again.exit_code == 0, again.output
    assert "4 entries: 3 resume, 1 skip" in again.stdout
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 4
    for seed, run in runs.items():
        assert run_path(batch_dir, state.entries[seed].run_dir).resolve() == run.resolve()
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == "completed" and meta["resumed"]
        assert json.loads((run / "summary.json").read_text())["steps"] == EPOCHS * STEPS_PER_EPOCH
    assert len([d for d in out.iterdir() if d.is_dir() and not d.name.startswith("batch-")]) == 4


def test_ctrl_c_cancels_the_jobs_and_leaves_the_batch_resumable(slurm, tiny_mnist, shared):
    out = shared / "out"
    f = write_batch(shared / "b.yaml", {
        "name": "stop", "base": tiny_base(tiny_mnist, {"checkpoint": True}, batch_size=16,
                                          epochs=8),
        "grid": {"loss.name": ["ce", "hinge"]}, "seeds": [1, 2, 3]})
    proc = _batch_process(f, out)
    try:
        wait_for(lambda: _checkpointed(proc, out, 1), timeout=120.0, every=0.02)
        batch_dir = next(out.glob("batch-*"))
        (array,) = {j["job_id"].split("_")[0] for j in uncollected(batch_dir)}
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: run the batch file again" in stderr
    queue = subprocess.run(["squeue", "--noheader", "--states=PENDING,RUNNING", "--jobs", array],
                           capture_output=True, text=True)
    assert queue.stdout.strip() == ""  # every job of the array cancelled, the queued ones too
    state = read_state(batch_dir)
    assert state.status == "interrupted" and "running" not in {e.status for e in state.entries}
    assert not jobs_path(batch_dir).exists()
    again = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--no-plots"])
    assert again.exit_code == 0, again.output
    assert [e.status for e in read_state(batch_dir).entries] == ["completed"] * 6


def test_a_run_whose_slurm_job_ended_is_crashed_at_once_whatever_its_heartbeat(slurm, shared):
    """A run trained on another node: its heartbeat looks alive for minutes after SLURM killed
    its job (time limit, node failure); squeue knows at once."""
    from ce_lab.runs.liveness import effective_status
    from ce_lab.safe_io import now_iso

    job = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 60"],
                         capture_output=True, text=True, check=True).stdout.strip()
    meta = {"status": "running", "pid": 1, "host": "node-7", "heartbeat": now_iso(),
            "slurm_job": job}
    assert effective_status(meta) == "running"
    subprocess.run(["scancel", job], check=True)
    wait_for(lambda: effective_status(meta) == "crashed", timeout=30.0, every=1.0)
    assert effective_status(meta | {"slurm_job": None}) == "running"  # the heartbeat alone


def _batch_process(f: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ce_lab", "batch", str(f), "--executor",
                             "slurm", "--no-plots", "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpointed(proc: subprocess.Popen, out: Path, seed: int) -> Path | None:
    """The run folder of ``seed`` once it has a checkpoint."""
    assert proc.poll() is None, proc.communicate()
    for d in out.glob("*/checkpoint.pt"):
        if f"seed: {seed}\n" in (d.parent / "config.yaml").read_text():
            return d.parent
    return None


def test_a_job_sbatch_refuses_is_one_line_with_slurms_reason(slurm, tiny_mnist, shared):
    f = slurm_losses_batch(shared, tiny_mnist)
    start = time.monotonic()
    result = runner.invoke(app, ["batch", str(f), "--executor", "slurm", "--slurm-partition",
                                 "nosuch", "--out-dir", str(shared / "out")])
    assert result.exit_code == 1 and time.monotonic() - start < 60
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no entry was said to start
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: SLURM refused the jobs: sbatch: error: ")
    assert "invalid partition" in line.lower()
    (batch_dir,) = (shared / "out").glob("batch-*")
    state = read_state(batch_dir)
    assert state.status == "failed" and {e.status for e in state.entries} == {"interrupted"}
    assert not jobs_path(batch_dir).exists()
