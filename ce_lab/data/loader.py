"""MNIST as tensors on the training device: parsed once, normalised once, moved once.

No PIL, no DataLoader: the whole set is a few hundred MB of float32 at most, so batches are
index slices of one ``randperm`` per epoch (the cifar10-airbench way).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.data.fetch import FetchReporter, ensure_mnist
from ce_lab.data.files import resolve_root
from ce_lab.data.idx import check_mnist_shape, read_idx
from ce_lab.data.noise import LabelNoise, corrupt_labels, subset_indices
from ce_lab.data.spec import MNIST, DatasetSpec
from ce_lab.errors import DataError

if TYPE_CHECKING:
    import torch

    from ce_lab.config import DataConfig

MNIST_MEAN = 0.1307  # of pixel / 255 over the training set
MNIST_STD = 0.3081


@dataclass(frozen=True)
class MnistTensors:
    """Normalised images (N, spec.n_inputs) float32 and labels (N,) int64 in 0..spec.n_classes-1,
    all on one device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    raw: Path  # the folder the IDX files came from
    verified: bool  # md5-checked against MNIST's (False with data.verify_md5=false)
    source: str  # "cache", or what fetched the files in this call
    spec: DatasetSpec = MNIST  # inputs per example and classes: what the model is sized from
    label_noise: LabelNoise | None = None  # what data.label_noise did to train_y (None: unknown)

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.val_x.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_x.shape[0])

    def describe(self) -> dict[str, Any]:
        """Plain values for a run's log or metadata."""
        return {
            "raw_dir": str(self.raw),
            "verified_md5": self.verified,
            "source": self.source,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "device": str(self.train_x.device),
            "normalise": {"mean": MNIST_MEAN, "std": MNIST_STD},
            "dataset": {"name": self.spec.name, "n_inputs": self.spec.n_inputs,
                        "n_classes": self.spec.n_classes},
            "label_noise": self.label_noise.to_dict() if self.label_noise else None,
        }


def _read_split(raw: Path, images: str, labels: str, spec: DatasetSpec = MNIST):
    import torch

    x = read_idx(raw / images)
    y = read_idx(raw / labels)
    check_mnist_shape(x, "images", images)
    check_mnist_shape(y, "labels", labels)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{raw}: {x.shape[0]} images in {images} but {y.shape[0]} labels")
    if x.shape[0] == 0:  # refused here, not at the end of a run that cannot be evaluated
        raise DataError(f"{raw / images}: no images (the IDX file holds 0); every split needs some")
    if x[0].size != spec.n_inputs:
        raise DataError(f"{images}: {x[0].size} values per image, {spec.name} has {spec.n_inputs}")
    if y.size and int(y.max()) >= spec.n_classes:
        raise DataError(f"{labels}: label {int(y.max())}, {spec.name} has {spec.n_classes} classes")
    # The arrays view read-only bytes; torch wants writable memory, hence one copy each here.
    return (torch.from_numpy(x.reshape(len(x), spec.n_inputs).copy()),
            torch.from_numpy(y.astype("int64")))


def _normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of ``n`` training images; the same for a seed on every device."""
    import torch

    if val_size >= n:
        raise DataError(f"data.val_size={val_size} leaves no training images "
                        f"(the training set has {n}); use a smaller data.val_size")
    perm = torch.randperm(n, generator=torch.Generator(device="cpu").manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def load_mnist(data_cfg: DataConfig, seed: int, device: torch.device | str,
               reporter: FetchReporter | None = None) -> MnistTensors:
    """MNIST resolved by ``data_cfg`` (cache, else fetch), split by ``seed``, on ``device``."""
    import torch

    found = ensure_mnist(resolve_root(data_cfg.root), download=data_cfg.download,
                         verify_md5=data_cfg.verify_md5, reporter=reporter)
    spec = MNIST
    train_x, train_y = _read_split(found.raw, "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   spec)
    test_x, test_y = _read_split(found.raw, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                 spec)
    train_idx, val_idx = split_indices(len(train_y), data_cfg.val_size, seed)
    subset = subset_indices(len(train_idx), data_cfg.train_size, seed)
    if subset is not None:
        train_idx = train_idx[subset]
    # Corrupted on the CPU (the generator lives there), training labels only.
    clean = train_y[train_idx]
    noisy, noise = corrupt_labels(clean, data_cfg.label_noise, data_cfg.label_noise_kind,
                                  spec.n_classes, seed)
    device = torch.device(device)
    # uint8 crosses to the device (4x fewer bytes than float32); normalisation happens there.
    train_x, test_x = train_x.to(device), test_x.to(device)
    train_y, test_y = train_y.to(device), test_y.to(device)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)
    return MnistTensors(
        train_x=_normalise(train_x[train_idx]),
        train_y=noisy.to(device),
        val_x=_normalise(train_x[val_idx]),
        val_y=train_y[val_idx],
        test_x=_normalise(test_x),
        test_y=test_y,
        raw=found.raw,
        verified=found.verified,
        source=found.source,
        spec=spec,
        label_noise=noise,
    )


def epoch_batches(n: int, batch_size: int, generator: torch.Generator,
                  device: torch.device | str) -> Iterator[torch.Tensor]:
    """Index tensors for one epoch: slices of one shuffled order; the last short batch is kept.

    ``generator`` must live on the CPU so the order for a seed is the same on every device.
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if generator.device.type != "cpu":
        raise ValueError("epoch_batches needs a CPU generator (same order on every device)")
    order = torch.randperm(n, generator=generator).to(device)  # one transfer per epoch
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
