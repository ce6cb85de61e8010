"""Paired statistics: each group against the reference loss, seed by seed, with a t interval.

Pairing by seed removes the seed's share of the variance (same initial weights, same batches), so
a difference can be significant where the two groups' spreads overlap. Which metrics get a paired
difference is the registry's ``paired`` flag (today: steps to each threshold). The t quantile comes
from scipy.stats, imported inside the function: it costs ~0.3 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ce_lab.compare.build import Agg, ComparisonTable, Row, config_value, same
from ce_lab.metrics import Expanded


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Interval:
    mean: float
    sd: float | None
    n: int
    lo: float | None  # None when n = 1: one pair gives no interval
    hi: float | None

    @property
    def significant(self) -> bool | None:
        """False when the interval contains zero; None without an interval."""
        if self.lo is None or self.hi is None:
            return None
        return not (self.lo <= 0.0 <= self.hi)


def paired_interval(diffs: Sequence[float], confidence: float = 0.95) -> Interval:
    """mean ± t_{(1+c)/2, n-1} · sd / sqrt(n) over the per-seed differences."""
    if not diffs:
        raise ValueError("no differences")
    agg = Agg(tuple(float(d) for d in diffs))
    mean = agg.mean
    assert mean is not None
    n = agg.n
    if n < 2:
        return Interval(mean, None, n, None, None)
    sd = agg.std
    assert sd is not None
    half = t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, sd, n, mean - half, mean + half)


@dataclass
class PairedDiff:
    """metric(loss) - metric(reference) for one parameter value (a threshold), seed by seed."""

    label: str
    reference: str
    threshold: float  # the metric's parameter value
    seeds: list[int]
    diffs: list[float | None]  # None where either run of the pair has no value (not reached)
    not_reached: int  # paired seeds where the loss has no value
    ref_not_reached: int  # ... where the reference has none
    interval: Interval | None  # only when every pair has both values
    metric: Expanded | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        if self.n == 0:
            return "no paired seeds"
        misses = []
        if self.not_reached:
            misses.append(f"{self.label} not reached in {self.not_reached}/{self.n} seeds")
        if self.ref_not_reached:
            misses.append(f"{self.reference} not reached in {self.ref_not_reached}/{self.n} seeds")
        if misses:
            return "; ".join(misses)
        assert self.interval is not None
        if self.interval.significant is None:
            return "one seed: no interval"
        return "significant" if self.interval.significant else "not significant"


def _reference_row(table: ComparisonTable, row: Row, ref_rows: list[Row]) -> Row | None:
    """The reference group with the same non-loss group values; if there is none and the reference
    loss has exactly one group (e.g. a per-loss lr override), that one."""
    def context(r: Row) -> list[str]:
        return [same(config_value(r.records[0], k)) for k in table.group_by[1:]]

    ref = [rr for rr in ref_rows if context(rr) == context(row)]
    if not ref and len(ref_rows) == 1:
        ref = ref_rows
    return ref[0] if len(ref) == 1 else None


def _value(record: Any, metric: Expanded) -> Any:
    v = metric.read(record.summary)
    return None if v is None or isinstance(v, bool) else v


def paired_differences(
    table: ComparisonTable, reference: str, confidence: float = 0.95
) -> list[PairedDiff]:
    """Each group against the reference loss's group, per paired metric column, paired by seed."""
    ref_rows = [r for r in table.rows if r.records[0].loss == reference]
    paired = [c.metric for c in table.metric_columns if c.metric.metric.paired]
    out: list[PairedDiff] = []
    for row in table.rows:
        if row.records[0].loss == reference:
            continue
        ref_row = _reference_row(table, row, ref_rows)
        if ref_row is None:
            continue
        by_seed = {r.seed: r for r in row.records if r.seed is not None}
        ref_by_seed = {r.seed: r for r in ref_row.records if r.seed is not None}
        seeds = sorted(set(by_seed) & set(ref_by_seed))
        for metric in paired:
            diffs: list[float | None] = []
            miss = ref_miss = 0
            for s in seeds:
                a, b = _value(by_seed[s], metric), _value(ref_by_seed[s], metric)
                miss += a is None
                ref_miss += b is None
                diffs.append(None if a is None or b is None else float(a) - float(b))
            interval = None
            if seeds and not miss and not ref_miss:
                interval = paired_interval([d for d in diffs if d is not None], confidence)
            out.append(PairedDiff(row.label, ref_row.label, metric.value, seeds, diffs, miss,
                                  ref_miss, interval, metric))
    return out
