"""Three later alternatives to ce: poly1, squentropy and the sparsemax loss, each with its
closed-form gradient.

Registered after ``literature`` and before ``robust`` (the package imports them in that order).
Conventions as in ``ce_lab.losses.literature``: p = softmax(z), t = onehot(y), C classes, the loss
the **mean over the batch** of the per-example loss, and the same lifting to stacks.

- ``poly1`` (Leng et al., ICLR 2022): -log p_y + eps (1 - p_y), the first polynomial term of ce's
  expansion in (1 - p_y) given the weight 1 + eps. d/dz = (1 + eps p_y) (p - t) / B.
- ``squentropy`` (Hui, Belkin & Wright, ICML 2023): -log p_y + (1 / (C - 1)) sum_{j != y} z_j^2,
  ce plus the average square loss of the logits of the incorrect classes (target 0), with no
  option. d/dz = (p - t + 2 z' / (C - 1)) / B, z' the logits with the target's set to 0.
- ``sparsemax`` (Martins & Astudillo, ICML 2016): with p = sparsemax(z) = max(z - tau, 0), the
  Euclidean projection of z onto the simplex, and S its support, -z_y + 1/2 sum_{j in S} (z_j^2 -
  tau^2) + 1/2. It is computed as tau - z_y + 1/2 sum_j p_j^2 + 1/2, the same function (the loss
  is unchanged by z -> z - tau, which makes z_j - tau = p_j on S), where squares of logits of
  10^4 would cancel in float32. d/dz = (sparsemax(z) - t) / B. Its probabilities, for
  calibration, are sparsemax(z) (``probabilities=``): exact zeros outside S.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ce_lab.losses.literature import (
    _batch_mean,
    _log_p,
    _probs,
    _value_of,
    ce_direction,
    one_minus_p_y,
)
from ce_lab.losses.registry import Float, LossOptions, gradient_of, register_loss
from ce_lab.losses.stacks import one_hot, stacked, target_index

if TYPE_CHECKING:
    from torch import Tensor

    from ce_lab.config import LossConfig


class PolyOptions(LossOptions):
    epsilon_poly: Float = Field(1.0, ge=-1, description="poly1's weight eps of (1 - p_y) (>= -1, "
                                "where the loss stays monotone in p_y; 0 is ce)")


# --- poly1 -------------------------------------------------------------------------------------

def _poly1_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:

    log_p, log_p_y = _log_p(logits, targets)
    return _batch_mean(one_minus_p_y(log_p_y) * cfg.epsilon_poly - log_p_y), log_p


register_loss(
    "poly1", _value_of(_poly1_terms),
    "Poly-1: cross-entropy plus eps (1 - p_y), -log p_y + eps (1 - p_y), p = softmax(z), mean over "
    "batch; eps = 0 is ce, loss.epsilon_poly",
    source="Leng et al., ICLR 2022 (PolyLoss)", options=PolyOptions, batched=True,
)


@gradient_of("poly1")
@stacked
def poly1_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p = _poly1_terms(logits, targets, cfg)
    direction, p_y = ce_direction(logits, targets, log_p)
    weight = p_y.mul_(cfg.epsilon_poly).add_(1.0)
    return loss, direction.mul_(weight).div_(logits.shape[-2])


# --- squentropy --------------------------------------------------------------------------------

def _squentropy_terms(logits: Tensor, targets: Tensor, cfg: LossConfig
                      ) -> tuple[Tensor, Tensor, Tensor]:
    log_p, log_p_y = _log_p(logits, targets)
    others = logits.scatter(-1, target_index(logits, targets), 0.0)  # z_j for j != y, 0 at y
    square = others.square().sum(-1, keepdim=True) / (logits.shape[-1] - 1)
    return _batch_mean(square - log_p_y), log_p, others


register_loss(
    "squentropy", _value_of(_squentropy_terms),
    "cross-entropy plus the average square loss of the incorrect classes' logits: -log p_y + "
    "sum_{j!=y} z_j^2 / (C - 1), mean over batch",
    source="Hui, Belkin & Wright, ICML 2023 (Cut your losses with squentropy)", batched=True,
)


@gradient_of("squentropy")
@stacked
def squentropy_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p, others = _squentropy_terms(logits, targets, cfg)
    grad = _probs(log_p).sub_(one_hot(logits, targets)).add_(others * (2.0 / (logits.shape[-1] - 1)))
    return loss, grad.div_(logits.shape[-2])


# --- sparsemax ---------------------------------------------------------------------------------

def sparsemax(logits: Tensor) -> Tensor:
    """sparsemax(z) over the last dim: max(z - tau, 0), tau chosen so that the row sums to 1."""
    return _sparsemax(logits)[0]


def _sparsemax(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(sparsemax(z), tau, z) for z shifted by its row's max, which changes neither sparsemax nor
    the loss: sort decreasing, the support is the k with 1 + k z_(k) > sum_{j<=k} z_(j) (a prefix
    of the sorted order), tau = (sum over it - 1) / its size.

    The shift keeps p = z - tau exact where it matters: the support lies within 1 of the max, so
    its shifted logits are exact (Sterbenz) and small, where an unshifted tau of 1e4 would carry
    float32's rounding of 1e-3 into every p. The max is taken as a constant for autograd: the
    functions are exactly invariant under the shift, so every derivative is unchanged by it."""
    import torch

    z = z - z.amax(-1, keepdim=True).detach()
    ordered = torch.sort(z, dim=-1, descending=True).values
    cumulative = ordered.cumsum(-1)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    size = (ordered * k + 1.0 > cumulative).sum(-1, keepdim=True)  # >= 1: the max's 1 + 0 > 0
    tau = (cumulative.gather(-1, size - 1) - 1.0) / size.to(z.dtype)
    return (z - tau).clamp_min(0.0), tau, z


def _sparsemax_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    probs, tau, shifted = _sparsemax(logits)
    z_y = shifted.gather(-1, target_index(logits, targets))
    per = (tau - z_y) + probs.square().sum(-1, keepdim=True) * 0.5 + 0.5
    return _batch_mean(per), probs


register_loss(
    "sparsemax", _value_of(_sparsemax_terms),
    "sparsemax loss -z_y + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2, sparsemax(z) = max(z - tau, 0) "
    "with support S; mean over batch; calibration on sparsemax(z), not softmax",
    source="Martins & Astudillo, ICML 2016 (sparsemax)", batched=True, probabilities=sparsemax,
)


@gradient_of("sparsemax")
@stacked
def sparsemax_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, probs = _sparsemax_terms(logits, targets, cfg)
    return loss, probs.sub(one_hot(logits, targets)).div_(logits.shape[-2])
