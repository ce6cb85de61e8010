"""The loss registry: every classification loss ce-lab can train with, registered in one place.

A loss is data: a name, a function ``(logits, targets, cfg) -> scalar``, and a one-line description
with its formula. Adding a loss is one function plus one ``_register`` line.

torch is imported inside the functions on purpose: the CLI, ``--help`` and config validation list
these names without paying torch's one-second import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from ce_lab.config import LossConfig

NUM_CLASSES = 10


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[..., Tensor]
    description: str
    squashes_sigmoid: bool = False  # outputs pass through a sigmoid: log the saturated fraction


LOSSES: dict[str, LossSpec] = {}


def _register(name: str, description: str, *, squashes_sigmoid: bool = False):
    def wrap(fn):
        LOSSES[name] = LossSpec(name, fn, description, squashes_sigmoid)
        return fn

    return wrap


def loss_names() -> list[str]:
    return list(LOSSES)


def get_loss(name: str) -> LossSpec:
    from ce_lab.errors import UsageError

    try:
        return LOSSES[name]
    except KeyError:
        raise UsageError(
            f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}"
        ) from None


def make_loss(cfg: LossConfig) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss of ``cfg`` as a function of (logits, integer targets) to a scalar."""
    return partial(get_loss(cfg.name).fn, cfg=cfg)


@_register("ce", "cross-entropy on the logits: -log softmax(z)_y  (F.cross_entropy)")
def cross_entropy(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets)


@_register(
    "mse",
    "squared error of sigmoid(z) against the one-hot target: (sigmoid(z) - onehot(y))^2, "
    "mean over batch and classes (loss.mse_reduction=sum: summed over classes)",
    squashes_sigmoid=True,
)
def mse_sigmoid(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch
    import torch.nn.functional as F

    onehot = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    sq = (torch.sigmoid(logits) - onehot).pow(2)
    # 'mean' divides by the number of classes too, which shrinks every gradient 10x; 'sum' does not.
    return sq.mean() if cfg.mse_reduction == "mean" else sq.sum(-1).mean()


@_register(
    "hinge",
    "multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j) / C  (F.multi_margin_loss, p=1)",
)
def hinge(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.multi_margin_loss(logits, targets, p=1, margin=cfg.hinge_margin)


@_register(
    "hinge-sq",
    "squared multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j)^2 / C  "
    "(F.multi_margin_loss, p=2)",
)
def hinge_squared(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.multi_margin_loss(logits, targets, p=2, margin=cfg.hinge_margin)


@_register(
    "nll-manual",
    "torch.log(softmax(z)) then F.nll_loss, in that order on purpose: "
    "log(0) = -inf once softmax underflows",
)
def nll_manual(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch
    import torch.nn.functional as F

    # Never clamp: the -inf/NaN this pipeline produces is the finding ce-lab exists to show.
    return F.nll_loss(torch.log(F.softmax(logits, dim=-1)), targets)


@_register(
    "bce",
    "one-vs-rest binary cross-entropy: -[onehot log sigmoid(z) + (1-onehot) log(1-sigmoid(z))], "
    "mean over batch and classes",
    squashes_sigmoid=True,
)
def bce_one_vs_rest(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    onehot = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, onehot)


@_register(
    "double-softmax",
    "softmax probabilities fed into F.cross_entropy (softmax applied twice, the common mistake); "
    "floor log(1 + 9/e) = 1.4612 with 10 classes",
)
def double_softmax(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(F.softmax(logits, dim=-1), targets)


@_register(
    "log-softmax-ce",
    "log_softmax output fed into F.cross_entropy: harmless, log_softmax is idempotent (equals ce)",
)
def log_softmax_ce(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(F.log_softmax(logits, dim=-1), targets)
