"""The choices and defaults the CLI shows, read from where they are defined: the run config's
fields (``ce_lab.config``), the loss registry, the progress modes. One definition each, so a
help text cannot drift from what a run does."""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

from ce_lab.config import RunConfig


def _field(dotted: str):
    model, *parts = RunConfig, *dotted.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation
    return model.model_fields[parts[-1]]


def default(dotted: str) -> str:
    """A config key's default as the help writes it: ``3``, ``0.1``, ``runs``, ``sgd``."""
    return shown(_field(dotted).default)


def shown(value: Any) -> str:
    """``0.1`` (not 0.10000000000000001), ``runs`` for a Path, an Enum's value."""
    if isinstance(value, Enum):
        value = value.value
    return f"{value:g}" if isinstance(value, float) else str(value)


def choices(dotted: str) -> tuple[str, ...]:
    """The values a ``Literal`` config key takes, in their order."""
    return get_args(_field(dotted).annotation)


def choice_enum(name: str, values) -> type[Enum]:
    """A str Enum of ``values``: Typer lists it as ``<a|b|c>`` and refuses others."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


def in_words(values) -> str:
    """``auto, bar, plain or none``."""
    values = list(values)
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
