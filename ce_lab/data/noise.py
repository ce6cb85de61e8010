"""Label corruption of the training split (and, with ``data.val_noise``, of the validation split),
and the training subset it may be applied to.

Both draw from their own CPU generators, seeded from the run's seed plus an offset of their own, so
they are independent of the weight-init stream (the seed itself), the validation split (the seed)
and the batch order (the seed + ``ce_lab.training.loop.BATCH_SEED_OFFSET``): a run without noise and
without a subset draws nothing here and is bit for bit what it was before these keys existed.
Every member of a stack shares ``data.*`` (ce_lab/training/fusion.py) and so the same corruption.
``data.val_noise`` corrupts the validation labels the same way (rate, kind, map) from a stream of
its own (``VAL_NOISE_SEED_OFFSET``), so turning it on leaves the training labels as they were; test
labels are never corrupted.

The count is exact: of ``n`` labels, ``changed_count(fraction, n)`` = floor(fraction * n + 0.5)
change (round half up, not Python's round-half-to-even), each to a class different from its own:

- ``symmetric``: drawn uniformly from the other C - 1 classes (offset 1..C-1 added mod C);
- ``pairflip``: class c becomes (c + 1) mod C;
- ``asym``: class-dependent, as the noisy-label literature corrupts MNIST and Fashion-MNIST
  (``ce_lab.data.sets``: SCE/APL's 7 -> 1, 2 -> 7, 5 <-> 6, 3 -> 8; Zhang & Sabuncu's map) or by a
  map of one's own: of each source class's n_c labels exactly changed_count(fraction, n_c) become
  its target, and the classes the map leaves out keep their labels. The papers' code draws each
  label with probability ``fraction`` (APL's MNIST) or takes int(fraction * n_c) (SCE, APL's
  CIFAR-10); the count here is that expectation rounded half up, as for the other kinds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ce_lab.errors import DataError

if TYPE_CHECKING:
    import torch

NOISE_SEED_OFFSET = 2_000_029  # apart from the batch order's 1_000_003 and from the seed itself
SUBSET_SEED_OFFSET = 3_000_017
VAL_NOISE_SEED_OFFSET = 4_000_037  # data.val_noise: the validation labels' own stream
KINDS = ("symmetric", "pairflip", "asym")


@dataclass(frozen=True)
class LabelNoise:
    """What was done to the training labels; ``meta.json`` holds ``to_dict()``."""

    fraction: float
    kind: str
    changed: int  # labels that now differ from the true ones
    n_train: int  # training labels in all
    noise_map: dict[int, int] | None = None  # asym: source class -> target class
    per_class: dict[int, int] | None = None  # asym: labels changed of each source class
    # data.val_noise: what the same noise did to the validation labels (None: they stay clean)
    val: LabelNoise | None = None

    def to_dict(self) -> dict:
        out = {"fraction": self.fraction, "kind": self.kind, "changed": self.changed,
               "n_train": self.n_train}
        if self.noise_map is not None:  # JSON keys are text: "7": 1
            out["map"] = {str(a): b for a, b in self.noise_map.items()}
            out["changed_per_class"] = {str(a): n for a, n in (self.per_class or {}).items()}
        if self.val is not None:  # absent without data.val_noise: meta.json as it was before
            out["val"] = {"changed": self.val.changed, "n_val": self.val.n_train}
            if self.val.per_class is not None:
                out["val"]["changed_per_class"] = {str(a): n for a, n in self.val.per_class.items()}
        return out


def changed_count(fraction: float, n: int) -> int:
    """Labels that change: fraction * n rounded half up (0.25 of 10 -> 3, never more than n)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"label noise must be in [0, 1), got {fraction}")
    return min(n, math.floor(fraction * n + 0.5))


def _generator(seed: int, offset: int) -> torch.Generator:
    import torch

    # Generators take a 64-bit seed; the run's seed may be up to 2**63 - 1, so wrap the sum.
    return torch.Generator(device="cpu").manual_seed((seed + offset) % 2**64)


def corrupt_labels(labels: torch.Tensor, fraction: float, kind: str, n_classes: int,
                   seed: int, noise_map: dict[int, int] | None = None,
                   offset: int = NOISE_SEED_OFFSET) -> tuple[torch.Tensor, LabelNoise]:
    """A corrupted copy of ``labels`` (CPU int64) and what changed. Fraction 0: the same tensor,
    and no random number is drawn. ``noise_map``: asym's {source: target} classes. ``offset``:
    the stream, added to the seed (``VAL_NOISE_SEED_OFFSET`` for the validation labels)."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown label noise kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if kind == "asym":
        if not noise_map:
            raise ValueError("label noise kind asym needs a class map {source: target}")
        return _asym(labels, fraction, dict(sorted(noise_map.items())), seed, offset)
    n = int(labels.shape[0])
    k = changed_count(fraction, n)
    if k == 0:
        return labels, LabelNoise(fraction, kind, 0, n)
    gen = _generator(seed, offset)
    which = torch.randperm(n, generator=gen)[:k]
    old = labels[which]
    if kind == "symmetric":
        shift = torch.randint(1, n_classes, (k,), generator=gen, dtype=labels.dtype)
    else:
        shift = torch.ones(k, dtype=labels.dtype)
    out = labels.clone()
    out[which] = (old + shift) % n_classes
    return out, LabelNoise(fraction, kind, int((out != labels).sum()), n)


def _asym(labels: torch.Tensor, fraction: float, noise_map: dict[int, int],
          seed: int, offset: int) -> tuple[torch.Tensor, LabelNoise]:
    """Of each source class (in class order, from one generator), exactly changed_count(fraction,
    n_c) of its labels, drawn without replacement, become the map's target. Sources are chosen
    from the clean labels, so 5 <-> 6 swaps two disjoint sets."""
    import torch

    out = labels.clone()
    per_class = {}
    gen = _generator(seed, offset) if fraction > 0 else None
    for source, target in noise_map.items():
        where = (labels == source).nonzero().flatten()
        k = changed_count(fraction, int(where.numel()))
        per_class[source] = k
        if k:
            chosen = where[torch.randperm(int(where.numel()), generator=gen)[:k]]
            out[chosen] = target
    if not any(per_class.values()):
        out = labels  # nothing changed: the same tensor, as for the other kinds
    changed = int((out != labels).sum())
    return out, LabelNoise(fraction, "asym", changed, int(labels.shape[0]), noise_map, per_class)


def subset_indices(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of ``size`` of ``n`` training examples, drawn by seed; None for all."""
    import torch

    if size is None:
        return None
    if size > n:
        raise DataError(f"data.train_size={size} is more than the {n} training images left "
                        "after data.val_size; use a smaller data.train_size")
    return torch.randperm(n, generator=_generator(seed, SUBSET_SEED_OFFSET))[:size].sort().values
