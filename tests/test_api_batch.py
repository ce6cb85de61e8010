"""ce_lab.batch on the tiny MNIST: the runs and the comparison of ``ce-lab batch`` on the same file,
a dry run that writes nothing, and arguments checked by name before anything is written."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import ce_lab
from tests.helpers import losses_batch, only_batch_dir, tiny_base, write_batch


def test_dry_run_returns_the_plan_and_writes_nothing(tmp_path, tiny_mnist):
    f = losses_batch(tmp_path, tiny_mnist)
    before = sorted(tmp_path.rglob("*"))
    plan = ce_lab.batch(f, dry_run=True, jobs=2)
    assert sorted(tmp_path.rglob("*")) == before
    assert plan.dir is None and plan.comparison is None and plan.exit_code == 0
    assert [(e.action, e.status, e.run_dir) for e in plan.entries] == [("run", "pending", None)] * 2
    # Two workers, one stack of two: split so that neither sits idle.
    assert sorted(e.stack for e in plan.entries) == [0, 1]
    assert "split into 2" in plan.plan.describe()
    whole = ce_lab.batch(f, dry_run=True, jobs=2, split_stacks="never")
    assert [e.stack for e in whole.entries] == [0, 0] and len(whole.plan.tasks) == 1
    assert len(ce_lab.batch(f, dry_run=True, fuse=False).plan.tasks) == 2


def test_progress_plain_prints_a_line_per_entry_start_and_end(tmp_path, tiny_mnist, capfd):
    f = write_batch(tmp_path / "b.yaml", {"name": "one", "base": tiny_base(tiny_mnist)})
    res = ce_lab.batch(f, plots=False, progress="plain")
    out, err = capfd.readouterr()
    assert out == "" and err == "start  #0 (base)\n[1] completed #0 (base)\n"
    assert res.entries[0].run().status == "completed"


@pytest.mark.parametrize("kwargs, message", [
    ({"jobs": 0}, "jobs must be a positive integer, got 0"),
    ({"threads": 1.5}, "threads must be a positive integer, got 1.5"),
    ({"executor": "dask"}, "executor must be one of local, ray, slurm, got 'dask'"),
    ({"max_members": 0}, "max_members must be a positive integer, got 0"),
    ({"split_stacks": "sometimes"}, "split_stacks must be one of when-idle, never, got 'sometimes'"),
    ({"cpus_per_task": "2"}, "cpus_per_task must be a number, got '2'"),
    ({"overrides": ["seed=1"]}, "overrides must be a mapping of dotted config keys to values"),
    ({"address": "auto"}, "address applies to executor ray"),
    ({"executor": "ray", "threads": 2},
     "threads applies to the local executor; Ray tasks use cpus_per_task"),
    ({"executor": "ray", "cpus_per_task": 0}, "cpus_per_task must be > 0, got 0.0"),
    ({"batch_file": None}, "give a batch file or resume BATCH_DIR (one of them)"),
    ({"resume": "nothere"}, "give a batch file or resume BATCH_DIR (one of them)"),
    ({"batch_file": None, "resume": "nothere", "overrides": {"seed": 1}, "new": True},
     "overrides, new cannot change a batch being resumed; run the batch file instead"),
    ({"batch_file": None, "resume": "nothere"}, "resume: no such batch folder: nothere"),
    ({"batch_file": 3}, "batch_file must be a file (str or Path), got 3"),
    ({"executor": "slurm", "slurm": {"partitions": "gpu"}},
     "slurm has no option 'partitions': partition, time, cpus_per_task, gpus_per_task, mem, extra"),
    ({"executor": "slurm", "slurm": ["gpu"]}, "slurm must be a mapping of SLURM options"),
    ({"slurm": {"partition": "gpu"}}, "slurm_partition applies to executor slurm"),
    ({"detach": True}, "detach applies to executor slurm"),
])
def test_api_errors_name_the_parameter_and_write_nothing(tmp_path, kwargs, message):
    f = write_batch(tmp_path / "b.yaml", {"name": "x", "grid": {"loss.name": ["ce", "mse"]}})
    kwargs = {"batch_file": f, **kwargs}
    with pytest.raises(ce_lab.ParamError) as e:
        ce_lab.batch(kwargs.pop("batch_file"), **kwargs)
    assert str(e.value).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml"]


def test_a_bad_override_or_progress_is_refused_before_anything_is_written(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "x"})
    with pytest.raises(ce_lab.ConfigError, match="unknown key 'optim.lrr'"):
        ce_lab.batch(f, overrides={"optim.lrr": 0.5})
    with pytest.raises(ce_lab.UsageError, match="progress must be auto, bar, plain or none"):
        ce_lab.batch(f, progress="loud")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml"]


def test_batch_is_a_function_with_a_real_signature_after_the_package_loads():
    import ce_lab.batches.execute  # noqa: F401  (the package must not shadow the function)

    assert inspect.isfunction(ce_lab.batch)
    params = inspect.signature(ce_lab.batch).parameters
    assert {"batch_file", "resume", "overrides", "jobs", "executor", "dry_run"} <= set(params)
    assert params["executor"].default is None and params["dry_run"].default is False  # None: local
    assert params["jobs"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ce_lab.batch.__doc__ and "ce-lab batch" in ce_lab.batch.__doc__


def test_ctrl_c_raises_interrupted_naming_the_folder_and_resume_finishes_it(tiny_mnist, tmp_path):
    """SIGTERM (as Ctrl-C) once an entry runs: the workers stop, Interrupted names the batch
    folder, and batch(resume=...) trains what is left."""
    import os
    import signal
    import threading

    from ce_lab.batches.store import read_state
    from ce_lab.errors import CeLabError

    f = write_batch(tmp_path / "b.yaml", {
        "name": "stop", "base": tiny_base(tiny_mnist, epochs=2), "grid": {"loss.name": ["ce"]},
        "seeds": [0, 1]})
    late: list[int] = []
    # A signal after the batch restored this handler is recorded instead of ending pytest.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    stop = threading.Event()

    def interrupt_once_running() -> None:
        while not stop.wait(0.05):
            for state in tmp_path.glob("runs/batch-stop-*/batch.json"):
                try:  # batch.json with the entry events logged beside it since it was written
                    entries = read_state(state.parent).entries
                except CeLabError:
                    continue
                if any(e.status == "running" for e in entries):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    watcher = threading.Thread(target=interrupt_once_running, daemon=True)
    watcher.start()
    try:
        with pytest.raises(ce_lab.Interrupted) as e:
            ce_lab.batch(f, plots=False)
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGTERM, previous)
    assert not late
    batch_dir = only_batch_dir(Path("runs"))  # relative: the default out_dir, in the cwd
    assert e.value.comp_dir == batch_dir and e.value.exit_code == 130
    assert f"ce_lab.batch(resume={str(batch_dir)!r})" in str(e.value)
    assert not (batch_dir / "table.csv").exists()  # nothing compared
    done = ce_lab.batch(resume=batch_dir, plots=False)
    assert done.exit_code == 0 and [x.status for x in done.entries] == ["completed"] * 2
    assert done.ran >= 1 and (batch_dir / "table.csv").is_file()


def test_executor_slurm_returns_the_job_ids_and_a_detached_batch_is_collected_by_resume(
        tmp_path, tiny_mnist, monkeypatch):
    """Through submitit's local executor (tests/cli/test_batch_slurm.py has the CLI's runs)."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("CE_LAB_SUBMITIT_CLUSTER", "local")
    f = losses_batch(tmp_path, tiny_mnist)
    sent = ce_lab.batch(f, executor="slurm", slurm={"cpus_per_task": 1}, detach=True,
                        out_dir=tmp_path / "out", plots=False)
    assert len(sent.jobs) == 1 and sent.exit_code == 0  # one stack: one job
    assert {e.status for e in sent.entries} == {"running"} and sent.comparison is None
    done = ce_lab.batch(resume=sent.dir, plots=False)
    assert [e.status for e in done.entries] == ["completed"] * 2 and done.comparison is not None
    assert done.jobs == [] and done.ran == 0  # collected, nothing submitted again
