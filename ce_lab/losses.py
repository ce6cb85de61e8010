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
CPU). Two things would break that, and the code below avoids both:
- reductions: F.nll_loss sums a batch in its own cascade: a stack calls it per slice, or for
  many slices replays its order (``_nll_mean``); every other sum runs over one slice's own dims.
- vector tails: TensorIterator fuses adjacent slices into one loop, which moves the boundary
  between its vectorised body and its scalar tail, and sigmoid's vector and scalar code differ in
  the last bit. ``_apart`` lays the slices out with a gap, so each slice is one inner loop exactly
  as in a 2-D call; stacks above ``_GRAIN`` elements go in chunks, so that no elementwise op
  splits them across threads at other points than a 2-D call would. (On a GPU the same calls
  work; bit identity is only promised, and tested, on a CPU.)
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
from functools import partial, wraps
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


LOSSES: dict[str, LossSpec] = {}
_OPTION_FIELDS: dict[str, FieldInfo] = {}  # every registered option key -> its field
_options_frozen = False  # set once LossConfig is built from _OPTION_FIELDS


def register_loss(name: str, fn: Callable[..., Tensor], description: str, *,
                  grad: Callable[..., tuple[Tensor, Tensor]] | None = None,
                  options: type[LossOptions] | None = None, squashes_sigmoid: bool = False,
                  batched: bool = False) -> LossSpec:
    """Register (or replace) loss ``name``; the one line a new loss needs besides its function.

    ``fn(logits (B, C), targets (B,), cfg) -> scalar`` (autograd differentiates it; with
    ``batched=True`` it also takes logits (..., B, C) and returns (...)). ``grad``, if given, is a
    closed form ``(logits (..., B, C), targets, cfg) -> (loss (...), d loss / d logits)`` for 2-D
    and stacked logits alike. ``options``: the loss's options model (its config keys).
    """
    for key, field in (options.model_fields if options else {}).items():
        known = _OPTION_FIELDS.get(key)
        if known is None and _options_frozen:
            raise RuntimeError(f"loss {name!r}: option loss.{key} is registered after the config "
                               "was built; register losses with new options in ce_lab/losses.py")
        if known is not None and known is not field and repr(known) != repr(field):
            raise ValueError(f"loss {name!r}: option loss.{key} is already defined differently")
        _OPTION_FIELDS.setdefault(key, field)
    spec = LossSpec(name, fn, description, squashes_sigmoid, grad, options, batched)
    LOSSES[name] = spec
    return spec


def option_fields() -> dict[str, FieldInfo]:
    """Every option key of every registered loss, in registration order (for LossConfig)."""
    global _options_frozen
    _options_frozen = True
    return dict(_OPTION_FIELDS)


def _register(name: str, description: str, *, squashes_sigmoid: bool = False,
              options: type[LossOptions] | None = None, batched: bool = False):
    def wrap(fn):
        register_loss(name, fn, description, squashes_sigmoid=squashes_sigmoid, options=options,
                      batched=batched)
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
# Stacks of logits, computed slice by slice bit for bit as 2-D calls

_GRAIN = 32_768  # at::internal::GRAIN_SIZE: larger elementwise ops are split across threads


def _apart(z: Tensor) -> Tensor:
    """A copy of the stack ``z`` (K, B, C) with a one-element gap after every slice.

    Without the gap TensorIterator fuses the K slices into one loop of K*B*C elements, whose
    vector/scalar-tail boundary falls elsewhere in a slice than in a 2-D call's loop of B*C; with
    it, every slice is one inner loop of B*C, as in the 2-D call. Results of ops on it are
    allocated dense, which is fine for exact arithmetic (+, -, *, /) but not for sigmoid or exp:
    those take ``_apart`` tensors, or write into ``_apart_like`` buffers.
    """
    return _apart_like(z).copy_(z)


def _apart_like(z: Tensor) -> Tensor | None:
    """An empty buffer laid out as ``_apart`` (None for a 2-D ``z``: ``out=None`` allocates)."""
    if z.dim() == 2:
        return None
    k, b, c = z.shape
    return z.new_empty(k, b * c + 1)[:, : b * c].view(k, b, c)


def _stacked(core: Callable[..., tuple[Tensor, ...]]) -> Callable[..., Any]:
    """Lifts ``core`` to logits of shape (..., B, C). ``core(z, targets, cfg)`` returns a tuple of
    per-slice results and takes either a 2-D ``z`` (B, C), the plain call, or a stack (K >= 2,
    B, C) laid out by ``_apart``; stacks go in chunks below ``_GRAIN`` elements (one thread's
    share), and a chunk of one slice is a 2-D call."""

    @wraps(core)
    def stacked(logits: Tensor, targets: Tensor, cfg: LossConfig):
        import torch

        if logits.dim() == 2:
            outs = core(logits, targets, cfg)
        else:
            b, c = logits.shape[-2:]
            z = logits if logits.dim() == 3 else logits.reshape(-1, b, c)
            k = z.shape[0]
            if k * b * c < _GRAIN:
                outs = tuple(o.contiguous() for o in _stacked_chunk(core, z, targets, cfg))
            else:
                per = max(1, (_GRAIN - 1) // (b * c))
                parts = [_stacked_chunk(core, z[i:i + per], targets, cfg) for i in range(0, k, per)]
                outs = tuple(torch.cat(p) for p in zip(*parts))
            if logits.dim() > 3:
                outs = tuple(o.reshape(logits.shape[:-2] + o.shape[1:]) for o in outs)
        return outs[0] if len(outs) == 1 else outs

    return stacked


def _stacked_chunk(core, chunk: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, ...]:
    if chunk.shape[0] == 1:  # one slice: the 2-D call itself
        return tuple(o.unsqueeze(0) for o in core(chunk[0], targets, cfg))
    return core(_apart(chunk), targets, cfg)


def _index(z: Tensor, targets: Tensor) -> Tensor:
    """The targets as a gather/scatter index of z's shape with a last dim of 1."""
    index = targets.unsqueeze(-1)
    return index if z.dim() == 2 else index.expand(*z.shape[:-1], 1)


def _onehot(logits: Tensor, targets: Tensor) -> Tensor:
    # Not F.one_hot, which on a CPU checks the targets' range with two reductions read back to
    # Python: in the training loop that made it four times slower than this scatter.
    return logits.new_zeros(logits.shape).scatter_(-1, _index(logits, targets), 1.0)


def _slice_numel(z: Tensor) -> int:
    return z.shape[-2] * z.shape[-1]


def _slice_sum(x: Tensor) -> Tensor:
    """The sum over each slice's (B, C): one reduction of B*C contiguous values per slice."""
    return x.sum() if x.dim() == 2 else x.sum((-2, -1))


def _sequential_sum(x: Tensor) -> Tensor:
    """Sum over the last dim left to right from 0, as a C loop would (no vector lanes)."""
    acc = x.new_zeros(x.shape[:-1])
    for col in x.unbind(-1):
        acc = acc.add_(col)
    return acc


_NLL_PER_SLICE = 32  # up to this many slices, K calls of F.nll_loss beat replaying its order


def _nll_mean(log_p: Tensor, targets: Tensor) -> Tensor:
    """F.nll_loss(log_p[k], targets) (mean) for every k of log_p (K, B, C), bit for bit."""
    import torch
    import torch.nn.functional as F

    if log_p.dim() == 2:
        return F.nll_loss(log_p, targets)
    if log_p.shape[0] <= _NLL_PER_SLICE:  # each a few microseconds; the replay costs ~40 ops
        return torch.stack([F.nll_loss(one, targets) for one in log_p.unbind(0)])
    return _nll_mean_replayed(log_p, targets)


def _nll_mean_replayed(log_p: Tensor, targets: Tensor) -> Tensor:
    """``_nll_mean`` in one pass over all K slices, replaying F.nll_loss's summation order.

    ATen's CPU kernel sums the batch in a cascade of 8 partial sums over blocks of 16: element 0
    lands alone in the top partial, elements 1..16 form the first block of the bottom one, every
    16 blocks move up a level, and the partials are added bottom up at the end
    (tests/test_losses.py checks this against F.nll_loss).
    """
    k, b = log_p.shape[:2]
    neg = log_p.gather(-1, _index(log_p, targets)).squeeze(-1).neg()  # (K, B): p -= data
    items, partials = neg[:, 1:], []
    while items.shape[-1] > 16:
        n = items.shape[-1]
        full, blocks = n // 16, -(-n // 16)
        # Every block of 16 in one pass; the open last block padded with +0, which changes no
        # sum that starts from +0 (not even a zero's sign)
        padded = items.new_zeros(k, blocks * 16)
        padded[:, :n] = items
        sums = _sequential_sum(padded.view(k, blocks, 16))
        if full < blocks:
            partials.append(sums[:, full])  # this level's open block
        items = sums[:, :full]  # the full blocks move up a level
    if items.shape[-1]:
        partials.append(_sequential_sum(items))
    total = neg.new_zeros(k)
    for partial_sum in partials:
        total = total.add_(partial_sum)
    return total.add_(neg[:, 0]).div_(b)


# ---------------------------------------------------------------------------------------------
# The losses


@_register("ce", "cross-entropy on the logits: -log softmax(z)_y  (F.cross_entropy)", batched=True)
@_stacked
def cross_entropy(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    import torch

    return (_nll_mean(torch.log_softmax(logits, dim=-1), targets),)  # = F.cross_entropy per slice


@_gradient_of("ce")
@_stacked
def cross_entropy_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    # d/dz mean_i -log softmax(z_i)_{y_i} = (softmax(z) - onehot(y)) / B
    log_p = torch.log_softmax(logits, dim=-1)  # one row at a time, whatever the stack
    loss = _nll_mean(log_p, targets)
    probs = torch.exp(log_p, out=log_p if logits.dim() == 2 else _apart_like(logits))
    return loss, probs.sub_(_onehot(logits, targets)).div_(logits.shape[-2])


@_register(
    "mse",
    "squared error of sigmoid(z) against the one-hot target: (sigmoid(z) - onehot(y))^2, "
    "mean over batch and classes (loss.mse_reduction=sum: summed over classes)",
    squashes_sigmoid=True, options=MseOptions, batched=True,
)
@_stacked
def mse_sigmoid(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    import torch

    sq = (torch.sigmoid(logits) - _onehot(logits, targets)).pow(2)
    # 'mean' divides by the number of classes too, which shrinks every gradient C-fold; 'sum' not.
    # (On a CPU, a mean is the sum divided by the count: these are F.mse_loss's numbers per slice.)
    if cfg.mse_reduction == "mean":
        return (_slice_sum(sq) / _slice_numel(sq),)
    return (sq.sum(-1).sum(-1) / sq.shape[-2],)


@_gradient_of("mse")
@_stacked
def mse_sigmoid_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    s = torch.sigmoid(logits, out=_apart_like(logits))
    diff = s - _onehot(logits, targets)
    per_example = _slice_numel(logits) if cfg.mse_reduction == "mean" else logits.shape[-2]
    loss = _slice_sum(diff.square()) / per_example
    # d/dz (s - t)^2 = 2 (s - t) s (1 - s): the factor s (1 - s) <= 1/4 is the saturation
    return loss, torch.ops.aten.sigmoid_backward(diff * (2.0 / per_example), s)


@_register(
    "hinge",
    "multi-class margin loss: sum_{j!=y} max(0, m - z_y + z_j) / C  (F.multi_margin_loss, p=1)",
    options=HingeOptions,
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
    index = _index(logits, targets)
    z_target = logits.gather(-1, index)
    # Active terms m - z_y + z_j > 0 for j != y (the target's own term is m > 0: masked out)
    slack = (logits - z_target + margin).clamp_min_(0).scatter_(-1, index, 0.0)
    loss = _slice_sum(slack if p == 1 else slack.square()) / (b * c)
    # d/dz_j of each active term is p * slack^(p-1); d/dz_y is minus their sum
    per_term = (slack > 0).to(logits.dtype) if p == 1 else slack * 2.0
    grad = per_term.scatter_(-1, index, per_term.sum(-1, keepdim=True).neg())
    return loss, grad.div_(b * c)


@_gradient_of("hinge")
@_stacked
def hinge_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    return _hinge_grad(logits, targets, cfg.hinge_margin, 1)


@_gradient_of("hinge-sq")
@_stacked
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
@_stacked
def bce_one_vs_rest(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor]:
    return (_bce_mean(logits, _onehot(logits, targets)),)


def _bce_mean(logits: Tensor, onehot: Tensor) -> Tensor:
    import torch.nn.functional as F

    if logits.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits, onehot)
    # its mean (on a CPU) is its elementwise loss summed, then divided
    each = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    return _slice_sum(each) / _slice_numel(logits)


@_gradient_of("bce")
@_stacked
def bce_one_vs_rest_grad(logits: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, Tensor]:
    import torch

    onehot = _onehot(logits, targets)
    loss = _bce_mean(logits, onehot)
    probs = torch.sigmoid(logits, out=_apart_like(logits))
    return loss, probs.sub_(onehot).div_(_slice_numel(logits))


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
