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
loss's own model. The losses ce-lab defines are registered by the package (``ce_lab.losses``
imports ``classic`` and ``literature``), so whoever imports any part of it, ``ce_lab.config``
included, finds them all; a loss registered later (a plugin) may use the options that exist but
add no new option keys once the config is built.

A loss may also give its gradient in closed form, ``(logits, targets, cfg) -> (loss, d loss /
d logits)``, which training then uses instead of autograd: on a CPU, one call into autograd's
engine costs more than the whole closed form for a batch of 64. Every closed form takes logits of
shape (..., B, C) with targets (B,) and returns (loss (...), gradient (..., B, C)): one call serves
a stack of K members, and slice k is bit for bit what the 2-D call on ``logits[k]`` gives (on a
CPU). How that identity is kept (reductions, vector tails, threads) is ``ce_lab.losses.stacks``.
The value functions of the losses that take stacks say so (``batched=True``); ``make_loss`` loops
over the slices of the others. tests/test_losses.py checks every closed form against autograd of
the loss function, against float64 references and, slice by slice, against the 2-D call.

The number of classes is ``logits.shape[-1]``: nothing here assumes MNIST's 10.

torch is imported inside the functions on purpose: the CLI, ``--help`` and config validation list
these names without paying torch's one-second import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

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
    # logits (..., B, C) -> the probabilities its calibration is measured on; None: softmax(z)
    probabilities: Callable[[Tensor], Tensor] | None = None


LOSSES: dict[str, LossSpec] = {}
_OPTION_FIELDS: dict[str, FieldInfo] = {}  # every registered option key -> its field
_options_frozen = False  # set once LossConfig is built from _OPTION_FIELDS


def register_loss(name: str, fn: Callable[..., Tensor], description: str, *,
                  grad: Callable[..., tuple[Tensor, Tensor]] | None = None,
                  options: type[LossOptions] | None = None, squashes_sigmoid: bool = False,
                  batched: bool = False, source: str = "",
                  probabilities: Callable[[Tensor], Tensor] | None = None) -> LossSpec:
    """Register (or replace) loss ``name``; the one line a new loss needs besides its function.

    ``fn(logits (B, C), targets (B,), cfg) -> scalar`` (autograd differentiates it; with
    ``batched=True`` it also takes logits (..., B, C) and returns (...)). ``grad``, if given, is a
    closed form ``(logits (..., B, C), targets, cfg) -> (loss (...), d loss / d logits)`` for 2-D
    and stacked logits alike. ``options``: the loss's options model (its config keys).
    ``source``: its citation, listed by ``ce-lab losses``. ``probabilities``: the map from logits
    to the distribution its calibration is measured on, where that is not softmax(z) (sparsemax).
    """
    for key, field in (options.model_fields if options else {}).items():
        known = _OPTION_FIELDS.get(key)
        if known is None and _options_frozen:
            raise RuntimeError(f"loss {name!r}: option loss.{key} is registered after the config "
                               "was built; register losses with new options in the ce_lab.losses package")
        if known is not None and known is not field and repr(known) != repr(field):
            raise ValueError(f"loss {name!r}: option loss.{key} is already defined differently")
        _OPTION_FIELDS.setdefault(key, field)
    spec = LossSpec(name, fn, description, squashes_sigmoid, grad, options, batched, source,
                    probabilities)
    LOSSES[name] = spec
    return spec


def option_fields() -> dict[str, FieldInfo]:
    """Every option key of every registered loss, in registration order (for LossConfig)."""
    global _options_frozen
    _options_frozen = True
    return dict(_OPTION_FIELDS)


def register(name: str, description: str, *, squashes_sigmoid: bool = False,
              options: type[LossOptions] | None = None, batched: bool = False, source: str = ""):
    def wrap(fn):
        register_loss(name, fn, description, squashes_sigmoid=squashes_sigmoid, options=options,
                      batched=batched, source=source)
        return fn

    return wrap


def gradient_of(name: str):
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
