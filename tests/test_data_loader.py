"""MNIST tensors for training: split, normalisation, batches (ce_lab.data.loader)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ce_lab.config import DataConfig
from ce_lab.data.files import raw_dir
from ce_lab.data.loader import epoch_batches, load_mnist
from ce_lab.errors import DataError
from tests.mnist_fixture import TINY_TEST, TINY_TRAIN, TINY_VAL_SIZE


def cfg(root, **kw) -> DataConfig:
    return DataConfig(root=root, verify_md5=False, val_size=TINY_VAL_SIZE, download=False, **kw)


def raw_arrays(root, name):
    """The pixels/labels read straight from the IDX bytes, as an independent reference."""
    data = (raw_dir(root) / name).read_bytes()
    return np.frombuffer(data, np.uint8, offset=16 if "images" in name else 8)


def test_load_shapes_types_and_normalisation(tiny_mnist):
    m = load_mnist(cfg(tiny_mnist), seed=0, device="cpu")
    assert (m.n_train, m.n_val, m.n_test) == (TINY_TRAIN - TINY_VAL_SIZE, TINY_VAL_SIZE, TINY_TEST)
    assert m.train_x.shape == (TINY_TRAIN - TINY_VAL_SIZE, 784)
    assert m.train_x.dtype == torch.float32 and m.train_y.dtype == torch.int64
    assert m.describe()["n_val"] == TINY_VAL_SIZE and m.describe()["verified_md5"] is False
    pixels = raw_arrays(tiny_mnist, "t10k-images-idx3-ubyte").reshape(-1, 784)
    want = (pixels.astype(np.float64) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(m.test_x.numpy(), want, rtol=0, atol=1e-5)
    labels = raw_arrays(tiny_mnist, "t10k-labels-idx1-ubyte")
    np.testing.assert_array_equal(m.test_y.numpy(), labels)


def test_split_is_a_seeded_partition(tiny_mnist):
    a = load_mnist(cfg(tiny_mnist), seed=0, device="cpu")
    b = load_mnist(cfg(tiny_mnist), seed=0, device="cpu")
    c = load_mnist(cfg(tiny_mnist), seed=1, device="cpu")
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)
    # train + val together are exactly the training images, each once
    labels = raw_arrays(tiny_mnist, "train-labels-idx1-ubyte")
    both = torch.cat([a.train_y, a.val_y]).bincount(minlength=10)
    assert torch.equal(both, torch.from_numpy(np.bincount(labels, minlength=10)))
    rows = {tuple(r) for r in torch.cat([a.train_x, a.val_x]).numpy().round(4).tolist()}
    assert len(rows) == TINY_TRAIN


def test_val_size_too_large_is_a_data_error(tiny_mnist):
    with pytest.raises(DataError, match="val_size=1200 leaves no training images"):
        load_mnist(cfg(tiny_mnist).model_copy(update={"val_size": TINY_TRAIN}), 0, "cpu")


def test_missing_data_with_download_off(tmp_path):
    with pytest.raises(DataError, match="data.download=false"):
        load_mnist(cfg(tmp_path / "nothing"), 0, "cpu")


def test_epoch_batches_cover_every_index_once_and_keep_the_last_partial():
    g = torch.Generator().manual_seed(7)
    batches = list(epoch_batches(10, 4, g, "cpu"))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches), torch.randperm(10, generator=torch.Generator()
                                                          .manual_seed(7)))
    g2 = torch.Generator().manual_seed(7)
    again = list(epoch_batches(10, 4, g2, "cpu"))
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))
    nxt = torch.cat(list(epoch_batches(10, 4, g2, "cpu")))  # the next epoch reshuffles
    assert sorted(nxt.tolist()) == list(range(10)) and not torch.equal(nxt, torch.cat(again))
