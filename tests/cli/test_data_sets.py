"""Data sets beyond MNIST through the CLI: ``data import|status|fetch --dataset``, and training
on MNIST-1D and Fashion-MNIST with their defaults (meta.json names the set and its md5s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from tests.helpers import runner

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
SMALL = ["--set", "model.hidden=[16]", "--set", "log.progress=none", "--device", "cpu",
         "--set", "train.max_steps=5", "--set", "train.epochs=1", "--set", "log.checkpoint=false"]


def _meta(out: Path) -> dict:
    (run,) = [p for p in out.iterdir() if (p / "meta.json").exists()]
    return json.loads((run / "meta.json").read_text())


def test_a_plain_mnist1d_train_works_with_its_defaults(tmp_path):
    result = runner.invoke(app, ["train", "--set", "data.name=mnist1d",
                                 "--set", f"out_dir={tmp_path / 'runs'}", *SMALL])
    assert result.exit_code == 0, result.output
    data = _meta(tmp_path / "runs")["data"]
    assert (data["name"], data["n_inputs"], data["n_classes"]) == ("mnist1d", 40, 10)
    assert (data["n_train"], data["n_val"], data["n_test"]) == (3667, 333, 1000)
    assert data["generator"]["seed"] == 42 and len(data["md5"]["arrays"]) == 32


def test_an_explicit_split_that_cannot_work_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", "--set", "data.name=mnist1d", "--set",
                                 "data.val_size=5000", *SMALL])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: data.val_size=5000 leaves no training images "
                                     "(mnist1d has 4000); use a smaller data.val_size")


def test_an_unknown_dataset_is_a_usage_error():
    result = runner.invoke(app, ["data", "status", "--dataset", "cifar"])
    assert result.exit_code == 2
    assert "unknown dataset 'cifar'" in result.stderr and "fashion-mnist" in result.stderr


def test_a_set_that_is_not_cached_and_not_fetched_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", "--set", "data.name=kmnist", "--set",
                                 "data.download=false", *SMALL])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "kmnist not found" in lines[0]
    assert "ce-lab data import PATH --dataset kmnist" in lines[0]


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_import_status_and_train(tmp_path):
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["data", "import", str(DEBIAN_FASHION), "--dataset",
                                 "fashion-mnist", "--data-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert f"imported 4 md5-verified files into {cache / 'FashionMNIST' / 'raw'}" in result.stdout
    status = runner.invoke(app, ["data", "status", "--dataset", "fashion-mnist",
                                 "--data-dir", str(cache)])
    assert status.exit_code == 0 and status.stdout.count("verified") == 4
    mnist = runner.invoke(app, ["data", "import", str(DEBIAN_FASHION), "--data-dir", str(cache)])
    assert mnist.exit_code == 1 and "is not MNIST's train-images-idx3-ubyte" in mnist.stderr
    result = runner.invoke(app, ["train", "--set", "data.name=fashion-mnist", "--data-dir",
                                 str(cache), "--set", "data.train_size=500",
                                 "--set", f"out_dir={tmp_path / 'runs'}", *SMALL])
    assert result.exit_code == 0, result.output
    data = _meta(tmp_path / "runs")["data"]
    assert data["name"] == "fashion-mnist" and data["verified_md5"] is True
    assert data["md5"]["t10k-labels-idx1-ubyte"] == "15d484375f8d13e6eb1aabb0c3f46965"


def test_a_custom_npz_trains_a_model_sized_from_it_and_is_left_alone(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.normal(size=(90, 3, 4)).astype(np.float32), y_train=np.arange(90) % 5,
             x_test=rng.normal(size=(20, 3, 4)).astype(np.float32), y_test=np.arange(20) % 5)
    before = path.read_bytes()
    result = runner.invoke(app, ["train", "--set", "data.name=custom", "--set", f"data.path={path}",
                                 "--set", f"out_dir={tmp_path / 'runs'}", *SMALL])
    assert result.exit_code == 0, result.output
    data = _meta(tmp_path / "runs")["data"]
    assert (data["name"], data["n_inputs"], data["n_classes"]) == ("custom", 12, 5)
    assert (data["n_train"], data["n_val"], data["n_test"]) == (83, 7, 20)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "mine.npz", "runs"]
    bad = runner.invoke(app, ["train", "--set", "data.name=custom", "--set",
                              f"data.path={tmp_path / 'none.npz'}", *SMALL])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (f"error: data.path {tmp_path / 'none.npz'} does not exist (a "
                                  "folder of four IDX files or an .npz)")
