"""Reading a data set into CPU tensors, before it is split: the IDX sets from their cache (fetched
when needed), MNIST-1D from its generator's cache, a custom set from the user's files. Each comes
with its spec, where it came from, the md5 of what was read and how its inputs are normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.data.files import md5_bytes, resolve_root
from ce_lab.data.idx import check_mnist_shape, parse_idx, read_idx_bytes
from ce_lab.data.spec import MNIST, DatasetSpec
from ce_lab.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ce_lab.config import DataConfig
    from ce_lab.data.fetch import FetchReporter

MNIST_MEAN = 0.1307  # of pixel / 255 over the training set
MNIST_STD = 0.3081


@dataclass(frozen=True)
class Found:
    tensors: tuple  # train_x, train_y, test_x, test_y on the CPU; x (N, n_inputs), y int64
    spec: DatasetSpec
    raw: Path  # the folder or file read
    verified: bool  # matched published md5s
    source: str  # "cache", what fetched it, "generated" or "files"
    files: dict[str, str]  # name -> md5 of what was read
    normalise: tuple[float, float]
    generator: dict[str, Any] | None = None


def _read_split(raw: Path, images: str, labels: str, spec: DatasetSpec, sums: dict[str, str],
                known: dict[str, str | None]):
    import torch

    arrays = []
    for name, kind in ((images, "images"), (labels, "labels")):
        data = read_idx_bytes(raw / name)
        a = parse_idx(data, str(raw / name))
        check_mnist_shape(a, kind, name)
        sums[name] = known.get(name) or md5_bytes(data)  # verified: the md5 it was checked against
        arrays.append(a)
    x, y = arrays
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{raw}: {x.shape[0]} images in {images} but {y.shape[0]} labels")
    if x.shape[0] == 0:  # refused here, not at the end of a run that cannot be evaluated
        raise DataError(f"{raw / images}: no images (the IDX file holds 0); every split needs some")
    if y.size and int(y.max()) >= spec.n_classes:
        raise DataError(f"{labels}: label {int(y.max())}, {spec.name} has {spec.n_classes} classes")
    # The arrays view read-only bytes; torch wants writable memory, hence one copy each here.
    return (torch.from_numpy(x.reshape(len(x), spec.n_inputs).copy()),
            torch.from_numpy(y.astype("int64")))


def _pixel_stats(train_x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of pixel / 255 over the whole training file (float64)."""
    x = train_x.double().div_(255.0)
    return float(x.mean()), float(x.std())


def read_idx_set(data_cfg: DataConfig, reporter: FetchReporter | None = None) -> Found:
    from ce_lab.data.idx_sets import ensure_idx_set
    from ce_lab.data.sets import IDX_SETS

    found = ensure_idx_set(data_cfg.name, resolve_root(data_cfg.root), download=data_cfg.download,
                           verify_md5=data_cfg.verify_md5, reporter=reporter)
    spec = DatasetSpec(data_cfg.name, MNIST.n_inputs, MNIST.n_classes)
    known = {f.name: f.md5 for f in IDX_SETS[data_cfg.name].files} if found.verified else {}
    sums: dict[str, str] = {}
    train = _read_split(found.raw, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", spec,
                        sums, known)
    test = _read_split(found.raw, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", spec, sums,
                       known)
    # MNIST keeps its published constants (bit for bit what every earlier run used); another set
    # is normalised by its own training file's statistics.
    stats = (MNIST_MEAN, MNIST_STD) if data_cfg.name == "mnist" else _pixel_stats(train[0])
    return Found((*train, *test), spec, found.raw, found.verified, found.source, sums, stats)


def _as_tensors(arrays: dict[str, np.ndarray], spec: DatasetSpec) -> tuple:
    import numpy as np
    import torch

    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x = x.reshape(len(x), spec.n_inputs)
        x = x.astype(np.uint8 if x.dtype == np.uint8 else np.float32, copy=True)
        out += [torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))]
    return tuple(out)


def _float_stats(x: torch.Tensor) -> tuple[float, float]:
    if x.dtype.is_floating_point:
        x64 = x.double()
        std = float(x64.std())
        return float(x64.mean()), std if std > 0 else 1.0
    return _pixel_stats(x)


def read_arrays(data_cfg: DataConfig) -> Found:
    """MNIST-1D (generated, cached under the data root) or a custom set (``data.path``)."""
    if data_cfg.name == "mnist1d":
        from ce_lab.data import mnist1d

        arrays, path, source = mnist1d.load(resolve_root(data_cfg.root))
        spec = DatasetSpec("mnist1d", n_inputs=arrays["x_train"].shape[1], n_classes=10)
        files = {"arrays": mnist1d.fingerprint(arrays)}
        tensors = _as_tensors(arrays, spec)
        return Found(tensors, spec, path, False, source, files, _float_stats(tensors[0]),
                     generator=dict(mnist1d.ARGS))
    from ce_lab.data import custom

    arrays, files, spec = custom.load(data_cfg.path)
    tensors = _as_tensors(arrays, spec)
    return Found(tensors, spec, Path(data_cfg.path).expanduser(), False, "files", files,
                 _float_stats(tensors[0]))
