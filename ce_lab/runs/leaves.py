"""Run configs as interned leaves: which config keys differ between thousands of runs, and which
runs hold a value, without flattening or comparing thousands of configs each time.

A config flattened (``optim.lr``, ``model.hidden``, ...) is a row of value ids aligned with one
list of keys; each value is kept once, as its identity text (``config_keys.same``: JSON, so 1 and
1.0 and true stay apart as they do everywhere else). Two runs hold the same value of a key when
their ids for it are equal, so the keys that differ among N runs are the columns of their rows
holding more than one id, found with set() over each column. ``ce_lab.runs.index`` keeps the
tables and each run's row beside the run folders, so a listing interns only the runs it reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ce_lab.config_keys import flatten, same

ABSENT = -1  # the id of a key a run's config lacks (an older run's, a key added since)


class Leaves:
    """The keys and the distinct values of many flattened configs (see the module's doc)."""

    def __init__(self, keys: Sequence[str] = (), values: Sequence[str] = ()):
        self.keys: list[str] = list(keys)
        self.values: list[str] = list(values)
        self._key_at = {k: i for i, k in enumerate(self.keys)}
        self._value_id = {v: i for i, v in enumerate(self.values)}
        self._decoded: dict[int, Any] = {}

    @classmethod
    def from_json(cls, data: Any) -> Leaves | None:
        """The tables as ``to_json`` wrote them, or None if they are not that (a forged or broken
        index: its entries are then not trusted)."""
        if not isinstance(data, dict):
            return None
        keys, values = data.get("keys"), data.get("values")
        if not (isinstance(keys, list) and isinstance(values, list)
                and all(isinstance(k, str) for k in keys) and all(isinstance(v, str) for v in values)
                and len(set(keys)) == len(keys) and len(set(values)) == len(values)):
            return None
        return cls(keys, values)

    def to_json(self) -> dict[str, list[str]]:
        return {"keys": self.keys, "values": self.values}

    def valid(self, row: Any) -> bool:
        """Whether ``row`` (from a file) is a row of these tables."""
        return (isinstance(row, list) and len(row) <= len(self.keys)
                and (not row or (set(map(type, row)) == {int}  # not bool, float or str
                                 and min(row) >= ABSENT and max(row) < len(self.values))))

    def intern(self, config: Mapping[str, Any]) -> list[int]:
        """A nested config as a row of value ids, keys and values it brings added."""
        flat = flatten(config)
        for key in flat:
            if key not in self._key_at:
                self._key_at[key] = len(self.keys)
                self.keys.append(key)
        row = [ABSENT] * len(self.keys)
        for key, value in flat.items():
            text = same(value)
            vid = self._value_id.get(text)
            if vid is None:
                vid = self._value_id[text] = len(self.values)
                self.values.append(text)
            row[self._key_at[key]] = vid
        return row

    def value(self, vid: int) -> Any:
        """The value of id ``vid`` (decoded once); None for ABSENT."""
        if vid == ABSENT:
            return None
        if vid not in self._decoded:
            try:
                self._decoded[vid] = json.loads(self.values[vid])
            except (ValueError, RecursionError):  # not JSON: what same() made of a YAML date
                self._decoded[vid] = self.values[vid]
        return self._decoded[vid]

    def column(self, key: str) -> int | None:
        return self._key_at.get(key)

    def differing(self, rows: Sequence[Sequence[int]], ignore: Iterable[str] = ()) -> list[str]:
        """The keys whose ids are not all equal across ``rows`` (a key some lack differs), in
        the order keys were first seen, but those in ``ignore``."""
        if len(rows) < 2:
            return []
        width = len(self.keys)
        padded = [list(r) + [ABSENT] * (width - len(r)) if len(r) < width else r for r in rows]
        skip = set(ignore)
        return [key for key, ids in zip(self.keys, zip(*padded))
                if key not in skip and len(set(ids)) > 1]

    def ids(self, row: Sequence[int], key: str) -> int:
        """The id ``row`` holds for ``key`` (ABSENT if it lacks it)."""
        at = self._key_at.get(key)
        return row[at] if at is not None and at < len(row) else ABSENT

    def packed(self, rows: Mapping[str, list[int]]) -> tuple[dict[str, list[str]],
                                                              dict[str, list[int]]]:
        """The tables as ``to_json`` writes them, holding only the values some row of ``rows``
        holds (so they do not grow with runs removed), and the rows renumbered to match; this
        object is left as it is (rows read before still point into it)."""
        used = sorted(set().union(*rows.values()) - {ABSENT}) if rows else []
        if len(used) == len(self.values):
            return self.to_json(), dict(rows)
        renumber = {old: new for new, old in enumerate(used)}
        renumber[ABSENT] = ABSENT
        return ({"keys": self.keys, "values": [self.values[i] for i in used]},
                {name: [renumber[i] for i in row] for name, row in rows.items()})
