"""The losses the literature compares with cross-entropy, each with its closed-form gradient.

Registered into ``ce_lab.losses.registry`` when the package is imported (after ``classic``, so
their options follow the classic ones in a config's ``loss:`` section). Conventions, the same for
all five: p = softmax(z), t = onehot(y), C classes, and the loss is the **mean over the batch** of
a per-example loss; each per-example loss is written as its paper writes it:

- ``mse-logits`` (Hui & Belkin, ICLR 2021): (1/C) sum_j (z_j - t_j)^2 — their square loss with
  k = 1, M = 1 (the setting they use for few classes), whose 1/C makes it the mean over the
  batch and the classes. d/dz = 2 (z - t) / (B C).
- ``mae`` (Ghosh, Kumar & Sastry, AAAI 2017): ||p - t||_1 = sum_j |p_j - t_j| = 2 (1 - p_y),
  summed over the classes as in their definition (so mae = 2 gce(q=1)). d/dz = 2 p_y (p - t) / B.
- ``gce`` (Zhang & Sabuncu, NeurIPS 2018): (1 - p_y^q) / q, q in (0, 1] (q -> 0: ce; q = 1:
  mae / 2). p_y^q is exp(q log p_y), from log_softmax, so it neither underflows early nor leaves
  autograd a 0 * inf. d/dz = p_y^q (p - t) / B.
- ``ce-smooth`` (Szegedy et al. 2016; F.cross_entropy's label_smoothing): -sum_j s_j log p_j with
  s = (1 - eps) t + eps / C. d/dz = (p - s) / B.
- ``focal`` (Lin et al. 2017, without the alpha weight): -(1 - p_y)^gamma log p_y, 1 - p_y as
  -expm1(log p_y) (exact near p_y = 1). d/dz = [(1 - p_y)^gamma - gamma p_y (1 - p_y)^(gamma-1)
  log p_y] (p - t) / B, the second term taken as its limit 0 where p_y = 1.

Stacks (K, B, C): every function below is lifted by ``stacked``, which hands the core either a 2-D
slice or a stack laid out by ``apart``. Exact operations (+, -, *, /, abs, gather) may run dense;
every transcendental one (exp, expm1, pow) reads a ``spaced`` operand so that each slice is one
inner loop, exactly as in the 2-D call (ce_lab/losses/stacks.py says why); sums run over each
slice's own dims (``slice_sum``). So slice k is bit for bit the 2-D call on it, on a CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ce_lab.losses.registry import Float, LossOptions, gradient_of, register_loss
from ce_lab.losses.stacks import apart, one_hot, slice_numel, slice_sum, stacked, target_index

if TYPE_CHECKING:
    from torch import Tensor

    from ce_lab.config import LossConfig


class GceOptions(LossOptions):
    q: Float = Field(0.7, gt=0, le=1, description="gce's exponent q, in (0, 1]: 1 is mae / 2")


class SmoothingOptions(LossOptions):
    epsilon: Float = Field(0.1, ge=0, lt=1, description="ce-smooth's label smoothing, in [0, 1)")


class FocalOptions(LossOptions):
    gamma: Float = Field(2.0, ge=0, description="focal's focusing exponent (>= 0; 0 is ce)")


def spaced(x: Tensor) -> Tensor:
    """``x`` itself for a 2-D call, its ``apart`` copy for a stack: the operand of every
    transcendental op here (a differentiable copy, so autograd goes through it)."""
    return x if x.dim() == 2 else apart(x)


def _batch_mean(per_example: Tensor) -> Tensor:
    """(..., B, 1) per-example losses -> (...) their mean: one sum per slice, then / B."""
    return slice_sum(per_example) / per_example.shape[-2]


def _log_p(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """log softmax (..., B, C) and its target column log p_y (..., B, 1)."""
    import torch

    log_p = torch.log_softmax(logits, dim=-1)  # one row at a time, whatever the stack
    return log_p, log_p.gather(-1, target_index(logits, targets))


def _probs(log_p: Tensor) -> Tensor:
    import torch

    return torch.exp(spaced(log_p))


def one_minus_p_y(log_p_y: Tensor) -> Tensor:
    """1 - p_y from log p_y, as -expm1(log p_y): exact as p_y -> 1, where 1 - exp(log p_y) is 0."""
    import torch

    return torch.expm1(spaced(log_p_y)).neg()


def ce_direction(logits: Tensor, targets: Tensor, log_p: Tensor) -> tuple[Tensor, Tensor]:
    """(p - t) and p_y (..., B, 1): ce's gradient direction, which every loss of p_y scales by
    its own per-example factor, and the p_y of that factor (gathered before p - t is formed in
    place)."""
    probs = _probs(log_p)
    p_y = probs.gather(-1, target_index(logits, targets))
    return probs.sub_(one_hot(logits, targets)), p_y


def _value_of(terms):
    """A loss's value function from its ``terms(logits, targets, cfg)`` -> (loss, what its
    gradient reuses...): the loss alone, lifted to stacks. Value and closed form share one
    computation of the loss, so the logged loss is the evaluated one."""

    @stacked
    def value(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
        return terms(logits, targets, cfg)[:1]

    value.__name__ = value.__qualname__ = terms.__name__.strip("_").removesuffix("_terms")
    return value


# --- mse-logits --------------------------------------------------------------------------------

def _mse_logits_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    diff = logits - one_hot(logits, targets)
    return slice_sum(diff.square()) / slice_numel(diff), diff


register_loss(
    "mse-logits", _value_of(_mse_logits_terms),
    "squared error of the raw logits against the one-hot target, no sigmoid: (z - onehot(y))^2, "
    "mean over batch and classes",
    source="Hui & Belkin, ICLR 2021 (square loss, k = M = 1)", batched=True,
)


@gradient_of("mse-logits")
@stacked
def mse_logits_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, diff = _mse_logits_terms(logits, targets, cfg)
    # No squashing factor: the gradient grows with the error, however wrong the logit is
    return loss, diff * (2.0 / slice_numel(diff))


# --- mae and gce -------------------------------------------------------------------------------

def _mae_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor, Tensor]:
    log_p, _ = _log_p(logits, targets)
    probs = _probs(log_p)
    onehot = one_hot(logits, targets)
    # sum_j |p_j - t_j|, as written (it equals 2 (1 - p_y))
    loss = _batch_mean((probs - onehot).abs().sum(-1, keepdim=True))
    return loss, probs, onehot


register_loss(
    "mae", _value_of(_mae_terms),
    "mean absolute error of the softmax against the one-hot target: sum_j |softmax(z)_j - "
    "onehot(y)_j| = 2 (1 - p_y), mean over batch",
    source="Ghosh, Kumar & Sastry, AAAI 2017 (noise-tolerant)", batched=True,
)


@gradient_of("mae")
@stacked
def mae_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, probs, onehot = _mae_terms(logits, targets, cfg)
    p_y = probs.gather(-1, target_index(logits, targets))
    # d/dz 2 (1 - p_y) = 2 p_y (p - t): small where p_y is small, the robustness and the stall
    return loss, (probs - onehot).mul_(p_y * (2.0 / logits.shape[-2]))


def _gce_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor, Tensor]:
    import torch

    q = cfg.q
    log_p, log_p_y = _log_p(logits, targets)
    p_y_q = torch.exp(spaced(log_p_y * q))  # p_y^q
    return _batch_mean((1.0 - p_y_q) / q), log_p, p_y_q


register_loss(
    "gce", _value_of(_gce_terms),
    "generalized cross-entropy (1 - p_y^q) / q, p = softmax(z), mean over batch; between ce "
    "(q -> 0) and mae / 2 (q = 1), loss.q",
    source="Zhang & Sabuncu, NeurIPS 2018", options=GceOptions, batched=True,
)


@gradient_of("gce")
@stacked
def gce_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p, p_y_q = _gce_terms(logits, targets, cfg)
    grad = _probs(log_p).sub_(one_hot(logits, targets))
    return loss, grad.mul_(p_y_q).div_(logits.shape[-2])  # ce's gradient weighted by p_y^q


# --- ce-smooth ---------------------------------------------------------------------------------

def _ce_smooth_terms(logits: Tensor, targets: Tensor, cfg: LossConfig
                     ) -> tuple[Tensor, Tensor, Tensor]:
    eps = cfg.epsilon
    log_p, _ = _log_p(logits, targets)
    smoothed = one_hot(logits, targets).mul_(1.0 - eps).add_(eps / logits.shape[-1])
    return _batch_mean((smoothed * log_p).sum(-1, keepdim=True).neg_()), log_p, smoothed


register_loss(
    "ce-smooth", _value_of(_ce_smooth_terms),
    "cross-entropy against smoothed targets s = (1 - eps) onehot(y) + eps / C: "
    "-sum_j s_j log softmax(z)_j, mean over batch, loss.epsilon",
    source="Szegedy et al., CVPR 2016 (label smoothing); = F.cross_entropy(label_smoothing=eps)",
    options=SmoothingOptions, batched=True,
)


@gradient_of("ce-smooth")
@stacked
def ce_smooth_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p, smoothed = _ce_smooth_terms(logits, targets, cfg)
    return loss, _probs(log_p).sub_(smoothed).div_(logits.shape[-2])


# --- focal -------------------------------------------------------------------------------------

def _focal_terms(logits: Tensor, targets: Tensor, cfg: LossConfig):
    import torch

    gamma = cfg.gamma
    log_p, log_p_y = _log_p(logits, targets)
    one_minus = one_minus_p_y(log_p_y)
    weight = torch.pow(spaced(one_minus), gamma)  # (1 - p_y)^gamma
    return _batch_mean((weight * log_p_y).neg_()), log_p, log_p_y, one_minus, weight


register_loss(
    "focal", _value_of(_focal_terms),
    "focal loss -(1 - p_y)^gamma log p_y, p = softmax(z), mean over batch; gamma = 0 is ce, "
    "loss.gamma",
    source="Lin et al., ICCV 2017 (without the alpha weight)", options=FocalOptions,
    batched=True,
)


@gradient_of("focal")
@stacked
def focal_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    gamma = cfg.gamma
    loss, log_p, log_p_y, one_minus, weight = _focal_terms(logits, targets, cfg)
    direction, p_y = ce_direction(logits, targets, log_p)
    # d loss_i / d z = g (p - t), g = (1 - p_y)^gamma - gamma p_y (1 - p_y)^(gamma-1) log p_y;
    # where p_y = 1 the second term is 0 * inf in floats, its limit 0 (for every gamma >= 0)
    second = torch.pow(spaced(one_minus), gamma - 1.0).mul_(p_y).mul_(log_p_y).mul_(gamma)
    g = weight - torch.where(one_minus > 0, second, 0.0)
    return loss, direction.mul_(g).div_(logits.shape[-2])
