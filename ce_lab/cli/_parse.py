"""Text to typed values: the only place command-line strings are parsed. Each parser splits
and converts, then checks with the orchestration layer's own checks (``ce_lab.lab.params``),
quoting the text the user typed; ParamError is spelled with flags by ``cli_errors``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ce_lab.errors import ParamError, UsageError
from ce_lab.lab import params

# Parameters whose flag is not "--" + the name with dashes.
FLAG_OF = {"loss_overrides": "--set-loss", "overrides": "--set"}


def flag(param: str) -> str:
    """The flag that sets ``param`` (``tune_seeds`` -> ``--tune-seeds``)."""
    return FLAG_OF.get(param, "--" + param.replace("_", "-"))


def csv_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def losses(text: str | None) -> list[str]:
    """``a,b,c`` -> validated loss names; the default set when not given."""
    from ce_lab.losses import DEFAULT_LOSSES

    if text is None:
        return list(DEFAULT_LOSSES)
    return params.loss_list(csv_list(text), shown=text)


def seeds(text: str | None, param: str = "seeds") -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(s) for s in csv_list(text)]
    except ValueError:
        raise ParamError(f"«{param}» expects comma-separated integers, got {text!r}") from None
    return params.seed_list(values, param, shown=text)


def lr_grid(text: str | None) -> list[float] | None:
    """``0.1,0.3,1`` -> sorted distinct positive rates; None when not given (the default)."""
    if text is None:
        return None
    try:
        grid = [float(p) for p in csv_list(text)]
    except ValueError:
        raise ParamError(f"«lr_grid» expects comma-separated numbers, got {text!r}") from None
    return params.lr_grid(grid, shown=text)


def loss_overrides(items: Sequence[str], losses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``mse:optim.lr=0.5`` items -> {"mse": {"optim.lr": 0.5}} (values parsed as YAML)."""
    from ce_lab.config import parse_set

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        loss, sep, assignment = item.partition(":")
        loss = loss.strip()
        if not sep or not loss or "=" not in assignment:
            raise UsageError(f"--set-loss expects LOSS:dotted.key=value, got {item!r}")
        if loss not in losses:
            raise UsageError(
                f"--set-loss {item}: {loss!r} is not among the compared losses "
                f"({', '.join(losses)})"
            )
        path, value = parse_set(assignment)
        out.setdefault(loss, {})[".".join(path)] = value
    return out


def where(items: Sequence[str] | None) -> list[tuple[str, Any]]:
    """``optim.lr=0.1`` items -> [("optim.lr", 0.1)], each value parsed as ``--set`` parses it."""
    from ce_lab.config_keys import parse_value
    from ce_lab.shown import quoted

    out = []
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not all(part.strip() for part in key.split(".")):
            raise UsageError(f"--where expects dotted.key=value, e.g. optim.lr=0.1, got {quoted(item)}")
        out.append((".".join(part.strip() for part in key.split(".")), parse_value(raw)))
    return out
