"""How big a batch may grow, counted from its batch file before anything is expanded.

- ``count_entries``: runs x grid points x seeds, a product of list lengths: a grid of a few lines
  can describe 10**9 entries, and expanding them would exhaust the memory before any check ran;
  ``ce_lab.batches.spec`` refuses a batch over ``max_entries`` (default ``DEFAULT_MAX_ENTRIES``).
- ``state_bound``: the most bytes the batch.json (and its event log) of a batch folder can hold,
  derived from the copy of the batch file kept beside it. The read cap of batch.json follows from
  what the tool writes there (one record per entry), so a batch it wrote can always be read back,
  while a hostile file is still refused before it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ce_lab.config_keys import flatten
from ce_lab.safe_io import MAX_JSON_BYTES

DEFAULT_MAX_ENTRIES = 100_000

# One entry's record in batch.json without its overrides: index, hash, status, times and keys
# (under 1 KiB), its run folder (a path: at most PATH_MAX, 4096 bytes) and its error, cut to
# MAX_ERROR_CHARS when recorded. JSON escapes a non-ASCII character as up to 12 bytes, hence
# the margin.
ENTRY_BYTES = 16 << 10
MAX_ERROR_CHARS = 1000
# batch.json is indented: a line of an entry's overrides is nested three levels deep there (6
# more spaces) and a JSON line holds at least 2 characters, so 4x their compact size bounds them.
INDENT_FACTOR = 4


def count_entries(runs: list[Any], grid: Mapping[str, list[Any]], seeds: list[Any] | None) -> int:
    """How many entries a batch file's ``runs``, ``grid`` and ``seeds`` expand to."""
    n = len(runs) or 1
    for values in grid.values():
        n *= len(values)
    return n * (len(seeds) if seeds is not None else 1)


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def overrides_bound(runs: list[Any], grid: Mapping[str, list[Any]]) -> int:
    """The most bytes one entry's overrides take in batch.json: its run's mapping, plus the
    largest value of every grid key (as flattened into dotted keys), plus a seed."""
    size = max((_size(flatten(r)) for r in runs if isinstance(r, Mapping)), default=2)
    for key, values in grid.items():
        size += max((_size(flatten({key: v}) if isinstance(v, Mapping) else {key: v})
                     for v in values), default=0)
    return INDENT_FACTOR * (size + 32)


def state_bound(batch_copy: Path) -> int:
    """The read cap of the batch.json beside ``batch_copy`` (the copy of its batch file): room for
    every entry it expands to. A copy that cannot be read gives the plain JSON bound."""
    from ce_lab.errors import CeLabError
    from ce_lab.yaml_files import read_yaml_mapping

    try:
        data, _ = read_yaml_mapping(batch_copy)
    except (CeLabError, OSError, ValueError):
        return MAX_JSON_BYTES
    runs, grid, seeds = data.get("runs") or [], data.get("grid") or {}, data.get("seeds")
    if (not isinstance(runs, list) or not isinstance(grid, dict)
            or not all(isinstance(v, list) for v in grid.values())
            or not isinstance(seeds, (list, type(None)))):
        return MAX_JSON_BYTES
    n = count_entries(runs, grid, seeds)
    return MAX_JSON_BYTES + n * (ENTRY_BYTES + overrides_bound(runs, grid))
