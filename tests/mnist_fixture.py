"""A tiny, genuine, learnable MNIST for tests: real IDX files in torchvision's layout.

Each class lights its own 6x6 patch (a 2x5 grid of patches) over uniform noise, with a little
jitter, so a small MLP reaches > 90 % accuracy in a couple of epochs. The files are not the real
MNIST, so commands need ``--set data.verify_md5=false``; with only ``n_train`` training images,
``data.val_size`` must be smaller than that (the default, a twelfth, is; the tests fix 200), e.g.::

    def test_train(tiny_mnist):
        runner.invoke(app, ["train", "--set", f"data.root={tiny_mnist}",
                            "--set", "data.verify_md5=false", "--set", "data.val_size=200"])

Use it in any test file as the ``tiny_mnist`` fixture (registered in tests/conftest.py), or call
``write_tiny_mnist(path)`` for files of your own size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ce_lab.data.files import MNIST_FILES, MnistFile, md5_file, raw_dir
from ce_lab.data.idx import idx_bytes

TINY_TRAIN = 1200
TINY_TEST = 300
TINY_VAL_SIZE = 200  # a data.val_size that fits the tiny training set


def tiny_mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 28, 28) uint8 and labels (n,) uint8 with balanced classes."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 130, size=(n, 28, 28), dtype=np.uint8)  # background noise
    for i, c in enumerate(labels):
        row, col = 2 + 12 * (c // 5), 1 + 5 * (c % 5)  # 2 rows x 5 columns of patches
        dr, dc = rng.integers(-1, 2, size=2)  # jitter by up to one pixel
        r0, c0 = max(row + dr, 0), max(col + dc, 0)
        patch = images[i, r0:r0 + 6, c0:c0 + 6]
        patch[...] = rng.integers(110, 256, size=patch.shape, dtype=np.uint8)
    return images, labels


def write_tiny_mnist(root: Path, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST,
                     seed: int = 0) -> Path:
    """Write the four IDX files under ``root/MNIST/raw/`` and return ``root``."""
    root = Path(root)
    raw = raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y = tiny_mnist_arrays(n_train, seed)
    test_x, test_y = tiny_mnist_arrays(n_test, seed + 1)
    for name, array in (
        ("train-images-idx3-ubyte", train_x),
        ("train-labels-idx1-ubyte", train_y),
        ("t10k-images-idx3-ubyte", test_x),
        ("t10k-labels-idx1-ubyte", test_y),
    ):
        (raw / name).write_bytes(idx_bytes(array))
    return root


def tiny_table(root: Path) -> tuple[MnistFile, ...]:
    """MNIST's file table with the sizes and md5s of the files under ``root`` (for ``expected=``
    in ce_lab.data.fetch, so md5-checked paths can run on tiny files)."""
    raw = raw_dir(root)
    return tuple(MnistFile(f.name, f.kind, f.split, (raw / f.name).stat().st_size,
                           md5_file(raw / f.name)) for f in MNIST_FILES)


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """Root of a tiny MNIST (1200 train, 300 test images), shared by the session: read only."""
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny-mnist"))
