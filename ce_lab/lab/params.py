"""Typed checks of the orchestration functions' arguments: each takes the value a caller passed
(never text to parse: that is the CLI's job) and returns it normalised, or raises ParamError
naming the parameter, which the CLI spells as its flag (``«seeds»`` -> ``--seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ce_lab.errors import ParamError
from ce_lab.runs.read import is_integer, is_number  # the one spelling of a JSON number

# --tune-lr's grid. Half-decades from 0.01 to 10, measured on MNIST (1 epoch, the default model,
# sgd): the best rates were ce 0.316, hinge 1, mse 3.16 (by validation AUC), nll-manual diverged
# from 1 up, and every loss had fallen to or near chance at 10 (ce from 1), so no best sits on an
# edge. Here, light to import, because the CLI's help text shows it.
DEFAULT_LR_GRID = (0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0)


def _quote(shown: str | None, value: Any) -> str:
    """The text the CLI parsed the value from, else the value, as repr."""
    return repr(shown if shown is not None else value)


def _sequence(value: Any, param: str, what: str) -> list[Any]:
    # A str is a Sequence too, and "12" would be seeds 1 and 2: never split a string here.
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ParamError(f"«{param}» must be a list of {what}, got {value!r}")
    return list(value)


def loss_list(losses: Any, param: str = "losses", shown: str | None = None) -> list[str]:
    """One loss name or a list of them: known, at least one, none twice. ``shown``: the text
    the values were parsed from, quoted in the message instead of them (the CLI's)."""
    from ce_lab.losses import loss_names

    names = [losses] if isinstance(losses, str) else _sequence(losses, param, "loss names")
    valid = loss_names()
    if not all(isinstance(n, str) for n in names):
        raise ParamError(f"«{param}» must be loss names (strings), got {names!r}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        from ce_lab.suggest import unknown_name

        raise ParamError(unknown_name("loss", unknown, valid))
    if not names:
        raise ParamError(f"«{param}» is empty; valid losses: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise ParamError(f"«{param}» names a loss twice: {shown or ', '.join(names)}")
    return names


def seed_list(seeds: Any, param: str = "seeds", shown: str | None = None) -> list[int] | None:
    """None, one seed, or a list of them: non-negative integers, none twice."""
    if seeds is None:
        return None
    values = [seeds] if is_integer(seeds) else _sequence(seeds, param, "non-negative integers")
    if not values or not all(is_integer(s) and s >= 0 for s in values):
        raise ParamError(f"«{param}» expects non-negative integers, got {_quote(shown, seeds)}")
    if len(set(values)) != len(values):
        raise ParamError(f"«{param}» names a seed twice: {shown or ', '.join(map(str, values))}")
    return values


def lr_grid(grid: Any, param: str = "lr_grid", shown: str | None = None) -> list[float]:
    """Distinct positive finite rates, sorted."""
    values = _sequence(grid, param, "learning rates")
    if not all(is_number(v) for v in values):
        raise ParamError(f"«{param}» expects numbers, got {grid!r}")
    rates = [float(v) for v in values]
    if not rates or any(not math.isfinite(v) or v <= 0 for v in rates):
        raise ParamError(f"«{param}» expects positive learning rates, got {_quote(shown, grid)}")
    if len(set(rates)) != len(rates):
        raise ParamError(f"«{param}» names a rate twice: {shown or ', '.join(map(str, values))}")
    return sorted(rates)


def criterion(select: Any, param: str = "select"):
    """A Criterion, or its value ("auc", "final-val-acc")."""
    from ce_lab.comparison.tuning import Criterion

    try:
        return Criterion(select)
    except ValueError:
        valid = ", ".join(c.value for c in Criterion)
        raise ParamError(f"«{param}» must be one of {valid}, got {select!r}") from None


def positive_int(value: Any, param: str) -> int:
    if not is_integer(value) or value < 1:
        raise ParamError(f"«{param}» must be a positive integer, got {value!r}")
    return value


def loss_overrides(overrides: Any, losses: Sequence[str],
                   param: str = "loss_overrides") -> dict[str, dict[str, Any]]:
    """{loss: {dotted key: value}} for losses among ``losses``."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) and all(isinstance(kk, str) for kk in v)
            for k, v in overrides.items()):
        raise ParamError(f"«{param}» must map a loss to {{dotted key: value}}, e.g. "
                         f'{{"mse": {{"optim.lr": 0.5}}}}, got {overrides!r}')
    for loss in overrides:
        if loss not in losses:
            raise ParamError(f"«{param}» names {loss!r}, which is not among the compared losses "
                             f"({', '.join(losses)})")
    return {k: dict(v) for k, v in overrides.items()}


def reference(ref: Any, losses: Sequence[str], param: str = "reference") -> str | None:
    if ref is None:
        return None
    if ref not in losses:
        raise ParamError(f"«{param}» {ref} is not among «losses» ({', '.join(losses)})")
    return ref


def tune_seeds(tune: Any, eval_seeds: Sequence[int]) -> list[int]:
    """The seeds rates are chosen on: given (none among ``eval_seeds``), or the smallest seed
    that is not an evaluation seed."""
    seeds = seed_list(tune, "tune_seeds")
    if seeds is None:
        seed = 0
        while seed in eval_seeds:
            seed += 1
        return [seed]
    shared = sorted(set(seeds) & set(eval_seeds))
    if shared:
        raise ParamError(f"«tune_seeds» and «seeds» share seed(s) {', '.join(map(str, shared))}: "
                         "rates chosen on a seed would be evaluated on it")
    return seeds


def optional_positive_int(value: Any, param: str) -> int | None:
    return None if value is None else positive_int(value, param)


def one_of(value: Any, param: str, choices: Sequence[str]) -> str:
    """One of ``choices`` (a str Enum member counts as its value), as a plain str."""
    if isinstance(value, str) and value in choices:
        return str(getattr(value, "value", value))
    raise ParamError(f"«{param}» must be one of {', '.join(choices)}, got {value!r}")


def number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(f"«{param}» must be a number, got {value!r}")
    return float(value)


def dotted_overrides(value: Any, param: str = "overrides",
                     example: str = '{"train.epochs": 1}') -> dict[str, Any]:
    """None, or a mapping of dotted config keys (strings without an empty part) to values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and all(k.split(".")) for k in value):
        raise ParamError(f"«{param}» must be a mapping of dotted config keys to values, e.g. "
                         f"{example}, got {value!r}")
    return dict(value)


def optional_str(value: Any, param: str, what: str = "a string") -> str | None:
    if value is not None and not isinstance(value, str):
        raise ParamError(f"«{param}» must be {what}, got {value!r}")
    return value


def name_filter(value: Any, param: str) -> list[str]:
    """A filter of names: one string, or a list of them (empty: no filter)."""
    names = [value] if isinstance(value, str) else _sequence(value, param, "strings")
    if not all(isinstance(n, str) for n in names):
        raise ParamError(f"«{param}» must be a string or a list of strings, got {value!r}")
    return names
