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


def test_scancel_midway_leaves_runs_resumable_and_resume_finishes_them(slurm, tiny_mnist, shared):
    """Entry 1's job is cancelled (scancel: SIGTERM, it checkpoints), entry 2's training process
    is killed (SIGKILL, as by the OOM killer: its run is left as crashed, its last epoch's
    checkpoint on disk); entry 0 completes. --resume
    resubmits only 1 and 2, which continue from their checkpoints."""
    out = shared / "out"
    f = write_batch(shared / "b.yaml", {
        "name": "kill", "base": tiny_base(tiny_mnist, {"checkpoint": True}, batch_size=16),
        "runs": [{"train.epochs": 1}, {"train.epochs": EPOCHS, "seed": 1},
                 {"train.epochs": EPOCHS, "seed": 2}]})
    proc = subprocess.Popen([sys.executable, "-m", "ce_lab", "batch", str(f), "--executor", "slurm",
                             "--no-plots", "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def checkpointed(seed: int):
            assert proc.poll() is None, proc.communicate()
            for d in out.glob("*/checkpoint.pt"):
                if f"seed: {seed}\n" in (d.parent / "config.yaml").read_text():
                    return d.parent
            return None

        frozen = {}
        for seed in (1, 2):  # each frozen (SIGSTOP) once it has a checkpoint: mid-run
            run = wait_for(lambda s=seed: checkpointed(s), timeout=120.0, every=0.02)
            frozen[seed] = (run, json.loads((run / "meta.json").read_text())["pid"])
            os.kill(frozen[seed][1], signal.SIGSTOP)
        batch_dir = next(out.glob("batch-*"))
        (cancelled, _), (killed, pid) = frozen[1], frozen[2]
        subprocess.run(["scancel", _job_of(batch_dir, 1)], check=True)  # SLURM sends CONT, TERM
        os.kill(pid, signal.SIGKILL)  # as the OOM killer does: the job ends without a word
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr  # not every entry has a result
    state = read_state(batch_dir)
    assert [e.status for e in state.entries][:2] == ["completed", "interrupted"], stderr
    assert state.entries[2].status in ("failed", "interrupted"), (state.entries[2], stderr)
    assert state.entries[2].error, (state.entries[2], stdout, stderr)
    assert "SLURM job" in state.entries[2].error and "before it wrote a result" in (
        state.entries[2].error)
    for run in (cancelled, killed):
        assert (run / "checkpoint.pt").is_file()
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] in ("interrupted", "running")  # running: killed, so crashed
    listed = runner.invoke(app, ["runs", "--out-dir", str(out)])
    assert "crashed" in listed.stdout and " running " not in listed.stdout, listed.stdout

    dry = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--dry-run"])
    assert dry.exit_code == 0 and dry.stdout.count("resume") >= 2, dry.stdout
    again = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--executor", "slurm",
                                "--no-plots"])
    assert again.exit_code == 0, again.output
    assert "3 entries: 2 resume, 1 skip" in again.stdout
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 3
    for entry, run in ((1, cancelled), (2, killed)):
        assert run_path(batch_dir, state.entries[entry].run_dir).resolve() == run.resolve()
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == "completed" and meta["resumed"]
    assert len([d for d in out.iterdir() if d.is_dir() and not d.name.startswith("batch-")]) == 3


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
