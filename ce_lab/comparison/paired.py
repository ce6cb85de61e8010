"""Paired statistics: each group against the reference loss, seed by seed, with a t interval.

Pairing by seed removes the seed's share of the variance (same initial weights, same batches), so
a difference can be significant where the two groups' spreads overlap. Which metrics get a paired
difference is the registry's ``paired`` flag (accuracies, the AUC of validation accuracy, steps to
each threshold; another module's metric by registering it with ``paired=True``). A metric with a
``resolution`` (steps to a threshold: known only at evaluations) is never called significant within
it. The t quantile comes from scipy.stats, imported inside the function: it costs ~0.3 s.

Multiple comparisons: one comparison tests every paired metric of every loss (and of every setting
the runs are grouped by) at once, ~10 correlated metrics per loss, so some raw interval would
exclude 0 by chance alone. "significant" therefore refers to the Holm-adjusted p-value, the family
being every paired row of the comparison that has a p-value (``holm``). Holm, not Bonferroni: it
controls the same family-wise error rate under any dependence between the metrics and is uniformly
more powerful; not Benjamini-Hochberg, which controls the false discovery rate, a weaker promise
for a verdict read row by row.
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

    @property
    def p(self) -> float | None:
        """The two-sided paired t test's p-value for a mean difference of 0: below
        1 - confidence exactly when the interval excludes 0. None for n = 1, and when every
        difference is equal (sd 0: the t statistic is 0/0 or infinite, scipy's ttest_1samp
        gives NaN; for steps to a threshold that is quantised agreement, resolution-limited)."""
        if self.sd is None or self.sd == 0.0:
            return None
        from scipy.stats import t

        return float(2.0 * t.sf(abs(self.mean) / (self.sd / math.sqrt(self.n)), self.n - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: the k-th smallest of m p-values
    is multiplied by m - k + 1, then made non-decreasing in that order and capped at 1. A row is
    significant at level alpha exactly when its adjusted p-value is below alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * float(p_values[i])))
        out[i] = running
    return out


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


HOLM_NOT_SIGNIFICANT = "not significant after Holm"
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
    # Holm-adjusted p-value over the comparison's family (``paired_differences`` sets it and
    # ``family``, the number of rows adjusted together); None without a raw p-value.
    p_holm: float | None = None
    family: int = 0

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
    def p(self) -> float | None:
        """The raw two-sided p-value; None without an interval."""
        return self.interval.p if self.interval is not None else None

    @property
    def adjusted_excludes_zero(self) -> bool | None:
        """Holm's call: the adjusted p-value below 1 - confidence. None without a p-value."""
        return None if self.p_holm is None else self.p_holm < 1.0 - self.confidence

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
        """The verdict's call: the Holm-adjusted p-value is below 1 - confidence, not
        resolution-limited, at least MIN_INFORMATIVE seeds. None without an interval."""
        iv = self.interval
        if iv is None or iv.significant is None:
            return None
        return bool(self.adjusted_excludes_zero) and not self.resolution_limited and self.informative

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
        elif self.interval.significant and not self.adjusted_excludes_zero:
            base = HOLM_NOT_SIGNIFICANT  # the raw interval excludes 0, the family does not keep it
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


def _reference_row(table: ComparisonTable, row: Row, ref_rows: list[Row],
                   tuned: str | None = None) -> Row | None:
    """The reference group with the same non-loss group values, the ``tuned`` key aside (each loss
    at its own chosen rate is paired with the reference at its own, setting by setting); if there
    is none and the reference loss has exactly one group (e.g. a per-loss lr override), that one."""
    def context(r: Row) -> list[str]:
        return [same(config_value(r.records[0], k)) for k in table.group_by[1:] if k != tuned]

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
    table: ComparisonTable, reference: str, confidence: float = PAIRED_CONFIDENCE,
    tuned: str | None = None,
) -> list[PairedDiff]:
    """Each group against the reference loss's group, per paired metric column, paired by seed.
    ``tuned``: the key each loss's value was chosen for (--tune-lr, --best-of), not a setting."""
    ref_rows = [r for r in table.rows if r.records[0].loss == reference]
    paired = [c.metric for c in table.metric_columns if c.metric.metric.paired]
    out: list[PairedDiff] = []
    for row in table.rows:
        if row.records[0].loss == reference:
            continue
        ref_row = _reference_row(table, row, ref_rows, tuned)
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
    _adjust(out)
    return out


def _adjust(diffs: Sequence[PairedDiff]) -> None:
    """Set each row's Holm-adjusted p-value, the family being every row with a raw p-value: all
    the losses, metrics and settings of the comparison."""
    tested = [d for d in diffs if d.p is not None]
    for d, adjusted in zip(tested, holm([d.p for d in tested])):
        d.p_holm, d.family = adjusted, len(tested)
