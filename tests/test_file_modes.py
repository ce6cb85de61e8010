"""Every file ce-lab writes has the mode the umask gives a new file (0666 less the umask), and every
folder 0777 less it, as a shared results folder needs: the atomically written files (config.yaml,
meta.json, summary.json, report.md, the PNGs, ...) once came out 0600 beside a 0644 metrics.csv."""

from __future__ import annotations

import os

from tests.helpers import wrong_modes


def test_the_locks_of_a_run_and_of_a_batch_follow_the_umask(tmp_path):
    from ce_lab.batches.store import locked
    from ce_lab.runs.lock import RunLock

    before = os.umask(0o002)  # a group-shared folder: its group may take over a stale lock
    try:
        run_dir, batch_dir = tmp_path / "run", tmp_path / "batch"
        run_dir.mkdir()
        batch_dir.mkdir()
        lock = RunLock.acquire(run_dir)
        with locked(batch_dir):
            assert [p.name for p in run_dir.iterdir()] == [p.name for p in batch_dir.iterdir()] == [
                ".lock"]
            assert wrong_modes(run_dir, 0o002) == wrong_modes(batch_dir, 0o002) == {}
        lock.release()
    finally:
        os.umask(before)
