"""The run folders under an out_dir, filtered (``ce-lab runs``, ``ce_lab.load_runs``): by status,
loss, group, config values (``--where optim.lr=0.1``) and the N newest, with the config keys whose
values differ between the runs listed (the listing's extra columns).

Config values come from the runs index's interned leaves (``ce_lab.runs.leaves``), so filtering
and finding the differing keys of 10,000 runs parses no config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ce_lab.config_keys import NON_RESULT_KEYS
from ce_lab.errors import ParamError
from ce_lab.runs.leaves import ABSENT, Leaves
from ce_lab.runs.record import RunRecord

# Config keys a listing shows as columns of their own (loss, seed): never shown twice.
SHOWN_KEYS = frozenset({"loss.name", "seed"})


@dataclass
class RunList:
    """The runs chosen (newest first) of ``total`` under the out_dir, the lines of the folders
    skipped, and the config ``keys`` that differ between the runs chosen with each run's value
    of them (``values[i][key]``; a key run i lacks is missing)."""

    entries: list[RunRecord]
    total: int
    skipped: list[str]
    keys: list[str]
    values: list[dict[str, Any]]


def where_pairs(where: Any, param: str = "where") -> list[tuple[str, Any]]:
    """None, a mapping of dotted config keys to values, or (key, value) pairs (a key given twice
    must hold both values, which no run does)."""
    if where is None:
        return []
    pairs = list(where.items()) if isinstance(where, Mapping) else where
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and p[0]
            and all(p[0].split(".")) for p in pairs):
        raise ParamError(f"«{param}» must be a mapping of dotted config keys to values, e.g. "
                         f'{{"optim.lr": 0.1}}, got {where!r}')
    return list(pairs)


def _number(v: Any) -> float | None:
    """``v`` as a number the way a config value given as text becomes one (``--set
    optim.lr=1e-1``: YAML keeps ``1e-1`` a string, validation makes it 0.1); None if it is not."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def matches(value: Any, wanted: Any) -> bool:
    """Whether a run's config ``value`` is ``wanted``: numbers by value (0.1, 0.10 and "1e-1"
    alike; 3 and 3.0), lists item by item, anything else as it is (true is no number)."""
    if isinstance(value, list):
        return (isinstance(wanted, (list, tuple)) and len(wanted) == len(value)
                and all(matches(v, w) for v, w in zip(value, wanted)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _number(wanted)
        return number is not None and (value == number or (math.isnan(value) and math.isnan(number)))
    return type(value) is type(wanted) and value == wanted


def _unknown_key(key: str, known: Sequence[str], param: str, out_dir: Path) -> ParamError:
    from ce_lab.shown import quoted
    from ce_lab.suggest import by_last_parts, closest

    guesses = by_last_parts(key, known) or [g for g in [closest(key, known)] if g]
    hint = f"; did you mean {', '.join(map(repr, guesses[:3]))}?" if guesses else ""
    return ParamError(f"«{param}»: no run under {out_dir} has the config key {quoted(key)}{hint}")


def _check_type(key: str, wanted: Any, values: list[Any], param: str) -> None:
    """A value that no run's value of ``key`` could ever match, for its type: a usage error."""
    from ce_lab.shown import quoted

    present = [v for v in values if v is not None]
    if wanted is None:
        return  # null: the runs without a value (train.max_steps), never wrong
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) \
            and _number(wanted) is None:
        raise ParamError(f"«{param}» {key}={quoted(wanted)}: {key} is a number in every run")
    if present and all(isinstance(v, bool) for v in present) and not isinstance(wanted, bool):
        raise ParamError(f"«{param}» {key}={quoted(wanted)}: {key} is true or false in every run")


def _filter_where(leaves: Leaves, rows: list[list[int]], chosen: list[int], out_dir: Path,
                  where: list[tuple[str, Any]], param: str) -> list[int]:
    for key, wanted in where:
        if leaves.column(key) is None:
            raise _unknown_key(key, leaves.keys, param, out_dir)
        ids = {leaves.ids(rows[i], key) for i in range(len(rows))}
        _check_type(key, wanted, [leaves.value(v) for v in ids], param)
        hits = {v for v in ids if v != ABSENT and matches(leaves.value(v), wanted)}
        chosen = [i for i in chosen if leaves.ids(rows[i], key) in hits]
    return chosen


def list_runs(out_dir: Path | str, *, status: Sequence[str] = (), loss: Sequence[str] = (),
              group: str | None = None, last: int | None = None, where: Any = None,
              param: str = "where") -> RunList:
    """The runs under ``out_dir`` with one of ``status`` (a flag such as ``stalled`` matches
    too) and ``loss``, in ``group``, whose config holds every value of ``where`` (see
    ``where_pairs`` and ``matches``); then the ``last`` newest. A ``where`` key no run has is a
    ParamError naming the keys it may have meant."""
    from ce_lab.runs.listing import filter_runs, list_folders

    pairs = where_pairs(where, param)
    listed = list_folders(out_dir)
    kept = {id(e) for e in filter_runs(listed.entries, status=status, loss=loss, group=group)}
    chosen = [i for i, e in enumerate(listed.entries) if id(e) in kept]
    chosen = _filter_where(listed.leaves, listed.rows, chosen, Path(out_dir), pairs, param)
    chosen = chosen[:len(filter_runs([listed.entries[i] for i in chosen], last=last))]
    rows = [listed.rows[i] for i in chosen]
    keys = listed.leaves.differing(rows, ignore=NON_RESULT_KEYS | SHOWN_KEYS)
    leaves = listed.leaves
    at = [(k, leaves.column(k)) for k in keys]
    values = [{k: leaves.value(r[i]) for k, i in at if i < len(r) and r[i] != ABSENT}
              for r in rows]
    return RunList([listed.entries[i] for i in chosen], len(listed.entries), listed.skipped,
                   keys, values)
