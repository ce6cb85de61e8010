"""The data sets beyond MNIST (ce_lab/data/sets.py, mnist1d.py, custom.py, idx_sets.py): their
defaults, MNIST-1D's generator and cache, a custom set read from the user's files, Fashion-MNIST
from Debian's copy, KMNIST without published md5s, and stacks per data set."""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from ce_lab.config import check_trains, resolve_config
from ce_lab.data import mnist1d
from ce_lab.data.fetch import import_folder
from ce_lab.data.files import md5_file
from ce_lab.data.idx import idx_bytes
from ce_lab.data.idx_sets import ensure_idx_set, raw_folder
from ce_lab.data.loader import load_mnist
from ce_lab.data.sets import FASHION_MNIST, KMNIST
from ce_lab.errors import ConfigError, DataError, MissingDependency, OwnDataError
from ce_lab.training.fusion import plan_stacks

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed")


# --- defaults that fit each set -------------------------------------------------------------------

def test_val_size_defaults_to_a_twelfth_of_each_set(tmp_path):
    assert resolve_config(None, []).data.val_size is None
    cfg = check_trains(resolve_config(None, ["data.name=mnist1d"]))
    from ce_lab.data.settings import resolved_val_size

    assert resolved_val_size(cfg.data, 60_000) == 5000  # MNIST's split, as before
    assert resolved_val_size(cfg.data, 4000) == 333


@pytest.mark.parametrize("sets,text", [
    (["data.name=mnist1d", "data.val_size=5000"],
     "data.val_size=5000 leaves no training images (mnist1d has 4000)"),
    (["data.name=mnist1d", "data.train_size=3700"],
     "data.train_size=3700 is more than the 3667 training images mnist1d leaves"),
    (["data.val_size=60000"], "data.val_size=60000 leaves no training images (mnist has 60000)"),
    (["data.name=custom"], "data.name custom needs data.path"),
])
def test_splits_that_cannot_work_are_refused_before_a_run(sets, text):
    cfg = resolve_config(None, sets)  # each --set alone is fine: they are checked together
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        check_trains(cfg)


def test_runs_on_different_sets_never_share_a_stack(tmp_path):
    cfgs = [resolve_config(None, [f"data.name={n}", f"loss.name={loss}"])
            for n in ("mnist", "mnist1d") for loss in ("ce", "mse")]
    assert plan_stacks(cfgs) == [[0, 1], [2, 3]]


# --- MNIST-1D ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated():
    return mnist1d.generate()


def test_mnist1d_is_the_papers_shape_and_the_same_every_time(generated):
    assert generated["x_train"].shape == (4000, 40) and generated["x_test"].shape == (1000, 40)
    assert generated["x_train"].dtype == np.float32 and generated["y_train"].dtype == np.int64
    assert sorted(np.unique(generated["y_train"])) == list(range(10))
    state = np.random.get_state()[1].copy(), random.getstate()
    again = mnist1d.generate()  # a fixed seed: the same arrays, byte for byte
    assert mnist1d.fingerprint(again) == mnist1d.fingerprint(generated)
    # the generator's global seeding is undone
    assert (np.random.get_state()[1] == state[0]).all() and random.getstate() == state[1]
    other = mnist1d.generate({**mnist1d.ARGS, "seed": 7})
    assert mnist1d.fingerprint(other) != mnist1d.fingerprint(generated)


def test_mnist1d_is_cached_by_its_arguments_and_loads_as_a_run_sees_it(tmp_path, generated,
                                                                       monkeypatch):
    monkeypatch.setattr(mnist1d, "generate", lambda args=mnist1d.ARGS: generated)
    arrays, path, source = mnist1d.load(tmp_path)
    assert source == "generated" and path == tmp_path / "MNIST1D" / path.name
    assert path.name == f"mnist1d-{mnist1d.cache_key(mnist1d.ARGS)}.npz"
    monkeypatch.setattr(mnist1d, "generate", None)  # from now on only the cache can answer
    cached, _, source = mnist1d.load(tmp_path)
    assert source == "cache" and mnist1d.fingerprint(cached) == mnist1d.fingerprint(generated)
    cfg = check_trains(resolve_config(None, ["data.name=mnist1d", f"data.root={tmp_path}"]))
    data = load_mnist(cfg.data, 0, "cpu")
    assert (data.spec.name, data.spec.n_inputs, data.spec.n_classes) == ("mnist1d", 40, 10)
    assert (data.n_train, data.n_val, data.n_test) == (3667, 333, 1000)
    meta = data.meta()
    assert meta["generator"] == mnist1d.ARGS and meta["md5"] == {
        "arrays": mnist1d.fingerprint(generated)}
    path.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="not a usable MNIST-1D cache"):
        mnist1d.load(tmp_path)


def test_mnist1d_without_the_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # import fails as if not installed
    with pytest.raises(MissingDependency, match=r'pip install "ce-lab\[mnist1d\]"'):
        mnist1d.generate()


# --- custom -------------------------------------------------------------------------------------------

def _write_idx_folder(folder: Path, n_train=60, n_test=20, gz=False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 5, 6), dtype=np.uint8),
              "train-labels-idx1-ubyte": (np.arange(n_train) % 3).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 5, 6), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": (np.arange(n_test) % 3).astype(np.uint8)}
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def _custom(path, *extra):
    return check_trains(resolve_config(None, ["data.name=custom", f"data.path={path}",
                                              "data.val_size=10", *extra])).data


@pytest.mark.parametrize("gz", [False, True])
def test_a_custom_idx_folder_sizes_the_model_and_is_never_written(tmp_path, gz):
    folder = _write_idx_folder(tmp_path / "mine", gz=gz)
    before = {p.name: md5_file(p) for p in folder.iterdir()}
    data = load_mnist(_custom(folder), 0, "cpu")
    assert (data.spec.name, data.spec.n_inputs, data.spec.n_classes) == ("custom", 30, 3)
    assert (data.n_train, data.n_val, data.n_test) == (50, 10, 20)
    assert data.source == "files" and set(data.files) == {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte"}
    assert {p.name: md5_file(p) for p in folder.iterdir()} == before  # nothing added or changed
    assert abs(float(data.train_x.mean())) < 0.2  # normalised by the set's own statistics


def test_a_custom_npz(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "set.npz"
    np.savez(path, x_train=rng.normal(size=(40, 7)).astype(np.float32),
             y_train=np.arange(40) % 4, x_test=rng.normal(size=(8, 7)), y_test=np.arange(8) % 4)
    data = load_mnist(_custom(path, "data.label_noise=0.25"), 0, "cpu")
    assert (data.spec.n_inputs, data.spec.n_classes) == (7, 4)
    assert data.label_noise.changed == 8  # floor(0.25 * 30 + 0.5)
    assert data.files == {"set.npz": md5_file(path)}


@pytest.mark.parametrize("make,text", [
    (lambda p: np.savez(p / "s.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4, int)),
     "no x_test, y_test"),
    (lambda p: np.savez(p / "s.npz", x_train=np.zeros((4, 2)), y_train=np.arange(4) - 1,
                        x_test=np.zeros((2, 2)), y_test=np.zeros(2, int)),
     "labels are classes 0 .. C-1, found -1"),
    (lambda p: np.savez(p / "s.npz", x_train=np.zeros((4, 2)), y_train=np.arange(4),
                        x_test=np.zeros((2, 3)), y_test=np.zeros(2, int)),
     "test inputs (3,) differ"),
    (lambda p: (p / "s.npz").write_bytes(b"garbage"), "not a usable .npz"),
])
def test_bad_custom_files_are_one_line_naming_the_file(tmp_path, make, text):
    make(tmp_path)
    with pytest.raises(OwnDataError, match=str(tmp_path / "s.npz").replace(".", r"\.")) as e:
        load_mnist(_custom(tmp_path / "s.npz"), 0, "cpu")
    assert text in str(e.value) and "\n" not in str(e.value)


def test_a_custom_folder_missing_a_file(tmp_path):
    folder = _write_idx_folder(tmp_path / "mine")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(OwnDataError, match="has no t10k-labels-idx1-ubyte"):
        load_mnist(_custom(folder), 0, "cpu")


# --- Fashion-MNIST and KMNIST ----------------------------------------------------------------------

@needs_debian_fashion
def test_debians_recompressed_fashion_mnist_matches_the_raw_md5s(tmp_path):
    for f in FASHION_MNIST.files:
        assert md5_file(DEBIAN_FASHION / f"{f.name}.gz") != FASHION_MNIST.gz_md5[f.name]
        with gzip.open(DEBIAN_FASHION / f"{f.name}.gz") as g:
            import hashlib

            assert hashlib.md5(g.read()).hexdigest() == f.md5
    found = ensure_idx_set("fashion-mnist", tmp_path)  # the system copy, before any download
    assert found.source == f"system copy {DEBIAN_FASHION}" and found.verified
    assert found.raw == raw_folder(tmp_path, FASHION_MNIST) == tmp_path / "FashionMNIST" / "raw"
    cfg = check_trains(resolve_config(None, ["data.name=fashion-mnist", f"data.root={tmp_path}"]))
    data = load_mnist(cfg.data, 0, "cpu")
    assert (data.n_train, data.n_val, data.n_test) == (55_000, 5000, 10_000)
    assert data.meta()["md5"]["train-images-idx3-ubyte"] == "f4a8712d7a061bf5bd6d2ca38dc4d50a"
    assert data.normalise == pytest.approx((0.2860, 0.3530), abs=5e-4)  # the published values


def test_fashion_import_refuses_mnist_shaped_files_of_another_set(tmp_path, tiny_mnist):
    with pytest.raises(DataError, match="is not fashion-mnist's train-images-idx3-ubyte"):
        import_folder(tiny_mnist / "MNIST" / "raw", tmp_path, FASHION_MNIST.files,
                      raw=raw_folder(tmp_path, FASHION_MNIST), what="fashion-mnist",
                      gz_md5=FASHION_MNIST.gz_md5)
    assert not (tmp_path / "FashionMNIST").exists()


def _kmnist_shaped(folder: Path, gz: bool) -> Path:
    folder.mkdir()
    for f in KMNIST.files:
        n = 60_000 if f.split == "train" else 10_000
        a = (np.zeros((n, 28, 28), np.uint8) if f.kind == "images"
             else (np.arange(n) % 10).astype(np.uint8))
        data = idx_bytes(a)
        (folder / (f"{f.name}.gz" if gz else f.name)).write_bytes(
            gzip.compress(data, 1) if gz else data)
    return folder


def test_kmnist_without_published_md5s(tmp_path):
    plain = _kmnist_shaped(tmp_path / "plain", gz=False)
    written = import_folder(plain, tmp_path / "cache", KMNIST.files,
                            raw=raw_folder(tmp_path / "cache", KMNIST), what="kmnist",
                            gz_md5=KMNIST.gz_md5)  # no md5 to check: IDX header and size
    assert [p.name for p in written] == [f.name for f in KMNIST.files]
    found = ensure_idx_set("kmnist", tmp_path / "cache", download=False)
    assert found.source == "cache" and found.verified is False
    cached = raw_folder(tmp_path / "cache", KMNIST) / "t10k-labels-idx1-ubyte"
    cached.write_bytes(idx_bytes((np.arange(9_999) % 10).astype(np.uint8)))  # a valid IDX, short
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte 10007 bytes, expected 10008"):
        ensure_idx_set("kmnist", tmp_path / "cache", download=False)
    gz = _kmnist_shaped(tmp_path / "gz", gz=True)  # a .gz is checked by torchvision's .gz md5
    with pytest.raises(DataError, match="is not kmnist's train-images-idx3-ubyte.gz"):
        import_folder(gz, tmp_path / "other", KMNIST.files, raw=tmp_path / "other" / "raw",
                      what="kmnist", gz_md5=KMNIST.gz_md5)
    (plain / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DataError, match="17 bytes, expected 10008; nothing was imported"):
        import_folder(plain, tmp_path / "third", KMNIST.files, raw=tmp_path / "third" / "raw",
                      what="kmnist", gz_md5=KMNIST.gz_md5)


def test_an_unfetchable_set_is_one_line_saying_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as e:
        ensure_idx_set("kmnist", tmp_path, download=False)
    msg = str(e.value)
    assert "\n" not in msg and "kmnist not found" in msg
    assert "ce-lab data import PATH --dataset kmnist" in msg


def test_a_comparison_over_data_sets_groups_by_data_set(tmp_path):
    from ce_lab.comparison.build import build_table
    from ce_lab.runs.record import load_run
    from tests.run_factory import make_run

    records = [load_run(make_run(tmp_path, loss, seed, final_val_acc=acc,
                                 overrides={"data.name": name, "data.val_size": 300}))
               for name, acc in (("mnist", 0.97), ("mnist1d", 0.6))
               for loss in ("ce", "mse") for seed in (0, 1)]
    table = build_table(records)
    assert table.group_by == ["loss", "data.name"]
    assert sorted(r.label for r in table.rows) == [
        "ce data.name=mnist", "ce data.name=mnist1d", "mse data.name=mnist", "mse data.name=mnist1d"]
    assert all(len(r.records) == 2 for r in table.rows)
