"""The classic losses: ce, mse (of the sigmoid), bce, hinge and hinge-sq, and the pipelines that
exist to show what autograd does with them.

The pipelines (``nll-manual``, ``double-softmax``, ``log-softmax-ce``) have no closed form, on
purpose; every other loss here registers its closed-form gradient too, for 2-D logits and stacks
alike (``ce_lab.losses.registry`` says why, ``ce_lab.losses.stacks`` how). The value functions of
ce, mse and bce take stacks the same way (``batched=True``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ce_lab.losses.registry import Float, LossOptions, gradient_of, register
from ce_lab.losses.stacks import (
    apart_like,
    nll_mean,
    one_hot,
    slice_numel,
    slice_sum,
    stacked,
    target_index,
)

if TYPE_CHECKING:
    from torch import Tensor

    from ce_lab.config import LossConfig


class MseOptions(LossOptions):
    mse_reduction: Literal["mean", "sum"] = Field(
        "mean", description="mean over batch and classes | sum over classes, mean over batch")


class HingeOptions(LossOptions):
    hinge_margin: Float = Field(1.0, gt=0, description="the margin m (> 0)")


@register("ce", "cross-entropy on the logits: -log softmax(z)_y  (F.cross_entropy)", batched=True)
@stacked
def cross_entropy(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    import torch

    return (nll_mean(torch.log_softmax(logits, dim=-1), targets),)  # = F.cross_entropy per slice


@gradient_of("ce")
@stacked
def cross_entropy_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    # d/dz mean_i -log softmax(z_i)_{y_i} = (softmax(z) - onehot(y)) / B
    log_p = torch.log_softmax(logits, dim=-1)  # one row at a time, whatever the stack
    loss = nll_mean(log_p, targets)
    probs = torch.exp(log_p, out=log_p if logits.dim() == 2 else apart_like(logits))
    return loss, probs.sub_(one_hot(logits, targets)).div_(logits.shape[-2])


@register(
    "mse",
    "squared error of sigmoid(z) against the one-hot target: (sigmoid(z) - onehot(y))^2, "
    "mean over batch and classes (loss.mse_reduction=sum: summed over classes)",
    squashes_sigmoid=True, options=MseOptions, batched=True,
)
@stacked
def mse_sigmoid(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    import torch

    sq = (torch.sigmoid(logits) - one_hot(logits, targets)).pow(2)
    # 'mean' divides by the number of classes too, which shrinks every gradient C-fold; 'sum' not.
    # (On a CPU, a mean is the sum divided by the count: these are F.mse_loss's numbers per slice.)
    if cfg.mse_reduction == "mean":
        return (slice_sum(sq) / slice_numel(sq),)
    return (sq.sum(-1).sum(-1) / sq.shape[-2],)


@gradient_of("mse")
@stacked
def mse_sigmoid_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    s = torch.sigmoid(logits, out=apart_like(logits))
    diff = s - one_hot(logits, targets)
    per_example = slice_numel(logits) if cfg.mse_reduction == "mean" else logits.shape[-2]
    loss = slice_sum(diff.square()) / per_example
    # d/dz (s - t)^2 = 2 (s - t) s (1 - s): the factor s (1 - s) <= 1/4 is the saturation
    return loss, torch.ops.aten.sigmoid_backward(diff * (2.0 / per_example), s)


@register(
    "hinge",
    "multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j) / C  (F.multi_margin_loss, p=1)",
    options=HingeOptions, source="Weston & Watkins, ESANN 1999 (the sum over j != y)",
)
def hinge(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.multi_margin_loss(logits, targets, p=1, margin=cfg.hinge_margin)


@register(
    "hinge-sq",
    "squared multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j)^2 / C  "
    "(F.multi_margin_loss, p=2)",
    options=HingeOptions,
)
def hinge_squared(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.multi_margin_loss(logits, targets, p=2, margin=cfg.hinge_margin)


def _hinge_grad(logits: Tensor, targets: Tensor, margin: float, p: int) -> tuple[Tensor, Tensor]:
    b, c = logits.shape[-2:]
    index = target_index(logits, targets)
    z_target = logits.gather(-1, index)
    # Active terms m - z_y + z_j > 0 for j != y (the target's own term is m > 0: masked out)
    slack = (logits - z_target + margin).clamp_min_(0).scatter_(-1, index, 0.0)
    loss = slice_sum(slack if p == 1 else slack.square()) / (b * c)
    # d/dz_j of each active term is p * slack^(p-1); d/dz_y is minus their sum
    per_term = (slack > 0).to(logits.dtype) if p == 1 else slack * 2.0
    grad = per_term.scatter_(-1, index, per_term.sum(-1, keepdim=True).neg())
    return loss, grad.div_(b * c)


@gradient_of("hinge")
@stacked
def hinge_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 1)


@gradient_of("hinge-sq")
@stacked
def hinge_squared_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 2)


@register(
    "nll-manual",
    "torch.log(softmax(z)) then F.nll_loss, in that order on purpose: "
    "log(0) = -inf once softmax underflows",
)
def nll_manual(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch
    import torch.nn.functional as F

    # Never clamp: the -inf/NaN this pipeline produces is the finding ce-lab exists to show.
    return F.nll_loss(torch.log(F.softmax(logits, dim=-1)), targets)


@register(
    "bce",
    "one-vs-rest binary cross-entropy: -[onehot log sigmoid(z) + (1-onehot) log(1-sigmoid(z))], "
    "mean over batch and classes",
    squashes_sigmoid=True, batched=True,
)
@stacked
def bce_one_vs_rest(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    return (_bce_mean(logits, one_hot(logits, targets)),)


def _bce_mean(logits: Tensor, onehot: Tensor) -> Tensor:
    import torch.nn.functional as F

    if logits.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits, onehot)
    # its mean (on a CPU) is its elementwise loss summed, then divided
    each = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    return slice_sum(each) / slice_numel(logits)


@gradient_of("bce")
@stacked
def bce_one_vs_rest_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    onehot = one_hot(logits, targets)
    loss = _bce_mean(logits, onehot)
    probs = torch.sigmoid(logits, out=apart_like(logits))
    return loss, probs.sub_(onehot).div_(slice_numel(logits))


@register(
    "double-softmax",
    "softmax probabilities fed into F.cross_entropy (softmax applied twice, the common mistake); "
    "floor log(1 + 9/e) = 1.4612 with 10 classes",
)
def double_softmax(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(F.softmax(logits, dim=-1), targets)


@register(
    "log-softmax-ce",
    "log_softmax output fed into F.cross_entropy: harmless, log_softmax is idempotent (equals ce)",
)
def log_softmax_ce(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(F.log_softmax(logits, dim=-1), targets)

