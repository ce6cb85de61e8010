"""The format of run and comparison folders: its version, and one upgrade per file kind that maps
what an older ce-lab wrote to the shape readers expect today.

meta.json and comparison.json hold ``"format": FORMAT``; a folder without the key is format 0 (a
ce-lab from before it, whatever it wrote then), and summary.json is of its run's meta.json
format. The readers (``ce_lab.runs.read``, ``ce_lab.runs.record``) pass every file through its
upgrade, which consumes the key: what they see, and show, is today's shape, without it. Nothing on
disk is rewritten. A folder of a newer format than this ce-lab knows is refused, one line.

From format 0 to 1:
- summary.json's ``grad_summary``: runs summarised the first and the last epoch, under
  ``first_epoch`` / ``last_epoch`` and ``logit_grad_norm_start`` / ``_end``, before the early and
  late windows (the first and last tenth of the logged rows) replaced them. They are read under
  the windows' keys, in their own meaning (with one epoch, the same rows); the metrics' help says
  so.

What a version cannot say: a resumed run keeps the CSV header it started with, so the CSV columns
added since (the metric registry's ``added_later``) are read by name, in any format.

Plain Python: no other ce_lab module is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMAT = 1

# Format 0's grad_summary keys -> today's (tests/run_factory.py writes the old ones)
OLD_GRAD_KEYS = {"first_epoch": "early", "last_epoch": "late",
                 "logit_grad_norm_start": "logit_grad_norm_early",
                 "logit_grad_norm_end": "logit_grad_norm_late"}


class NewerFormat(ValueError):
    """A file of a format this ce-lab does not know yet."""


def version_problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with a file's ``format`` key (for the readers' type checks); None if fine."""
    v = data.get("format", 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        return "format is not a version number"
    return None


def version(data: Mapping[str, Any], name: str) -> int:
    """The format of a file (``name``, for the message) whose key passed ``version_problem``;
    NewerFormat where it is newer than this ce-lab's."""
    v = data.get("format", 0)
    if v > FORMAT:
        raise NewerFormat(f"{name} is of format {v}, newer than this ce-lab reads ({FORMAT}); "
                          "upgrade ce-lab to read it")
    return v


def _without_format(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "format"}


def upgrade_meta(meta: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """meta.json in today's shape, and the folder's format (its summary.json's too)."""
    v = version(meta, "meta.json")
    return _without_format(meta), v  # format 0's meta.json is today's, less the key


def upgrade_summary(summary: Mapping[str, Any], v: int) -> dict[str, Any]:
    """summary.json of a folder of format ``v`` in today's shape."""
    out = dict(summary)
    grads = out.get("grad_summary")
    if v < 1 and isinstance(grads, Mapping):
        new = {k: val for k, val in grads.items() if k not in OLD_GRAD_KEYS}
        for old, key in OLD_GRAD_KEYS.items():
            if old in grads and key not in new:
                new[key] = grads[old]
        out["grad_summary"] = new
    return out


def upgrade_comparison(data: Mapping[str, Any]) -> dict[str, Any]:
    """comparison.json in today's shape (format 0's is today's, less the key)."""
    version(data, "comparison.json")
    return _without_format(data)
