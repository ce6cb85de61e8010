"""Every file ce-lab writes has the mode the umask gives a new file (0666 less the umask), and every
folder 0777 less it, as a shared results folder needs: the atomically written files (config.yaml,
meta.json, summary.json, report.md, the PNGs, ...) once came out 0600 beside a 0644 metrics.csv."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from ce_lab.data.files import atomic_write
from tests.conftest import tiny_set_items
from tests.helpers import tiny_base, write_batch


def wrong_modes(root: Path, umask: int) -> dict[str, str]:
    """Every file and folder under ``root`` (itself included) whose permission bits are not 0666
    (files) or 0777 (folders) less ``umask``: relative path -> octal mode."""
    wrong = {}
    for p in [root, *root.rglob("*")]:
        mode, want = stat.S_IMODE(p.lstat().st_mode), (0o777 if p.is_dir() else 0o666) & ~umask
        if mode != want:
            wrong[str(p.relative_to(root))] = oct(mode)
    return wrong


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_runs_comparisons_batches_and_the_data_cache_follow_the_umask(tiny_mnist, tmp_path, cli,
                                                                      umask):
    spec = write_batch(tmp_path / "spec.yaml", {
        "name": "modes", "base": tiny_base(tiny_mnist, max_steps=10),
        "grid": {"loss.name": ["ce", "mse"]}})
    out = tmp_path / "out"
    sets = tiny_set_items(tiny_mnist, f"out_dir={out}", "train.max_steps=10", "train.epochs=0",
                          "log.checkpoint=true", "log.tensorboard=true")
    before = os.umask(umask)
    try:
        # a comparison that trains: run folders (checkpoints, test_logits.npz, live TensorBoard
        # events), the comparison folder (tables, report.md, the PNGs)
        result = cli.invoke(app, ["compare", "--losses", "ce,mse",
                                  *(a for s in sets for a in ("--set", s))])
        assert result.exit_code == 0, result.output
        run = next(out.glob("*/meta.json")).parent
        result = cli.invoke(app, ["export", "tensorboard", str(run), "--out", str(out / "tb")])
        assert result.exit_code == 0, result.output
        # a batch: worker processes, batch.json, the copies of its file, its comparison
        result = cli.invoke(app, ["batch", str(spec), "--jobs", "1", "--out-dir", str(out)])
        assert result.exit_code == 0, result.output
        atomic_write(out / "cache" / "train-labels-idx1-ubyte", b"\0" * 8)  # the MNIST cache
    finally:
        os.umask(before)
    names = {p.name for p in out.rglob("*")}
    assert {"config.yaml", "meta.json", "summary.json", "metrics.csv", "eval.csv", "checkpoint.pt",
            "test_logits.npz", "report.md", "loss.png", "batch.json", "comparison.json",
            "train-labels-idx1-ubyte"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert wrong_modes(out, umask) == {}


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
