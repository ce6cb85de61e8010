"""Summaries over seeds: mean ± sample std, and paired differences with a Student-t interval.

The t quantile comes from scipy.stats (imported inside the function: it costs ~0.3 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Agg:
    """One metric over the runs of a group: ``values`` holds None where a run has no value."""

    values: tuple[float | None, ...]

    @property
    def present(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def n(self) -> int:
        """Runs with a value."""
        return len(self.present)

    @property
    def of(self) -> int:
        """Runs in the group."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        vals = self.present
        return math.fsum(vals) / len(vals) if vals else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None below two values."""
        vals = self.present
        if len(vals) < 2:
            return None
        m = math.fsum(vals) / len(vals)
        return math.sqrt(math.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1))


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
