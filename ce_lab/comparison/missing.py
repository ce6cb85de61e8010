"""Why a run has no number for a metric, in the words every table and paired verdict uses.

A number can be absent for different reasons that mean different things: the run diverged (its
later values are not results of training), it stalled (summary.json "flags", written by the
training side), there was no validation split to measure on (``data.val_size=0``), or it simply
never got there (a threshold not reached). Saying "not reached" for all of them hid the first
three, so each reader asks here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ce_lab.metrics import NOT_MEASURED, NOT_REACHED, THRESHOLD, SummaryMetric

STALLED = "stalled"  # the flag value in summary.json "flags", and how it is shown
NO_VALUE = "no value"  # a paired verdict's word for a plain missing number (an interrupted run)


def flags(summary: Mapping[str, Any]) -> list[str]:
    """summary.json "flags" (old runs lack the key; a run folder's reader checked its type)."""
    return list(summary.get("flags") or [])


def member_problem(summary: Mapping[str, Any]) -> str | None:
    """"diverged at step k (quantity)" or "stalled" for a member whose numbers are not results of
    training; None for one that trained normally."""
    step = summary.get("diverged_at")
    if step is not None:
        quantity = summary.get("diverged_quantity") or "unknown quantity"
        return f"diverged at step {step} ({quantity})"
    if STALLED in flags(summary):
        return STALLED
    return None


def has_val_split(config: Mapping[str, Any]) -> bool:
    data = config.get("data")
    return not (isinstance(data, Mapping) and data.get("val_size") == 0)


def missing_reason(record: Any, metric: SummaryMetric, default: str | None = None) -> str:
    """Why ``record`` (a RunRecord) has no value of ``metric``: its member problem for a threshold,
    "not measured" for a validation metric without a validation split, else ``default`` (the
    metric's own word: "not reached" for a threshold, "—" otherwise)."""
    if metric.param is THRESHOLD:
        problem = member_problem(record.summary)
        if problem is not None:
            return problem
    if metric.needs_val and not has_val_split(record.config):
        return NOT_MEASURED
    return metric.missing if default is None else default


def paired_default(metric: SummaryMetric) -> str:
    """A paired verdict's word for a plain missing value of ``metric``."""
    return NOT_REACHED if metric.param is THRESHOLD else NO_VALUE


def count_reasons(reasons: Sequence[str], of: int) -> str:
    """"not reached" when all ``of`` agree; else "not reached (2/3), diverged at step 580 (loss) (1/3)"."""
    counts = Counter(reasons)
    if len(counts) == 1 and len(reasons) == of:
        return reasons[0]
    return ", ".join(f"{r} ({c}/{of})" for r, c in counts.items())
