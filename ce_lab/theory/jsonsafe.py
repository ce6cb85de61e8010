"""JSON for the theory commands: non-finite floats become the strings "inf", "-inf" and "nan".

Strings rather than null, because telling inf from NaN is the point of ``ce-lab stability``; and
the output stays valid JSON (``allow_nan=False`` would refuse a stray NaN instead of writing it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by "inf", "-inf" or "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, allow_nan=False)
