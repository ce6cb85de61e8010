"""The noisy-label losses of the literature: sce, nce-rce and nce-mae (ce or its normalised form
plus a bounded "passive" term) and taylor-ce (ce's series, cut), each with its closed-form gradient.

Registered last, after ``recent`` (their options come last in a config's ``loss:`` section).
Conventions as in ``ce_lab.losses.literature``: p = softmax(z), t = onehot(y), C classes, the loss
the **mean over the batch** of the per-example loss written as its paper writes it, and the same
lifting to stacks (``stacked``; transcendental ops read a ``spaced`` operand).

- ``sce`` (Wang et al., ICCV 2019): alpha ce + beta rce, rce = -sum_k p_k log q_k with q the one-hot
  target and log 0 taken as A = log 1e-4 (their code clamps the one-hot vector to 1e-4), so
  rce = -A (1 - p_y). d/dz = (alpha - A beta p_y) (p - t) / B. Their code also clamps p to 1e-7
  inside rce, which changes the value by less than 1e-5 and is left out: the formula is the paper's.
- ``nce-rce`` and ``nce-mae`` (Ma et al., ICML 2020, active + passive): alpha nce + beta rce (as
  above) or beta mae, nce = (-log p_y) / (-sum_k log p_k). Their mae is their code's reduced one,
  1 - p_y (half the sum_k |p_k - t_k| of ce-lab's ``mae``). With S = -sum_k log p_k,
  d nce/dz = (p - t) / S - nce (C p - 1) / S.
- ``taylor-ce`` (Feng et al., IJCAI 2020): sum_{k=1}^{t} (1 - p_y)^k / k, ce's Taylor series in
  p_y about 1 cut at order t. d/dz = p_y sum_{k=0}^{t-1} (1 - p_y)^k (p - t) / B.

Every 1 - p_y is -expm1(log p_y), exact as p_y -> 1, and the integer powers of taylor-ce are
products (exact operations), so the only transcendental ops are log_softmax, exp and expm1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, Strict, model_validator

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

LOG_ZERO = math.log(1e-4)  # A, rce's log 0: Wang et al.'s and Ma et al.'s code clamp q to 1e-4


class _Weights(LossOptions):
    @model_validator(mode="after")
    def _not_both_zero(self):
        alpha, beta = (getattr(self, k) for k in type(self).model_fields)
        if alpha == 0 and beta == 0:
            raise ValueError("alpha and beta are both 0: the loss would be 0 everywhere")
        return self


class SceOptions(_Weights):
    sce_alpha: Float = Field(0.1, ge=0, description="sce's weight of ce (Wang et al.'s CIFAR-10 "
                             "value; their MNIST value is 0.01)")
    sce_beta: Float = Field(1.0, ge=0, description="sce's weight of rce (1.0 on MNIST and "
                            "CIFAR-10)")


class AplOptions(_Weights):
    apl_alpha: Float = Field(1.0, ge=0, description="nce-rce's and nce-mae's weight of nce "
                             "(Ma et al.: 1 on MNIST and CIFAR-10)")
    apl_beta: Float = Field(1.0, ge=0, description="nce-rce's and nce-mae's weight of rce or mae "
                            "(Ma et al.: 1 on CIFAR-10, 10 on MNIST)")


class TaylorOptions(LossOptions):
    t: Annotated[int, Strict()] = Field(2, ge=1, le=1000, description="taylor-ce's order t "
                                        "(an integer >= 1; t = 1 is mae / 2)")


# --- sce ---------------------------------------------------------------------------------------

def _sce_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    log_p, log_p_y = _log_p(logits, targets)
    per = log_p_y * -cfg.sce_alpha + one_minus_p_y(log_p_y) * (-LOG_ZERO * cfg.sce_beta)
    return _batch_mean(per), log_p


register_loss(
    "sce", _value_of(_sce_terms),
    "symmetric cross-entropy alpha ce + beta rce, rce = -sum_k p_k log onehot(y)_k with log 0 = "
    "log 1e-4, i.e. -log(1e-4) (1 - p_y); mean over batch, loss.sce_alpha, loss.sce_beta",
    source="Wang et al., ICCV 2019 (symmetric cross entropy)", options=SceOptions, batched=True,
)


@gradient_of("sce")
@stacked
def sce_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p = _sce_terms(logits, targets, cfg)
    direction, p_y = ce_direction(logits, targets, log_p)
    weight = p_y.mul_(-LOG_ZERO * cfg.sce_beta).add_(cfg.sce_alpha)  # ce's 1, rce's -A p_y
    return loss, direction.mul_(weight).div_(logits.shape[-2])


# --- nce-rce and nce-mae -----------------------------------------------------------------------

def _nce(log_p: Tensor, log_p_y: Tensor) -> tuple[Tensor, Tensor]:
    """nce (..., B, 1) and its normaliser S = -sum_k log p_k (>= C log C > 0)."""
    norm = log_p.sum(-1, keepdim=True).neg_()
    return log_p_y.neg() / norm, norm


def _apl_terms(passive_scale: float):
    """The terms of alpha nce + beta passive, passive = passive_scale (1 - p_y)."""

    def terms(logits: Tensor, targets: Tensor, cfg: LossConfig):
        log_p, log_p_y = _log_p(logits, targets)
        nce, norm = _nce(log_p, log_p_y)
        per = nce * cfg.apl_alpha + one_minus_p_y(log_p_y) * (passive_scale * cfg.apl_beta)
        return _batch_mean(per), log_p, nce, norm

    return terms


def _nce_rce_terms(logits: Tensor, targets: Tensor, cfg: LossConfig):
    return _apl_terms(-LOG_ZERO)(logits, targets, cfg)


def _nce_mae_terms(logits: Tensor, targets: Tensor, cfg: LossConfig):
    return _apl_terms(1.0)(logits, targets, cfg)


def _apl_grad(terms, passive_scale: float, logits: Tensor, targets: Tensor, cfg: LossConfig):
    loss, log_p, nce, norm = terms(logits, targets, cfg)
    probs = _probs(log_p)
    p_y = probs.gather(-1, target_index(logits, targets))
    direction = probs - one_hot(logits, targets)
    c = logits.shape[-1]
    # d nce/dz = (p - t) / S - nce (C p - 1) / S; d passive/dz = scale p_y (p - t)
    outer = p_y.mul_(passive_scale * cfg.apl_beta).add_(cfg.apl_alpha / norm)
    grad = direction.mul_(outer).sub_(probs.mul_(c).sub_(1.0).mul_(nce * cfg.apl_alpha / norm))
    return loss, grad.div_(logits.shape[-2])


_APL_SOURCE = "Ma et al., ICML 2020 (normalized losses, active-passive)"

register_loss(
    "nce-rce", _value_of(_nce_rce_terms),
    "normalized ce + reverse ce: alpha (-log p_y) / (-sum_k log p_k) - beta log(1e-4) (1 - p_y); "
    "mean over batch, loss.apl_alpha, loss.apl_beta",
    source=_APL_SOURCE, options=AplOptions, batched=True,
)
register_loss(
    "nce-mae", _value_of(_nce_mae_terms),
    "normalized ce + mae: alpha (-log p_y) / (-sum_k log p_k) + beta (1 - p_y) (their code's mae, "
    "half of ce-lab's); mean over batch, loss.apl_alpha, loss.apl_beta",
    source=_APL_SOURCE, options=AplOptions, batched=True,
)


@gradient_of("nce-rce")
@stacked
def nce_rce_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _apl_grad(_nce_rce_terms, -LOG_ZERO, logits, targets, cfg)


@gradient_of("nce-mae")
@stacked
def nce_mae_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _apl_grad(_nce_mae_terms, 1.0, logits, targets, cfg)


# --- taylor-ce ---------------------------------------------------------------------------------

def _taylor_terms(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor, Tensor]:
    log_p, log_p_y = _log_p(logits, targets)
    u = one_minus_p_y(log_p_y)
    power, total, partial = u, u.clone(), u.new_ones(u.shape)  # u^k, sum u^k / k, sum_{<k} u^j
    for k in range(2, cfg.t + 1):
        partial = partial + power
        power = power * u
        total = total + power / k
    return _batch_mean(total), log_p, partial


register_loss(
    "taylor-ce", _value_of(_taylor_terms),
    "Taylor cross-entropy sum_{k=1}^{t} (1 - p_y)^k / k (ce's series about p_y = 1, to order t); "
    "mean over batch, loss.t",
    source="Feng et al., IJCAI 2020 (Taylor cross entropy)", options=TaylorOptions, batched=True,
)


@gradient_of("taylor-ce")
@stacked
def taylor_ce_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    loss, log_p, partial = _taylor_terms(logits, targets, cfg)
    direction, p_y = ce_direction(logits, targets, log_p)
    # d/dz sum_k u^k / k = sum_k u^(k-1) du/dz with u = 1 - p_y, du/dz = p_y (p - t)
    return loss, direction.mul_(p_y.mul_(partial)).div_(logits.shape[-2])
