"""ce-lab batch --executor slurm through submitit's local executor (``CE_LAB_SUBMITIT_CLUSTER=local``:
each job a local process), so the whole path from the command line to the jobs' results runs in the
ordinary suite; tests/cli/test_batch_slurm_cluster.py runs it against a real SLURM."""

from __future__ import annotations

import sys

import pytest

from ce_lab.batches.slurm_exec import CLUSTER_ENV, jobs_path
from ce_lab.batches.store import read_state
from ce_lab.cli.app import app
from tests.helpers import assert_same_runs, runner, slurm_losses_batch, trained_stacks

pytest.importorskip("submitit")


@pytest.fixture
def local_jobs(monkeypatch):
    monkeypatch.setenv(CLUSTER_ENV, "local")


def test_a_batch_runs_as_jobs_with_the_local_executors_stacks_and_numbers(local_jobs, tiny_mnist,
                                                                          tmp_path):
    f = slurm_losses_batch(tmp_path, tiny_mnist)
    args = ["batch", str(f), "--executor", "slurm", "--no-plots", "--out-dir", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (batch_dir,) = (tmp_path / "out").glob("batch-*")
    state = read_state(batch_dir)
    assert state.executor == "slurm" and state.status == "completed"
    assert [e.status for e in state.entries] == ["completed"] * 4
    assert trained_stacks(batch_dir) == {frozenset({0, 2}), frozenset({1, 3})}  # one per seed
    # A line per finished entry, as the local executor prints; the jobs' output in the batch folder.
    assert sorted(line.split("] ")[1].split(" #")[0] for line in result.stderr.splitlines()
                  if line.startswith("[")) == ["completed"] * 4
    assert len(list((batch_dir / "slurm").glob("*_log.out"))) == 2  # two jobs, one per stack
    assert not jobs_path(batch_dir).exists()  # every job collected
    assert (batch_dir / "report.md").is_file()

    local = runner.invoke(app, ["batch", str(f), "--no-plots", "--threads", "1",
                                "--out-dir", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    (local_dir,) = (tmp_path / "local").glob("batch-*")
    assert_same_runs(batch_dir, local_dir)


def test_detach_submits_and_returns_and_resume_collects(local_jobs, tiny_mnist, tmp_path):
    f = slurm_losses_batch(tmp_path, tiny_mnist)
    out = tmp_path / "out"
    sent = runner.invoke(app, ["batch", str(f), "--executor", "slurm", "--detach", "--no-plots",
                               "--out-dir", str(out)])
    assert sent.exit_code == 0, sent.output
    (batch_dir,) = out.glob("batch-*")
    assert "submitted 2 SLURM jobs: " in sent.stdout
    assert f"ce-lab batch --resume {batch_dir} waits for them" in sent.stdout
    assert read_state(batch_dir).status == "running"
    assert len(read_state(batch_dir).entries) == 4
    # Another executor would train them a second time beside the jobs: refused, in one line.
    local = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--executor", "local"])
    assert local.exit_code == 2
    assert local.stderr.strip() == (f"error: {batch_dir} has 2 SLURM jobs not collected yet; "
                                    "resume it with --executor slurm")
    dry = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--dry-run"])
    assert dry.exit_code == 0 and dry.stdout.count("collect (SLURM job)") == 4, dry.stdout
    # Without --executor: the folder ran on SLURM, so its jobs are collected, never run again.
    again = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--no-plots"])
    assert again.exit_code == 0, again.output
    assert "4 entries: 4 collect" in again.stdout
    state = read_state(batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 4 and state.status == "completed"
    assert len(list((batch_dir / "slurm").glob("*_log.out"))) == 2  # nothing submitted twice
    assert (batch_dir / "report.md").is_file() and not jobs_path(batch_dir).exists()
    done = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--no-plots"])
    assert done.exit_code == 0 and "0 started now, 4 already done" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm"),
    (["--detach"], "--detach applies to --executor slurm"),
    (["--executor", "slurm", "--threads", "2"],
     "--threads applies to the local executor; SLURM jobs use --slurm-cpus-per-task"),
    (["--executor", "slurm", "--slurm-extra", "account"],
     "--slurm-extra takes KEY=VALUE (an sbatch option without its --), got 'account'"),
    (["--executor", "slurm", "--slurm-time", "1 hour"],
     "--slurm-time must be one word as sbatch takes it, got '1 hour'"),
])
def test_options_are_checked_before_anything_is_written(local_jobs, tmp_path, args, message):
    f = slurm_losses_batch(tmp_path, tmp_path)
    result = runner.invoke(app, ["batch", str(f), *args, "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "out").exists()


def test_a_batch_folder_in_the_temporary_folder_is_refused_on_slurm(tmp_path):
    f = slurm_losses_batch(tmp_path, tmp_path)
    result = runner.invoke(app, ["batch", str(f), "--executor", "slurm",
                                 "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --executor slurm needs the batch folder on a file system the "
                                    f"nodes share; {tmp_path / 'out'} is under the temporary")
    assert result.stderr.strip().endswith("give --out-dir on a shared file system")
    assert not (tmp_path / "out").exists()


def test_without_submitit_the_slurm_executor_names_the_extra(local_jobs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed: import fails
    f = slurm_losses_batch(tmp_path, tmp_path)
    result = runner.invoke(app, ["batch", str(f), "--executor", "slurm",
                                 "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ('error: --executor slurm needs submitit, which is not installed: '
                                     'pip install "ce-lab[slurm]"')
