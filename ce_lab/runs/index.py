"""A cache of what ``ce-lab runs`` reads of each run folder, kept beside the folders.

Listing 10,000 run folders means parsing 10,000 config.yaml, meta.json and summary.json files
(seconds, most of it YAML); the cache holds what they parsed to, keyed by each file's
(mtime_ns, size, inode), in ``<out_dir>/.runs-index.json``. The folders stay the truth: an entry
whose stamp differs from its files' (a run that went on, was resumed, edited, replaced) is read
from the folder again, and a folder the cache does not know is read and added. A run's config
and summary are kept as JSON text, decoded only when a listing uses them (``--last 5`` of 10,000
runs decodes five), while meta.json's content, which orders and filters the runs, is at hand, and
so are what a listing's row shows of the summary (``row``) and the config as a row of interned
leaves (``ce_lab.runs.leaves``: the keys that differ between the runs listed, ``--where``). The
file is one line of JSON holding all that, then one line per run with its config and summary
(the run's entry says which line), so loading it parses none of those lines: most of its bytes.
The cache is an optimisation only: unreadable, foreign, over its bound or of another ce-lab version, it is
ignored and rebuilt; a folder where it cannot be written (read-only) is listed all the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ce_lab import __version__
from ce_lab.runs.formats import FORMAT
from ce_lab.runs.leaves import Leaves
from ce_lab.runs.names import CONFIG, META, SUMMARY
from ce_lab.safe_io import MAX_JSON_BYTES, MAX_YAML_BYTES

INDEX = ".runs-index.json"
KIND = "ce-lab runs index"
# What a reading is made of (the folder formats' upgrades, the readers' checks) changes with the
# code: an index written by another version, or for another run folder format, is rebuilt.
VERSION = f"{__version__}/format {FORMAT}/index 4"
# An entry holds at most its three files' content, parsed: their bounds, with room for the JSON
# escapes of what YAML wrote plainly. The cap on the whole index scales with the folders listed.
ENTRY_BYTES = 2 * (2 * MAX_JSON_BYTES + MAX_YAML_BYTES)

Stamp = list[list[int] | None]
_STR, _STR_OR_NONE = {str}, {str, type(None)}
_INT, _NUM = {int, type(None)}, {int, float, type(None)}


def row_problem(row: Any) -> bool:
    """Whether a cached ``row`` (``ce_lab.runs.listing.cached_row``) is not what a fresh
    reading gives: the types a summary.json that passes the reader's checks has (exact types:
    a bool is no integer; checked for 10,000 rows a listing, so by type, at once)."""
    if type(row) is not dict:
        return True
    flags = row.get("flags")
    return not (type(row.get("loss")) is str and type(flags) is list
                and set(map(type, flags)) <= _STR
                and type(row.get("seed")) in _INT and type(row.get("steps")) in _INT
                and type(row.get("val_acc")) in _NUM and type(row.get("test_acc")) in _NUM
                and type(row.get("group")) in _STR_OR_NONE)


def decode_rest(rest: str) -> dict[str, Any] | None:
    """A cached config and summary from their text, or None if they fail the reader's checks."""
    from ce_lab.runs.read import summary_problem

    try:
        data = json.loads(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    config, summary = data.get("config"), data.get("summary")
    if not (isinstance(config, dict) and isinstance(summary, dict)
            and (not summary or summary_problem(summary) is None)):
        return None
    return data


def stamp(folder: Path) -> Stamp:
    """(mtime_ns, size, inode) of each file a listing reads; None for a missing one. A file
    rewritten (atomically: a new inode) or appended to gets a new stamp."""
    out: Stamp = []
    base = os.fspath(folder)
    for name in (META, CONFIG, SUMMARY):
        try:
            st = os.stat(os.path.join(base, name))  # not Path's /: 30,000 of these a listing
        except OSError:
            out.append(None)
            continue
        out.append([st.st_mtime_ns, st.st_size, st.st_ino])
    return out


class RunIndex:
    """The cached readings of one out_dir's run folders: ``get`` a folder's while its stamp
    holds, ``put`` a new one, ``save`` if anything changed."""

    def __init__(self, out_dir: Path, folders: int):
        self.path = Path(out_dir) / INDEX
        self.entries: dict[str, dict[str, Any]] = {}
        self.leaves = Leaves()  # the configs' keys and values, which entries' "leaves" index
        self.changed = False
        self.kept: set[str] = set()  # the entries that passed get's checks or were put now
        self._load((folders + 1) * ENTRY_BYTES)

    def _load(self, limit: int) -> None:
        from ce_lab.errors import CeLabError
        from ce_lab.safe_io import read_limited_text

        try:
            head, _, tail = read_limited_text(self.path, limit).partition("\n")
            data = json.loads(head)
        except (OSError, ValueError, RecursionError, CeLabError):
            return  # none yet, or not one to trust: every folder is read
        if (isinstance(data, dict) and data.get("kind") == KIND
                and data.get("version") == VERSION and isinstance(data.get("runs"), dict)):
            leaves = Leaves.from_json(data.get("configs"))
            if leaves is None:  # entries' leaves mean nothing without their tables
                return
            lines = tail.split("\n") if tail else []
            for entry in data["runs"].values():  # each entry's line of text, or None: not trusted
                if isinstance(entry, dict):
                    at = entry.get("rest")
                    entry["rest"] = lines[at] if type(at) is int and 0 <= at < len(lines) else None
            self.entries, self.leaves = data["runs"], leaves

    def get(self, name: str, current: Stamp) -> dict[str, Any] | None:
        """The cached reading of folder ``name`` if its files are as they were, else None:
        ``{"meta": ..., "rest": TEXT, "row": ..., "leaves": [...]}``: its config and summary as
        JSON text (``decode_rest``), what its listing row shows of them, its config's leaves."""
        entry = self.entries.get(name)
        if not isinstance(entry, dict) or entry.get("stamp") != current:
            return None
        # The index is a file like any other: what it holds passes the checks a fresh reading
        # of the folder passes (the rest when it is decoded), or the folder is read.
        from ce_lab.runs.read import meta_problem

        meta, rest = entry.get("meta"), entry.get("rest")
        if not (isinstance(meta, dict) and isinstance(rest, str) and meta_problem(meta) is None
                and not row_problem(entry.get("row")) and self.leaves.valid(entry.get("leaves"))):
            return None
        self.kept.add(name)
        return entry

    def put(self, name: str, current: Stamp, reading: dict[str, Any], row: dict[str, Any],
            leaves: list[int]) -> None:
        """Remember a folder's reading (with its listing ``row`` and its config's ``leaves``,
        interned in ``self.leaves``), unless JSON would not give it back exactly (a YAML date,
        an integer key, a NaN): that folder is read each time instead."""
        try:
            if json.loads(json.dumps([reading, row])) != [reading, row]:
                return
            rest = json.dumps({"config": reading["config"], "summary": reading["summary"]},
                              separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            return
        self.entries[name] = {"stamp": current, "meta": reading["meta"], "rest": rest, "row": row,
                              "leaves": leaves}
        self.kept.add(name)
        self.changed = True

    def save(self) -> None:
        """Write the index (only the entries kept: folders listed now whose entry held or was
        put) if it changed; silently not at all where it cannot be written: the listing is right
        without it."""
        from ce_lab.errors import CeLabError
        from ce_lab.safe_io import atomic_write_text

        if not self.changed and len(self.kept) == len(self.entries):
            return
        runs = {k: v for k, v in self.entries.items() if k in self.kept}
        # Only the values the runs kept hold, so the tables do not grow with runs removed.
        tables, rows = self.leaves.packed({k: v["leaves"] for k, v in runs.items()})
        rests = [v["rest"] for v in runs.values()]  # JSON text: no line break (ensure_ascii)
        runs = {k: v | {"leaves": rows[k], "rest": at} for at, (k, v) in enumerate(runs.items())}
        head = json.dumps({"kind": KIND, "version": VERSION, "configs": tables, "runs": runs},
                          separators=(",", ":"))
        text = "\n".join([head, *rests])
        try:
            atomic_write_text(self.path, text)
        except (OSError, ValueError, CeLabError):
            pass
