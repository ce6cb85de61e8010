"""The loss registry: every classification loss ce-lab can train with, registered in one place.

A loss is data: a name, a function ``(logits, targets, cfg) -> scalar``, and a one-line description
with its formula. Adding a loss is one function plus one ``_register`` line.

A loss may also give its gradient in closed form, ``(logits, targets, cfg) -> (loss, d loss /
d logits)``, which training then uses instead of autograd: on a CPU, one call into autograd's
engine costs more than the whole closed form for a batch of 64.
The pipelines that exist to show what autograd does with them (``nll-manual``,
``double-softmax``, ``log-softmax-ce``) have none, on purpose. tests/test_losses.py checks every
closed form against autograd of the loss function and against float64 references.

torch is imported inside the functions on purpose: the CLI, ``--help`` and config validation list
these names without paying torch's one-second import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    grad: Callable[..., tuple[Tensor, Tensor]] | None = None  # (loss, d loss / d logits)


LOSSES: dict[str, LossSpec] = {}


def _register(name: str, description: str, *, squashes_sigmoid: bool = False):
    def wrap(fn):
        LOSSES[name] = LossSpec(name, fn, description, squashes_sigmoid)
        return fn

    return wrap


def _gradient_of(name: str):
    """Registers the decorated function as the closed-form gradient of loss ``name``."""

    def wrap(grad_fn):
        LOSSES[name] = replace(LOSSES[name], grad=grad_fn)
        return grad_fn

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


def _onehot(logits: Tensor, targets: Tensor) -> Tensor:
    # Not F.one_hot, which on a CPU checks the targets' range with two reductions read back to
    # Python: in the training loop that made it four times slower than this scatter.
    return logits.new_zeros(logits.shape).scatter_(-1, targets.unsqueeze(-1), 1.0)


def make_loss_grad(cfg: LossConfig) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """The closed-form (loss, d loss / d logits) of ``cfg``'s loss, or None where autograd does it."""
    grad = get_loss(cfg.name).grad
    return None if grad is None else partial(grad, cfg=cfg)


@_register("ce", "cross-entropy on the logits: -log softmax(z)_y  (F.cross_entropy)")
def cross_entropy(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets)


@_gradient_of("ce")
def cross_entropy_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch
    import torch.nn.functional as F

    # d/dz mean_i -log softmax(z_i)_{y_i} = (softmax(z) - onehot(y)) / B
    log_p = torch.log_softmax(logits, dim=-1)
    loss = F.nll_loss(log_p, targets)
    return loss, log_p.exp_().sub_(_onehot(logits, targets)).div_(logits.shape[0])


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


@_gradient_of("mse")
def mse_sigmoid_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    s = torch.sigmoid(logits)
    diff = s - _onehot(logits, targets)
    per_example = logits.numel() if cfg.mse_reduction == "mean" else logits.shape[0]
    loss = diff.square().sum() / per_example
    # d/dz (s - t)^2 = 2 (s - t) s (1 - s): the factor s (1 - s) <= 1/4 is the saturation
    return loss, torch.ops.aten.sigmoid_backward(diff * (2.0 / per_example), s)


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


def _hinge_grad(logits: Tensor, targets: Tensor, margin: float, p: int) -> tuple[Tensor, Tensor]:
    b, c = logits.shape
    z_target = logits.gather(-1, targets.unsqueeze(-1))
    # Active terms m - z_y + z_j > 0 for j != y (the target's own term is m > 0: masked out)
    slack = (logits - z_target + margin).clamp_min_(0).scatter_(-1, targets.unsqueeze(-1), 0.0)
    loss = (slack if p == 1 else slack.square()).sum() / (b * c)
    # d/dz_j of each active term is p * slack^(p-1); d/dz_y is minus their sum
    per_term = (slack > 0).to(logits.dtype) if p == 1 else slack * 2.0
    grad = per_term.scatter_(-1, targets.unsqueeze(-1), per_term.sum(-1, keepdim=True).neg())
    return loss, grad.div_(b * c)


@_gradient_of("hinge")
def hinge_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 1)


@_gradient_of("hinge-sq")
def hinge_squared_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 2)


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


@_gradient_of("bce")
def bce_one_vs_rest_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch
    import torch.nn.functional as F

    onehot = _onehot(logits, targets)
    loss = F.binary_cross_entropy_with_logits(logits, onehot)
    return loss, (torch.sigmoid(logits) - onehot).div_(logits.numel())


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
