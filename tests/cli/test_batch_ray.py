"""ce-lab batch --executor ray on a local Ray instance (skipped only where Ray is not installed;
CI installs the ray extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ce_lab.batches.store import read_state, run_path
from ce_lab.cli.app import app
from tests.helpers import dry_run_stacks, rows, runner, trained_stacks, without_wall
from tests.mnist_fixture import TINY_VAL_SIZE

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_batch_runs_as_ray_tasks_training_the_stacks_the_dry_run_shows(local_ray, tiny_mnist,
                                                                        tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text(yaml.safe_dump({
        "name": "ray",
        "base": {"device": "cpu", "data": {"root": str(tiny_mnist), "verify_md5": False,
                                            "val_size": TINY_VAL_SIZE},
                 "model": {"hidden": [16]}, "train": {"epochs": 1, "batch_size": 50},
                 "log": {"progress": "none", "checkpoint": False, "eval_every": 10}},
        "grid": {"loss.name": ["ce", "hinge"]},
    }), encoding="utf-8")
    out = tmp_path / "out"  # relative paths would point into the Ray workers' own folders
    args = ["batch", str(f), "--executor", "ray", "--cpus-per-task", "1", "--no-plots",
            "--out-dir", "out"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry_run_stacks(dry.stdout) == {frozenset({0, 1})}  # one seed, two losses: one stack
    assert "kept whole (split-stacks when-idle needs a number of workers)" in dry.stdout
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (batch_dir,) = out.glob("batch-*")
    state = read_state(batch_dir)
    assert state.executor == "ray"
    assert [e.status for e in state.entries] == ["completed", "completed"]
    dirs = [run_path(batch_dir, e.run_dir).resolve() for e in state.entries]
    assert len(set(dirs)) == 2 and all(d.parent == out.resolve() for d in dirs)
    # Trained as the dry run showed: one Ray task, one stack.
    assert trained_stacks(batch_dir) == {frozenset({0, 1})}
    for d, other, loss in zip(dirs, dirs[::-1], ("ce", "hinge")):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["loss"] == loss and summary["status"] == "completed"
        meta = json.loads((d / "meta.json").read_text())
        assert meta["group"] == state.batch_id and meta["fused_with"] == [other.name]
    assert (batch_dir / "report.md").is_file()

    # The local executor trains the same stack to the same numbers.
    local = runner.invoke(app, ["batch", str(f), "--threads", "1", "--no-plots",
                                "--out-dir", "out-local"])
    assert local.exit_code == 0, local.output
    (local_dir,) = (tmp_path / "out-local").glob("batch-*")
    assert trained_stacks(local_dir) == {frozenset({0, 1})}
    for rec, d in zip(read_state(local_dir).entries, dirs):
        there = run_path(local_dir, rec.run_dir)
        for table in ("metrics.csv", "eval.csv"):
            assert without_wall(rows(there / table)) == without_wall(rows(d / table)), table
        final = json.loads((there / "summary.json").read_text())["final"]
        assert final == json.loads((d / "summary.json").read_text())["final"]

    again = runner.invoke(app, args)  # nothing left to do
    assert again.exit_code == 0, again.output
    assert "0 started now, 2 already done" in again.stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("batch-")) == sorted(
        Path(d).name for d in dirs)
