"""Entropy, cross-entropy and KL divergence of small discrete distributions, in nats and bits.

Plain Python floats: the inputs are a handful of numbers typed on a command line, and importing
torch for them would cost a second. The convention 0 log 0 = 0 is used throughout; a zero in q
where p is positive makes H(p, q) and KL(p || q) infinite, which is reported, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ce_lab.errors import UsageError

LN2 = math.log(2)
DEFAULT_TOLERANCE = 1e-6  # how far from 1 a distribution's sum may be before it is refused


def parse_number(text: str, what: str) -> float:
    """``text`` as a finite float; "a/b" is accepted too, so thirds need not be rounded."""
    t = text.strip()
    try:
        if "/" in t:
            numerator, denominator = t.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(t)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite number")
    return value


def parse_values(texts: Sequence[str], what: str) -> list[float]:
    """Numbers from ``texts``; each item may itself be a comma- or space-separated list."""
    items = [piece for t in texts for piece in t.replace(",", " ").split()]
    if not items:
        raise UsageError(f"{what}: no values given")
    return [parse_number(item, what) for item in items]


def check_distribution(values: Sequence[float], what: str, *, normalize: bool = False,
                       tolerance: float = DEFAULT_TOLERANCE) -> list[float]:
    """``values`` as a probability distribution: non-negative, summing to 1 (or rescaled to)."""
    for i, v in enumerate(values, start=1):
        if v < 0:
            raise UsageError(f"{what}: value {i} is {v:g}; probabilities cannot be negative")
    try:
        total = math.fsum(values)
    except OverflowError:  # e.g. 1e308 1e308: the sum is beyond the largest float
        raise UsageError(f"{what}: the values sum to more than the largest float; "
                         "scale them down") from None
    if normalize:
        if total == 0:
            raise UsageError(f"{what}: the values sum to 0, so they cannot be normalized")
        return [v / total for v in values]
    if abs(total - 1) > tolerance:
        raise UsageError(
            f"{what}: the values sum to {total:.10g}, not 1 (tolerance {tolerance:g}); "
            "fix them or pass --normalize to divide by the sum"
        )
    return list(values)


def entropy(p: Sequence[float]) -> float:
    """H(p) = -sum p_i ln p_i in nats (0 ln 0 = 0)."""
    return -math.fsum(pi * math.log(pi) for pi in p if pi > 0) + 0.0  # + 0.0: never -0.0


def cross_entropy(p: Sequence[float], q: Sequence[float]) -> float:
    """H(p, q) = -sum p_i ln q_i in nats; inf when some q_i = 0 while p_i > 0."""
    if any(pi > 0 and qi == 0 for pi, qi in zip(p, q, strict=True)):
        return math.inf
    return -math.fsum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def kl_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """KL(p || q) = sum p_i ln(p_i / q_i) in nats, computed on its own, not as H(p, q) - H(p)."""
    if any(pi > 0 and qi == 0 for pi, qi in zip(p, q, strict=True)):
        return math.inf
    return math.fsum(pi * _log_ratio(pi, qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def _log_ratio(a: float, b: float) -> float:
    """ln(a / b) for a, b > 0, also where a / b itself overflows or underflows (b subnormal)."""
    ratio = a / b
    if ratio == 0 or math.isinf(ratio):
        return math.log(a) - math.log(b)
    return math.log(ratio)


def binary_cross_entropy(y: float, p: float) -> float:
    """-[y ln p + (1 - y) ln(1 - p)] in nats, written out as the two-class formula."""
    if (y > 0 and p == 0) or (y < 1 and p == 1):
        return math.inf
    first = y * math.log(p) if y > 0 else 0.0
    second = (1 - y) * math.log(1 - p) if y < 1 else 0.0
    return -(first + second)


@dataclass(frozen=True)
class EntropyReport:
    p: list[float]
    input_sum: float
    normalized: bool
    entropy_nats: float
    max_nats: float  # ln n: the entropy of the uniform distribution over the same outcomes

    @property
    def entropy_bits(self) -> float:
        return self.entropy_nats / LN2

    @property
    def max_bits(self) -> float:
        return self.max_nats / LN2

    def to_dict(self) -> dict[str, Any]:
        """What ``ce-lab entropy --format json`` writes (before ``jsonsafe``)."""
        return {
            "p": self.p, "outcomes": len(self.p), "input_sum": self.input_sum,
            "normalized": self.normalized,
            "entropy": {"bits": self.entropy_bits, "nats": self.entropy_nats},
            "max_entropy": {"bits": self.max_bits, "nats": self.max_nats},
            "fraction_of_max": self.entropy_nats / self.max_nats if self.max_nats else None,
        }


def entropy_report(values: Sequence[float], *, normalize: bool = False,
                   tolerance: float = DEFAULT_TOLERANCE, what: str = "entropy") -> EntropyReport:
    p = check_distribution(values, what, normalize=normalize, tolerance=tolerance)
    return EntropyReport(p=p, input_sum=math.fsum(values), normalized=normalize,
                         entropy_nats=entropy(p), max_nats=math.log(len(p)))


@dataclass(frozen=True)
class XentReport:
    p: list[float]
    q: list[float]
    entropy_nats: float
    cross_entropy_nats: float
    kl_nats: float
    infinite_at: list[int]  # 1-based outcomes with q_i = 0 < p_i: why H(p, q) is infinite
    binary: tuple[float, float, float] | None = None  # (y, p, two-class formula in nats)

    @property
    def one_hot(self) -> bool:
        return sum(1 for pi in self.p if pi > 0) == 1

    @property
    def identity_gap(self) -> float:
        """|H(p) + KL(p || q) - H(p, q)|: 0 up to rounding (and 0 when both sides are inf)."""
        lhs = self.entropy_nats + self.kl_nats
        if math.isinf(lhs) and math.isinf(self.cross_entropy_nats):
            return 0.0
        return abs(lhs - self.cross_entropy_nats)

    @property
    def identity_holds(self) -> bool:
        return self.identity_gap <= 1e-12 * max(1.0, abs(self.cross_entropy_nats))

    def to_dict(self) -> dict[str, Any]:
        """What ``ce-lab xent --format json`` writes (before ``jsonsafe``)."""
        return {
            "p": self.p, "q": self.q,
            "nats": {"entropy": self.entropy_nats, "cross_entropy": self.cross_entropy_nats,
                     "kl": self.kl_nats},
            "bits": {"entropy": self.entropy_nats / LN2,
                     "cross_entropy": self.cross_entropy_nats / LN2,
                     "kl": self.kl_nats / LN2},
            "identity_holds": self.identity_holds, "identity_gap": self.identity_gap,
            "one_hot": self.one_hot, "infinite_at": self.infinite_at,
            "binary": None if self.binary is None else
            {"y": self.binary[0], "p": self.binary[1], "loss_nats": self.binary[2]},
        }


def xent_report(p_values: Sequence[float], q_values: Sequence[float], *, normalize: bool = False,
                tolerance: float = DEFAULT_TOLERANCE) -> XentReport:
    if len(p_values) != len(q_values):
        raise UsageError(
            f"--p has {len(p_values)} values but --q has {len(q_values)}; "
            "both must list the same outcomes"
        )
    p = check_distribution(p_values, "--p", normalize=normalize, tolerance=tolerance)
    q = check_distribution(q_values, "--q", normalize=normalize, tolerance=tolerance)
    infinite_at = [i for i, (pi, qi) in enumerate(zip(p, q, strict=True), 1) if pi > 0 and qi == 0]
    return XentReport(p=p, q=q, entropy_nats=entropy(p), cross_entropy_nats=cross_entropy(p, q),
                      kl_nats=kl_divergence(p, q), infinite_at=infinite_at)


def binary_report(y: float, p: float) -> XentReport:
    """The two-class formula, next to the general one on p = (y, 1 - y) and q = (p, 1 - p)."""
    for name, v in (("Y", y), ("P", p)):
        if not 0 <= v <= 1:
            raise UsageError(f"--binary: {name} is {v:g}; it must lie in [0, 1]")
    report = xent_report([y, 1 - y], [p, 1 - p])
    return replace(report, binary=(y, p, binary_cross_entropy(y, p)))
