"""``ce_lab.loss(name, **options)``: ce-lab's losses as plain callables for one's own PyTorch code.

The callable is the registered value function of the loss (``ce_lab.losses``), bound to its
options, so it computes exactly what a ce-lab run logs as its loss; autograd differentiates it like
any ``torch.nn`` loss, to every order (tests check its gradient against the closed forms training
uses and both against float64 references). Options are validated by the loss's own options model:
an unknown name or option, or a bad value, is the one-line error the CLI prints. Creating one loads
no torch; calling it does (torch is imported by the loss functions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ce_lab.errors import ConfigError, ParamError

if TYPE_CHECKING:
    from torch import Tensor


class Loss:
    """A ce-lab loss bound to its options: ``loss(logits, targets)`` is the batch mean of the
    per-example loss, logits (B, C) of any float dtype and device, integer targets (B,)."""

    def __init__(self, name: str, options: dict[str, Any], config: Any):
        from ce_lab.losses import make_loss

        self.name = name
        self.options = options  # every option of the loss, with its default where not given
        self._config = config
        self._fn = make_loss(config)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        import torch

        if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise ParamError(f"«logits» and «targets» must be torch tensors: got "
                             f"{type(logits).__name__} and {type(targets).__name__}")
        shape, tshape = tuple(logits.shape), tuple(targets.shape)
        if len(shape) != 2 or tshape != shape[:1]:
            raise ParamError(f"«logits» must be (B, C) and «targets» (B,): got {shape} and {tshape}")
        if not logits.is_floating_point() or targets.is_floating_point():
            raise ParamError(f"«logits» must be floats and «targets» class indices: got "
                             f"{logits.dtype} and {targets.dtype}")
        return self._fn(logits, targets)

    def __repr__(self) -> str:
        given = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"ce_lab.loss({self.name!r}{given})"


def loss(name: str, **options: Any) -> Loss:
    """The loss ``name`` of ``ce-lab losses`` with its options (the keys ``ce-lab losses`` lists
    without ``loss.``: ``loss("gce", q=0.5)``), as a callable ``(logits (B, C), targets (B,)) ->
    mean loss`` that autograd differentiates.

    Raises ``ce_lab.UsageError`` for an unknown loss, ``ce_lab.ParamError`` for an option the loss
    does not take, ``ce_lab.ConfigError`` for a bad value; each message is one line and names the
    close names where there are some.
    """
    from ce_lab.config import LossConfig, validate_model
    from ce_lab.losses import get_loss
    from ce_lab.suggest import closest

    if not isinstance(name, str):
        raise ParamError(f"«name» must be the name of a loss (ce-lab losses), not {name!r}")
    spec = get_loss(name)  # UsageError: unknown loss 'sec' — did you mean 'sce'?
    known = list(spec.options.model_fields) if spec.options else []
    for key in options:
        if key not in known:
            guess = closest(key, known)
            hint = (f" — did you mean {guess!r}?" if guess else
                    f"; its options: {', '.join(known)}" if known else "; it takes none")
            raise ParamError(f"loss {name!r} has no option {key!r}{hint}")
    try:
        config = validate_model(LossConfig, {"name": name, **options})
    except ConfigError as e:
        # a rule of the options together (sce's weights) has no key before its ": "
        raise ConfigError(f"loss {name!r}: {str(e).removeprefix(': ')}") from None
    return Loss(name, {k: getattr(config, k) for k in known}, config)
