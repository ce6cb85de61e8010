"""ce-lab batch --executor ray on a local Ray instance (skipped only where Ray is not installed;
CI installs the ray extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ce_lab.batch.store import read_state, run_path
from ce_lab.cli.app import app
from tests.mnist_fixture import TINY_VAL_SIZE

ray = pytest.importorskip("ray")
runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_batch_runs_as_ray_tasks(local_ray, tiny_mnist, tmp_path):
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
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (batch_dir,) = out.glob("batch-*")
    state = read_state(batch_dir)
    assert state.executor == "ray"
    assert [e.status for e in state.entries] == ["completed", "completed"]
    dirs = [run_path(batch_dir, e.run_dir).resolve() for e in state.entries]
    assert len(set(dirs)) == 2 and all(d.parent == out.resolve() for d in dirs)
    for d, loss in zip(dirs, ("ce", "hinge")):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["loss"] == loss and summary["status"] == "completed"
        assert json.loads((d / "meta.json").read_text())["group"] == state.batch_id
    assert (batch_dir / "report.md").is_file()

    again = runner.invoke(app, args)  # nothing left to do
    assert again.exit_code == 0, again.output
    assert "0 started now, 2 already done" in again.stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("batch-")) == sorted(
        Path(d).name for d in dirs)
