"""The data sets ce-lab knows by name (``data.name``): where each comes from, its files and sizes,
and its standard asymmetric label-noise map. Imports nothing heavy (the config reads it).

- ``mnist``, ``fashion-mnist``, ``kmnist``: four IDX files each, MNIST's shapes (60,000 + 10,000
  images of 28x28, 10 classes), cached in torchvision's layout ``ROOT/<folder>/raw/``;
- ``mnist1d``: Greydanus (2020), generated locally from templates (``ce_lab.data.mnist1d``);
- ``custom``: the user's own files (``data.path``); its shape is read from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ce_lab.data.files import MNIST_FILES, MnistFile

NAMES = ("mnist", "fashion-mnist", "kmnist", "mnist1d", "custom")
IDX_NAMES = ("mnist", "fashion-mnist", "kmnist")
VAL_FRACTION = 12  # data.val_size null: a twelfth of the training set (MNIST: 5,000 of 60,000)


def _files(md5s: tuple[str | None, ...]) -> tuple[MnistFile, ...]:
    """MNIST's file names, kinds and sizes with another set's md5s (None: not known)."""
    return tuple(MnistFile(f.name, f.kind, f.split, f.size, md5) for f, md5 in zip(MNIST_FILES, md5s))


@dataclass(frozen=True)
class IdxSet:
    """A set of four IDX files in MNIST's names and shapes."""

    name: str
    folder: str  # torchvision's class name, also its cache folder: ROOT/<folder>/raw/
    files: tuple[MnistFile, ...]  # md5 of the uncompressed files; None where none is published
    gz_md5: dict[str, str]  # torchvision's md5 of each downloaded .gz (what its download checks)
    system_dirs: tuple[Path, ...] = ()  # folders a system package installs the files into
    noise_map: dict[int, int] = field(default_factory=dict)  # data.label_noise_kind asym


# SCE (Wang et al., ICCV 2019) and APL (Ma et al., ICML 2020) corrupt MNIST with
# 7 -> 1, 2 -> 7, 5 <-> 6, 3 -> 8 (github.com/HanxunH/Active-Passive-Losses, dataset.py, MNISTNoisy).
MNIST_NOISE_MAP = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
# Zhang & Sabuncu, "Generalized Cross Entropy Loss ..." (NeurIPS 2018, arXiv:1805.07836), section 4,
# class-dependent noise on Fashion-MNIST: BOOT -> SNEAKER, SNEAKER -> SANDALS, PULLOVER -> SHIRT,
# COAT <-> DRESS; in Fashion-MNIST's class numbers (0 T-shirt, 1 trouser, 2 pullover, 3 dress,
# 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot): 9 -> 7, 7 -> 5, 2 -> 6, 4 <-> 3.
# Checked here only against a secondary summary (NLNL, Kim et al. 2019: "Boot -> Sneaker, Coat ->
# Dress, Pullover -> Shirt, ..."); the paper's full text could not be read on this machine.
FASHION_NOISE_MAP = {9: 7, 7: 5, 2: 6, 4: 3, 3: 4}

MNIST = IdxSet(
    "mnist", "MNIST", MNIST_FILES,
    {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
     "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
     "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    noise_map=MNIST_NOISE_MAP,
)
# Raw md5s: checked against Debian's dataset-fashion-mnist (recompressed .gz, the same content).
FASHION_MNIST = IdxSet(
    "fashion-mnist", "FashionMNIST",
    _files(("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965")),
    {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
     "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
     "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    noise_map=FASHION_NOISE_MAP,
)
# KMNIST's uncompressed md5s are published nowhere ce-lab could check them (torchvision keeps only
# the .gz sums, and the files could not be downloaded here): its cache is checked by IDX header and
# size, an import of the .gz files by their md5, and a run records the sums it read in meta.json.
KMNIST = IdxSet(
    "kmnist", "KMNIST", _files((None, None, None, None)),
    {"train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
     "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
     "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
     "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134"},
)
IDX_SETS: dict[str, IdxSet] = {s.name: s for s in (MNIST, FASHION_MNIST, KMNIST)}

# Training examples of the named sets whose size is known before loading (None: read from files).
N_TRAIN: dict[str, int | None] = {"mnist": 60_000, "fashion-mnist": 60_000, "kmnist": 60_000,
                                  "mnist1d": 4_000, "custom": None}
N_CLASSES: dict[str, int | None] = {"mnist": 10, "fashion-mnist": 10, "kmnist": 10,
                                    "mnist1d": 10, "custom": None}


def default_val_size(n_train: int) -> int:
    return n_train // VAL_FRACTION


def default_noise_map(name: str) -> dict[int, int] | None:
    """The literature's asymmetric map for a set, None where it has none (give data.noise_map)."""
    s = IDX_SETS.get(name)
    return dict(s.noise_map) if s is not None and s.noise_map else None
