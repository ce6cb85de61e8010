"""Every classification loss ce-lab can train with: the registry and the losses registered in it.

- ``registry``: ``LossSpec``, ``register_loss`` (and its decorators), ``get_loss``, ``make_loss``,
  the options models' base; it imports no loss, so no loss can be defined before it;
- ``classic``: ce, mse, bce, hinge, hinge-sq and the pipelines nll-manual, double-softmax,
  log-softmax-ce;
- ``literature``: mse-logits, mae, gce, ce-smooth, focal;
- ``robust``: the noisy-label losses sce, nce-rce, nce-mae, taylor-ce;
- ``recent``: poly1, squentropy, sparsemax;
- ``stacks``: the helpers that compute a stack of logits slice by slice, bit for bit.

Importing any part of this package runs this file first, which registers every loss (and so every
option key) before anything can read the registry: ``ce_lab.config`` builds ``LossConfig`` from
it. The order of the imports below is the order of the losses in ``ce-lab losses`` and of
their option keys in a config's ``loss:`` section (the format runs have always saved).
"""

from __future__ import annotations

from ce_lab.losses import classic, literature, recent, robust  # noqa: F401  (registers their losses)
from ce_lab.losses.classic import (
    HingeOptions,
    MseOptions,
    bce_one_vs_rest,
    bce_one_vs_rest_grad,
    cross_entropy,
    cross_entropy_grad,
    double_softmax,
    hinge,
    hinge_grad,
    hinge_squared,
    hinge_squared_grad,
    log_softmax_ce,
    mse_sigmoid,
    mse_sigmoid_grad,
    nll_manual,
)
from ce_lab.losses.literature import FocalOptions, GceOptions, SmoothingOptions
from ce_lab.losses.registry import (
    DEFAULT_LOSSES,
    LOSSES,
    Float,
    LossOptions,
    LossSpec,
    get_loss,
    gradient_of,
    loss_names,
    loss_options,
    make_loss,
    make_loss_grad,
    option_fields,
    register,
    register_loss,
)

__all__ = [
    "DEFAULT_LOSSES", "LOSSES", "Float", "FocalOptions", "GceOptions", "HingeOptions", "LossOptions",
    "LossSpec",
    "MseOptions", "SmoothingOptions", "bce_one_vs_rest", "bce_one_vs_rest_grad", "cross_entropy",
    "cross_entropy_grad", "double_softmax", "get_loss", "gradient_of", "hinge", "hinge_grad",
    "hinge_squared", "hinge_squared_grad", "log_softmax_ce", "loss_names", "loss_options",
    "make_loss", "make_loss_grad", "mse_sigmoid", "mse_sigmoid_grad", "nll_manual",
    "option_fields", "register", "register_loss",
]
