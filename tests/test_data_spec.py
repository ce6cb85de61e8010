"""The dataset spec the loader's tensors carry (ce_lab.data.spec)."""

from __future__ import annotations

import dataclasses

import pytest

from ce_lab.config import DataConfig
from ce_lab.data.loader import load_mnist
from ce_lab.data.spec import MNIST, DatasetSpec
from tests.mnist_fixture import TINY_VAL_SIZE


def test_mnist_spec():
    assert (MNIST.name, MNIST.n_inputs, MNIST.n_classes) == ("mnist", 784, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        MNIST.n_classes = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="n_classes >= 2"):
        DatasetSpec("one-class", 4, 1)


def test_loaded_tensors_carry_the_spec_and_agree_with_it(tiny_mnist):
    data = load_mnist(DataConfig(root=tiny_mnist, verify_md5=False, val_size=TINY_VAL_SIZE,
                                 download=False), seed=0, device="cpu")
    assert data.spec == MNIST
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y),
                 (data.test_x, data.test_y)):
        assert x.shape[1] == data.spec.n_inputs
        assert 0 <= int(y.min()) and int(y.max()) < data.spec.n_classes
    assert data.describe()["dataset"] == {"name": "mnist", "n_inputs": 784, "n_classes": 10}
