"""Paired statistics: each group against the reference loss, seed by seed, with a t interval.

Pairing by seed removes the seed's share of the variance (same initial weights, same batches), so
a difference can be significant where the two groups' spreads overlap. Which metrics get a paired
difference is the registry's ``paired`` flag (accuracies, the AUC of validation accuracy, steps to
each threshold; another module's metric by registering it with ``paired=True``). A metric with a
``resolution`` (steps to a threshold: known only at evaluations) is never called significant within
it. The t quantile comes from scipy.stats, imported inside the function: it costs ~0.3 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ce_lab.comparison.build import Agg, ComparisonTable, Row, config_value
from ce_lab.comparison.missing import member_problem, missing_reason, paired_default
from ce_lab.config import same
from ce_lab.metrics import NOT_MEASURED, THRESHOLD, Expanded
from ce_lab.runs.read import is_number


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


PAIRED_CONFIDENCE = 0.95


def paired_interval(diffs: Sequence[float], confidence: float = PAIRED_CONFIDENCE) -> Interval:
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


MIN_INFORMATIVE = 3  # fewer paired seeds: an interval is computed, but says little (t_{0.975,1} = 12.7)


@dataclass
class PairedDiff:
    """metric(loss) - metric(reference) for one expanded metric (any ``paired=True`` registry
    entry, with or without a parameter), seed by seed.

    A pair whose member diverged or stalled has no difference, for every metric: its numbers are
    not results of training. The interval exists only when every pair has a difference (dropping
    the seeds where a loss failed would flatter it).
    """

    label: str
    reference: str
    metric: Expanded
    seeds: list[int]
    diffs: list[float | None]  # None where a pair has no difference
    missing: dict[int, str]  # seed -> why the loss's member has no usable value
    ref_missing: dict[int, str]  # ... the reference's member
    interval: Interval | None  # only when every pair has a difference
    resolution: float | None = None  # quantisation step of the metric (steps: log.eval_every)
    confidence: float = PAIRED_CONFIDENCE

    @property
    def key(self) -> str:
        """The metric's column key: "steps_to_0.90", "test_acc"."""
        return self.metric.key

    @property
    def param(self) -> Any:
        """The metric's parameter value (a threshold), None for an unparameterised metric."""
        return self.metric.value

    @property
    def threshold(self) -> float | None:
        return self.metric.value if self.metric.metric.param is THRESHOLD else None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def not_reached(self) -> int:
        """Paired seeds where the loss has no usable value."""
        return len(self.missing)

    @property
    def ref_not_reached(self) -> int:
        return len(self.ref_missing)

    @property
    def informative(self) -> bool:
        return self.n >= MIN_INFORMATIVE

    @property
    def resolution_limited(self) -> bool | None:
        """For a quantised metric: every seed's difference is the same quantised value, or the
        interval excludes 0 only by less than the resolution. None without an interval or for an
        unquantised metric."""
        iv = self.interval
        if self.resolution is None or iv is None or iv.lo is None or iv.hi is None:
            return None
        if len(set(self.diffs)) == 1:
            return True
        return bool(iv.significant) and iv.lo - self.resolution <= 0.0 <= iv.hi + self.resolution

    @property
    def significant(self) -> bool | None:
        """The verdict's call: the interval excludes 0, not resolution-limited, at least
        MIN_INFORMATIVE seeds. None without an interval."""
        iv = self.interval
        if iv is None or iv.significant is None:
            return None
        return iv.significant and not self.resolution_limited and self.informative

    def _misses(self) -> list[str]:
        out = []
        for who, missing in ((self.label, self.missing), (self.reference, self.ref_missing)):
            for reason, seeds in _by_reason(missing).items():
                out.append(f"{who} {reason} in {len(seeds)}/{self.n} seeds")
        return out

    @property
    def verdict(self) -> str:
        if self.n == 0:
            return "no paired seeds"
        reasons = [*self.missing.values(), *self.ref_missing.values()]
        if reasons == [NOT_MEASURED] * (2 * self.n):
            return "not measured (no validation split)"
        misses = self._misses()
        if misses:
            return "; ".join(misses)
        assert self.interval is not None
        if self.interval.significant is None:
            return "one seed: no interval"
        if self.resolution_limited:
            base = "resolution-limited"
        else:
            base = "significant" if self.interval.significant else "not significant"
        if not self.informative:
            few = f"{self.n} seeds: interval not informative"
            return f"{base}; {few}" if base == "resolution-limited" else few
        return base


def _by_reason(missing: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for seed, reason in missing.items():
        out.setdefault(reason, []).append(seed)
    return out


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
    if v is None or isinstance(v, bool):
        return None
    return v if math.isfinite(float(v)) else None


def _why_missing(record: Any, metric: Expanded) -> str | None:
    """None when the run's value of ``metric`` can be paired; else why it cannot."""
    problem = member_problem(record.summary)
    if problem is not None:
        return problem
    if _value(record, metric) is None:
        return missing_reason(record, metric.metric, paired_default(metric.metric))
    return None


def _resolution(records: Sequence[Any], metric: Expanded) -> float | None:
    """The largest quantisation step among the paired runs (a config value), None if unquantised."""
    key = metric.metric.resolution
    if key is None:
        return None
    steps = [config_value(r, key) for r in records]
    nums = [float(s) for s in steps if is_number(s)]
    return max(nums) if nums else None


def paired_differences(
    table: ComparisonTable, reference: str, confidence: float = PAIRED_CONFIDENCE
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
        pairs = [r for s in seeds for r in (by_seed[s], ref_by_seed[s])]
        for metric in paired:
            diffs: list[float | None] = []
            missing: dict[int, str] = {}
            ref_missing: dict[int, str] = {}
            for s in seeds:
                a, b = by_seed[s], ref_by_seed[s]
                why_a, why_b = _why_missing(a, metric), _why_missing(b, metric)
                if why_a is not None:
                    missing[s] = why_a
                if why_b is not None:
                    ref_missing[s] = why_b
                diffs.append(None if why_a is not None or why_b is not None
                             else float(_value(a, metric)) - float(_value(b, metric)))
            interval = None
            if seeds and not missing and not ref_missing:
                interval = paired_interval([d for d in diffs if d is not None], confidence)
            out.append(PairedDiff(row.label, ref_row.label, metric, seeds, diffs, missing,
                                  ref_missing, interval, _resolution(pairs, metric), confidence))
    return out
