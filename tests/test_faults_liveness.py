"""Liveness of a run: who owns a "running" run folder (pid, start time, heartbeat), when the first
checkpoint comes, and a batch that resumes a crashed entry. Crashed and killed runs met by the
commands: tests/cli/test_faults_liveness.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import torch

from ce_lab.batches.plan import describe_plan, open_batch
from ce_lab.batches.store import run_path, write_state
from ce_lab.config import with_overrides
from ce_lab.progress import Reporter
from ce_lab.runs.folder import Status
from ce_lab.runs.liveness import effective_status, owner_alive, process_start
from ce_lab.training import train
from tests.helpers import (
    FakeExecutor,
    batch_with_two_runs,
    dead_pid,
    run_fake,
    set_meta,
)

HAS_PROC = Path("/proc/self/stat").exists()


def iso(seconds_ago: float) -> str:
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    return when.isoformat(timespec="seconds")


# --- the one place that decides ------------------------------------------------------------------

def test_owner_alive_by_pid_start_time_and_heartbeat():
    me = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
          "pid_start": process_start(os.getpid())}
    assert owner_alive(me) and effective_status(me) is Status.RUNNING
    gone = me | {"pid": dead_pid()}
    assert not owner_alive(gone) and effective_status(gone) is Status.CRASHED
    if HAS_PROC:  # the pid is alive, but it is another process than the one that started the run
        reused = me | {"pid_start": me["pid_start"] - 1}
        assert effective_status(reused) is Status.CRASHED
    elsewhere = {"status": "running", "pid": 1, "host": "another-host"}
    assert effective_status(elsewhere | {"heartbeat": iso(10)}) is Status.RUNNING
    assert effective_status(elsewhere | {"heartbeat": iso(3600)}) is Status.CRASHED
    assert effective_status({"status": "running"}) is Status.CRASHED  # no owner recorded
    assert effective_status(gone | {"status": "interrupted"}) is Status.INTERRUPTED
    assert effective_status({"status": "lost"}) is None


def test_an_owner_in_a_slurm_job_elsewhere_is_asked_of_squeue_else_judged_by_its_heartbeat(
        tmp_path, monkeypatch):
    from ce_lab.runs.liveness import owner_fields

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert owner_fields()["slurm_job"] == "4242"  # recorded in meta.json by a job's worker
    monkeypatch.delenv("SLURM_JOB_ID")
    assert "slurm_job" not in owner_fields()
    # No squeue on this machine (a laptop reading the shared folder): the heartbeat decides.
    monkeypatch.setenv("PATH", str(tmp_path))
    elsewhere = {"status": "running", "pid": 1, "host": "node-7", "slurm_job": "4242"}
    assert effective_status(elsewhere | {"heartbeat": iso(10)}) is Status.RUNNING
    assert effective_status(elsewhere | {"heartbeat": iso(3600)}) is Status.CRASHED
    # tests/cli/test_batch_slurm_cluster.py asks a real squeue.


def test_meta_records_its_owner_and_refreshes_the_heartbeat_at_most_every_few_seconds(
        cfg, data, monkeypatch):
    seen = []
    where = [Path(cfg.out_dir)]

    class Peek(Reporter):
        def logged(self, step, epoch, losses):
            meta_path = next(where[0].glob("*/meta.json"))
            meta = json.loads(meta_path.read_text())
            seen.append(meta["heartbeat"])
            if step == 5:  # make the next written heartbeat visible
                meta_path.write_text(json.dumps(meta | {"heartbeat": "2000-01-01T00:00:00+00:00"}))

    out = train(cfg, data=data, reporter=Peek())
    meta = json.loads((out.run_dir / "meta.json").read_text())
    assert meta["pid"] == os.getpid() and meta["host"] == socket.gethostname()
    assert meta["pid_start"] == process_start(os.getpid()) and meta["heartbeat"]
    # A tiny run lasts well under the 5 s throttle: no heartbeat was written during it.
    assert seen[1:] == ["2000-01-01T00:00:00+00:00"] * (len(seen) - 1)

    seen.clear()
    import ce_lab.training.members as members

    monkeypatch.setattr(members, "HEARTBEAT_EVERY_S", 0.0)
    where[0] = Path(cfg.out_dir).parent / "beat"
    train(with_overrides(cfg, {"out_dir": str(where[0])}), data=data, reporter=Peek())
    assert seen[1] != "2000-01-01T00:00:00+00:00"  # refreshed at the next logged step


# --- the batch -----------------------------------------------------------------------------------

def test_a_batch_resumes_a_crashed_entry_with_a_checkpoint_and_reruns_one_without(tmp_path):
    runs, batch, opened, state = batch_with_two_runs(tmp_path)
    for rec, ckpt in zip(state.entries[:2], (True, False)):
        path = run_path(opened.batch_dir, rec.run_dir)
        set_meta(path, status="running", pid=dead_pid(), host=socket.gethostname())
        (path / "summary.json").unlink()
        if ckpt:
            (path / "checkpoint.pt").write_bytes(b"fake")
        rec.status = "running"  # a batch killed with kill -9 left it so
    write_state(opened.batch_dir, state)
    again = FakeExecutor(runs, capacity=1)
    reopened = open_batch(batch, opened.batch_dir)
    assert [a for _, a in describe_plan(reopened)] == ["resume", "rerun", "skip", "skip"]
    run_fake(reopened, again)
    assert [(t["kind"], t["entries"]) for t in again.started] == [("resume", [0]), ("train", [1])]


# --- kill -9 before the first epoch end ---------------------------------------------------------

def test_the_first_checkpoint_comes_after_a_few_seconds_even_before_any_evaluation(
        cfg, data, monkeypatch):
    import ce_lab.training.loop as loop

    cfg = with_overrides(cfg, {"log.eval_every": 10_000})  # the first evaluation: epoch end
    found = {}

    class Look(Reporter):
        def logged(self, step, epoch, losses):
            if step == 10:
                ckpt = next(Path(cfg.out_dir).glob("*/checkpoint.pt"), None)
                found[len(found)] = None if ckpt is None else torch.load(
                    ckpt, weights_only=True)["step"]

    train(cfg, data=data, reporter=Look())
    assert found[0] is None  # a tiny run takes less than FIRST_CHECKPOINT_S to its step 10
    monkeypatch.setattr(loop, "FIRST_CHECKPOINT_S", 0.0)
    cfg = with_overrides(cfg, {"out_dir": str(Path(cfg.out_dir).parent / "early")})
    train(cfg, data=data, reporter=Look())
    assert found[1] == 5  # written at the first logged step once the time had come
