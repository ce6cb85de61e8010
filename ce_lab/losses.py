"""The loss registry: every classification loss ce-lab can train with, registered in one place.

A loss is one function plus one registration. The function maps ``(logits, targets, cfg)`` to a
scalar; the registration gives its name, a one-line description with its formula and, where the
loss has options, a small pydantic model of them (``options=``). Nothing else needs editing for a
new loss to be trained, listed by ``ce-lab losses``, validated in a config and compared.

Options: each field of a loss's options model is a config key ``loss.<field>``. ``LossConfig``
(ce_lab/config.py) is built from the fields of every registered options model, so the options live
with their loss while a config file keeps one flat ``loss:`` section (``loss.name``,
``loss.mse_reduction``, ``loss.hinge_margin``: the format runs have always saved). Losses that
share an option share its model (hinge and hinge-sq: ``HingeOptions``). The functions receive the
whole ``LossConfig`` and read their own keys from it; ``loss_options(cfg)`` gives the selected
loss's own model. A loss with options must be registered in this module (before ce_lab.config is
imported): later registrations may add losses but no new option keys.

A loss may also give its gradient in closed form, ``(logits, targets, cfg) -> (loss, d loss /
d logits)``, which training then uses instead of autograd: on a CPU, one call into autograd's
engine costs more than the whole closed form for a batch of 64. Every closed form takes logits of
shape (..., B, C) with targets (B,) and returns (loss (...), gradient (..., B, C)): one call serves
a stack of K members, and slice k is bit for bit what the 2-D call on ``logits[k]`` gives (on a
CPU). How that identity is kept (reductions, vector tails, threads) is ``ce_lab.loss_stacks``.
The value functions of ce, mse and bce take stacks the same way (``batched=True``);
``make_loss`` loops over the slices of the others.
The pipelines that exist to show what autograd does with them (``nll-manual``,
``double-softmax``, ``log-softmax-ce``) have no closed form, on purpose. tests/test_losses.py checks
every closed form against autograd of the loss function, against float64 references and, slice
by slice, against the 2-D call.

The number of classes is ``logits.shape[-1]``: nothing here assumes MNIST's 10.

torch is imported inside the functions on purpose: the CLI, ``--help`` and config validation list
these names without paying torch's one-second import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ce_lab.loss_stacks import (
    apart_like,
    nll_mean,
    one_hot,
    slice_numel,
    slice_sum,
    stacked,
    target_index,
)

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from torch import Tensor

    from ce_lab.config import LossConfig


def _not_bool(value: Any) -> Any:
    # YAML reads `yes`/`true` as booleans; pydantic would quietly take them as 1.0.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


Float = Annotated[float, BeforeValidator(_not_bool)]  # as ce_lab.config.Float


class LossOptions(BaseModel):
    """Base of a loss's options: each field is the config key ``loss.<field>``, with its default,
    constraints and ``description`` (shown by ``ce-lab losses``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MseOptions(LossOptions):
    mse_reduction: Literal["mean", "sum"] = Field(
        "mean", description="mean over batch and classes | sum over classes, mean over batch")


class HingeOptions(LossOptions):
    hinge_margin: Float = Field(1.0, gt=0, description="the margin m (> 0)")


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[..., Tensor]
    description: str
    squashes_sigmoid: bool = False  # outputs pass through a sigmoid: log the saturated fraction
    grad: Callable[..., tuple[Tensor, Tensor]] | None = None  # (loss, d loss / d logits)
    options: type[LossOptions] | None = None  # its config keys loss.<field>
    batched: bool = False  # fn takes logits (..., B, C) too, slice by slice as the 2-D call
    source: str = ""  # where the loss comes from (a paper), shown by `ce-lab losses`


LOSSES: dict[str, LossSpec] = {}
_OPTION_FIELDS: dict[str, FieldInfo] = {}  # every registered option key -> its field
_options_frozen = False  # set once LossConfig is built from _OPTION_FIELDS


def register_loss(name: str, fn: Callable[..., Tensor], description: str, *,
                  grad: Callable[..., tuple[Tensor, Tensor]] | None = None,
                  options: type[LossOptions] | None = None, squashes_sigmoid: bool = False,
                  batched: bool = False, source: str = "") -> LossSpec:
    """Register (or replace) loss ``name``; the one line a new loss needs besides its function.

    ``fn(logits (B, C), targets (B,), cfg) -> scalar`` (autograd differentiates it; with
    ``batched=True`` it also takes logits (..., B, C) and returns (...)). ``grad``, if given, is a
    closed form ``(logits (..., B, C), targets, cfg) -> (loss (...), d loss / d logits)`` for 2-D
    and stacked logits alike. ``options``: the loss's options model (its config keys).
    ``source``: its citation, listed by ``ce-lab losses``.
    """
    for key, field in (options.model_fields if options else {}).items():
        known = _OPTION_FIELDS.get(key)
        if known is None and _options_frozen:
            raise RuntimeError(f"loss {name!r}: option loss.{key} is registered after the config "
                               "was built; register losses with new options in ce_lab/losses.py")
        if known is not None and known is not field and repr(known) != repr(field):
            raise ValueError(f"loss {name!r}: option loss.{key} is already defined differently")
        _OPTION_FIELDS.setdefault(key, field)
    spec = LossSpec(name, fn, description, squashes_sigmoid, grad, options, batched, source)
    LOSSES[name] = spec
    return spec


def option_fields() -> dict[str, FieldInfo]:
    """Every option key of every registered loss, in registration order (for LossConfig)."""
    global _options_frozen
    _options_frozen = True
    return dict(_OPTION_FIELDS)


def _register(name: str, description: str, *, squashes_sigmoid: bool = False,
              options: type[LossOptions] | None = None, batched: bool = False, source: str = ""):
    def wrap(fn):
        register_loss(name, fn, description, squashes_sigmoid=squashes_sigmoid, options=options,
                      batched=batched, source=source)
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


# What `ce-lab compare` and ``ce_lab.compare`` train when no losses are named.
DEFAULT_LOSSES = ("ce", "mse", "hinge", "nll-manual")


def get_loss(name: str) -> LossSpec:
    from ce_lab.errors import UsageError
    from ce_lab.suggest import unknown_name

    try:
        return LOSSES[name]
    except KeyError:
        raise UsageError(unknown_name("loss", [name], list(LOSSES))) from None


def loss_options(cfg: LossConfig) -> LossOptions | None:
    """The options of ``cfg``'s loss as its own model (validated by it), or None if it has none."""
    model = get_loss(cfg.name).options
    return None if model is None else model(**{k: getattr(cfg, k) for k in model.model_fields})


def make_loss(cfg: LossConfig) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss of ``cfg`` as a function of (logits (..., B, C), integer targets (B,)) to a loss of
    shape (...): the batch mean of each slice, as the 2-D call on it gives."""
    spec = get_loss(cfg.name)
    fn = partial(spec.fn, cfg=cfg)
    return fn if spec.batched else partial(_slice_by_slice, fn)


def make_loss_grad(cfg: LossConfig) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """The closed-form (loss, d loss / d logits) of ``cfg``'s loss, or None where autograd does it;
    logits (..., B, C) -> (loss (...), gradient (..., B, C))."""
    grad = get_loss(cfg.name).grad
    return None if grad is None else partial(grad, cfg=cfg)


def _slice_by_slice(fn: Callable[[Tensor, Tensor], Tensor], logits: Tensor, targets: Tensor
                    ) -> Tensor:
    import torch

    if logits.dim() == 2:
        return fn(logits, targets)
    flat = logits.reshape(-1, *logits.shape[-2:])
    return torch.stack([fn(z, targets) for z in flat.unbind(0)]).reshape(logits.shape[:-2])


# ---------------------------------------------------------------------------------------------
# The losses


@_register("ce", "cross-entropy on the logits: -log softmax(z)_y  (F.cross_entropy)", batched=True)
@stacked
def cross_entropy(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    import torch

    return (nll_mean(torch.log_softmax(logits, dim=-1), targets),)  # = F.cross_entropy per slice


@_gradient_of("ce")
@stacked
def cross_entropy_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    # d/dz mean_i -log softmax(z_i)_{y_i} = (softmax(z) - onehot(y)) / B
    log_p = torch.log_softmax(logits, dim=-1)  # one row at a time, whatever the stack
    loss = nll_mean(log_p, targets)
    probs = torch.exp(log_p, out=log_p if logits.dim() == 2 else apart_like(logits))
    return loss, probs.sub_(one_hot(logits, targets)).div_(logits.shape[-2])


@_register(
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


@_gradient_of("mse")
@stacked
def mse_sigmoid_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    s = torch.sigmoid(logits, out=apart_like(logits))
    diff = s - one_hot(logits, targets)
    per_example = slice_numel(logits) if cfg.mse_reduction == "mean" else logits.shape[-2]
    loss = slice_sum(diff.square()) / per_example
    # d/dz (s - t)^2 = 2 (s - t) s (1 - s): the factor s (1 - s) <= 1/4 is the saturation
    return loss, torch.ops.aten.sigmoid_backward(diff * (2.0 / per_example), s)


@_register(
    "hinge",
    "multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j) / C  (F.multi_margin_loss, p=1)",
    options=HingeOptions, source="Weston & Watkins, ESANN 1999 (the sum over j != y)",
)
def hinge(logits: Tensor, targets: Tensor, cfg: LossConfig) -> Tensor:
    import torch.nn.functional as F

    return F.multi_margin_loss(logits, targets, p=1, margin=cfg.hinge_margin)


@_register(
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


@_gradient_of("hinge")
@stacked
def hinge_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 1)


@_gradient_of("hinge-sq")
@stacked
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


@_gradient_of("bce")
@stacked
def bce_one_vs_rest_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    onehot = one_hot(logits, targets)
    loss = _bce_mean(logits, onehot)
    probs = torch.sigmoid(logits, out=apart_like(logits))
    return loss, probs.sub_(onehot).div_(slice_numel(logits))


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


# The losses the literature compares with ce (mse-logits, mae, gce, ce-smooth, focal) live in
# their own module; imported here so that they, and their options, are registered with these.
from ce_lab import literature_losses  # noqa: E402, F401
