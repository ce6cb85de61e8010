"""The building blocks of every config section: strict integers, floats that refuse booleans, and
the frozen, closed section model. Kept apart from ``ce_lab.config`` so that a section defined
elsewhere (``ce_lab.data.settings``) uses the same rules without an import cycle."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict


def _not_bool(value: Any) -> Any:
    # YAML reads `yes`/`true` as booleans; pydantic would quietly take them as 1 or 1.0.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


# Integers are strict (no booleans, no 3.0); floats still accept YAML 1.1's "1e-3", a string.
Int = Annotated[int, Strict()]
Float = Annotated[float, BeforeValidator(_not_bool)]


class _Section(BaseModel):
    # allow_inf_nan=False: `gt=0` alone lets lr=.inf through (nan fails it, inf does not)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
