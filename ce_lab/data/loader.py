"""MNIST as tensors on the training device: parsed once, normalised once, moved once.

No PIL, no DataLoader: the whole set is a few hundred MB of float32 at most, so batches are
index slices of one ``randperm`` per epoch (the cifar10-airbench way).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.data.fetch import FetchReporter
from ce_lab.data.noise import VAL_NOISE_SEED_OFFSET, LabelNoise, corrupt_labels, subset_indices
from ce_lab.data.read import MNIST_MEAN, MNIST_STD, read_arrays, read_idx_set
from ce_lab.data.spec import MNIST, DatasetSpec
from ce_lab.errors import DataError

if TYPE_CHECKING:
    import torch

    from ce_lab.config import DataConfig


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
    files: dict[str, str] | None = None  # file (or array set) -> md5 of what was read
    normalise: tuple[float, float] = (MNIST_MEAN, MNIST_STD)  # (x - mean) / std, x in [0, 1] for uint8
    generator: dict[str, Any] | None = None  # mnist1d: the generator's arguments

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
            "normalise": {"mean": self.normalise[0], "std": self.normalise[1]},
            "dataset": {"name": self.spec.name, "n_inputs": self.spec.n_inputs,
                        "n_classes": self.spec.n_classes},
            "label_noise": self.label_noise.to_dict() if self.label_noise else None,
        }

    def meta(self) -> dict[str, Any]:
        """What meta.json says of the data set: its name and shape, the splits, where it came from
        and the md5 of every file read (MNIST-1D: of its arrays, and the generator's arguments)."""
        out = {"name": self.spec.name, "n_inputs": self.spec.n_inputs,
               "n_classes": self.spec.n_classes, "n_train": self.n_train, "n_val": self.n_val,
               "n_test": self.n_test, "source": self.source, "verified_md5": self.verified,
               "path": str(self.raw), "md5": self.files}
        if self.generator is not None:
            out["generator"] = self.generator
        return out


def _normalise(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels to [0, 1] first; any input then (x - mean) / std, in a new tensor."""
    import torch

    out = x.float().div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)
    return out.sub_(mean).div_(std)


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
    """The data set ``data_cfg`` names (MNIST by default: the cache, else a fetch), split by
    ``seed``, on ``device``."""
    import torch

    from ce_lab.data.sets import IDX_NAMES
    from ce_lab.data.settings import check_map, data_problem, resolved_val_size
    from ce_lab.errors import ConfigError

    if problem := data_problem(data_cfg):
        raise ConfigError(problem)
    if data_cfg.name in IDX_NAMES:
        found = read_idx_set(data_cfg, reporter)
    else:
        found = read_arrays(data_cfg)
    spec = found.spec
    train_x, train_y, test_x, test_y = found.tensors
    val_size = resolved_val_size(data_cfg, len(train_y))
    train_idx, val_idx = split_indices(len(train_y), val_size, seed)
    subset = subset_indices(len(train_idx), data_cfg.train_size, seed)
    if subset is not None:
        train_idx = train_idx[subset]
    noise_map = data_cfg.asym_map() if data_cfg.label_noise_kind == "asym" else None
    if noise_map is not None:
        try:
            check_map(noise_map, spec.n_classes, spec.name)
        except ValueError as e:
            raise DataError(str(e)) from None
    # Corrupted on the CPU (the generator lives there): training labels, and validation labels
    # with data.val_noise.
    clean = train_y[train_idx]
    noisy, noise = corrupt_labels(clean, data_cfg.label_noise, data_cfg.label_noise_kind,
                                  spec.n_classes, seed, noise_map)
    val_y = train_y[val_idx]
    if data_cfg.val_noise:  # tuning on noisy labels, as without clean ones; test stays clean
        val_y, val_noise = corrupt_labels(val_y, data_cfg.label_noise, data_cfg.label_noise_kind,
                                          spec.n_classes, seed, noise_map, VAL_NOISE_SEED_OFFSET)
        noise = replace(noise, val=val_noise)
    device = torch.device(device)
    # uint8 crosses to the device (4x fewer bytes than float32); normalisation happens there.
    train_x, test_x = train_x.to(device), test_x.to(device)
    train_y, test_y = train_y.to(device), test_y.to(device)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)
    mean, std = found.normalise
    return MnistTensors(
        train_x=_normalise(train_x[train_idx], mean, std),
        train_y=noisy.to(device),
        val_x=_normalise(train_x[val_idx], mean, std),
        val_y=val_y.to(device),
        test_x=_normalise(test_x, mean, std),
        test_y=test_y,
        raw=found.raw,
        verified=found.verified,
        source=found.source,
        spec=spec,
        label_noise=noise,
        files=found.files,
        normalise=(mean, std),
        generator=found.generator,
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
