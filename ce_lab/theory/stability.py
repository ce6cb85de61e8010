"""Where each way of computing cross-entropy turns inf, NaN or wrong as the logits grow.

The logits are ``scale * PATTERN``: ten classes, evenly spaced from 1 down to 0, so the gap
between the largest and the smallest logit is exactly the scale. Two targets are tried: the
class with the largest logit (a confident, correct prediction) and the one with the smallest (a
confident, wrong one). Each pipeline's loss and gradient with respect to the logits are compared
with a float64 reference on the same (already rounded) logits:
loss = -log_softmax(z)[y] and gradient = softmax(z) - onehot(y).

Where the losses come from ``ce_lab.losses`` the registry function itself is called, so this shows
exactly what training computes; only log_softmax -> nll_loss is not a registered loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ce_lab.errors import UsageError

NUM_CLASSES = 10
PATTERN = tuple(1 - i / (NUM_CLASSES - 1) for i in range(NUM_CLASSES))  # 1, 8/9, ..., 0
TARGETS = {"max": 0, "min": NUM_CLASSES - 1}  # target class: largest logit, smallest logit
DTYPES = ("float32", "float64")
DEFAULT_SCALES = (1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
RTOL = 1e-4  # "wrong": off the float64 reference by more than ATOL + RTOL * |reference|
ATOL = 1e-6
STATUS_ORDER = ("ok", "wrong", "inf", "nan")  # worst last: a row's status is its worst part


@dataclass(frozen=True)
class Pipeline:
    key: str
    label: str  # how the computation is written
    short: str  # a table header (fits 80 columns)
    registry: str | None  # the ce_lab.losses name it reuses, if any


PIPELINES = (
    Pipeline("cross_entropy", "F.cross_entropy(z)", "ce", "ce"),
    Pipeline("softmax_log_nll", "F.nll_loss(torch.log(F.softmax(z)))", "manual", "nll-manual"),
    Pipeline("log_softmax_nll", "F.nll_loss(F.log_softmax(z))", "ls→nll", None),
    Pipeline("softmax_into_ce", "F.cross_entropy(F.softmax(z))", "sm→ce", "double-softmax"),
    Pipeline("log_softmax_into_ce", "F.cross_entropy(F.log_softmax(z))", "ls→ce",
             "log-softmax-ce"),
)


@dataclass(frozen=True)
class Measurement:
    pipeline: str
    dtype: str
    target: str  # "max" or "min"
    scale: float
    loss: float
    grad_norm: float  # L2 norm of d loss / d logits, in float64 from the dtype's gradient
    ref_loss: float
    ref_grad_norm: float
    loss_status: str  # ok | wrong | inf | nan
    grad_status: str

    @property
    def status(self) -> str:
        return max(self.loss_status, self.grad_status, key=STATUS_ORDER.index)


@dataclass(frozen=True)
class Onset:
    pipeline: str
    dtype: str
    target: str
    first_failing_scale: float | None  # the first listed scale that is not ok (None: all ok)
    onset_scale: float | None  # bisected between the last ok and the first failing listed scale
    status: str | None  # what it turns into there: wrong, inf or nan
    fails_from_start: bool  # already failing at the smallest listed scale


@dataclass(frozen=True)
class StabilityReport:
    scales: list[float]
    measurements: list[Measurement]
    onsets: list[Onset]
    exp_underflow_gap: dict[str, float]  # smallest g with exp(-g) == 0, per dtype
    reciprocal_overflow_gap: dict[str, float]  # smallest g with 1 / exp(-g) == inf, per dtype
    double_softmax_floor: float  # log(1 + (C - 1) / e)
    double_softmax_lowest: float  # the lowest double-softmax loss measured
    # max |log_softmax(log_softmax(z)) - log_softmax(z)| per dtype
    log_softmax_idempotence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What ``ce-lab stability --format json`` writes (before ``jsonsafe``)."""
        return {
            "classes": NUM_CLASSES, "pattern": list(PATTERN), "scales": self.scales,
            "targets": TARGETS,
            "tolerance": {"rtol": RTOL, "atol": ATOL},
            "pipelines": {p.key: {"computes": p.label, "registry_loss": p.registry}
                          for p in PIPELINES},
            "measurements": [{**m.__dict__, "status": m.status} for m in self.measurements],
            "onsets": [o.__dict__ for o in self.onsets],
            "exp_underflow_gap": self.exp_underflow_gap,
            "reciprocal_overflow_gap": self.reciprocal_overflow_gap,
            "double_softmax_floor": self.double_softmax_floor,
            "double_softmax_lowest": self.double_softmax_lowest,
            "log_softmax_idempotence_max_abs_diff": self.log_softmax_idempotence,
        }


def check_scales(scales: Sequence[float]) -> list[float]:
    for s in scales:
        if not s > 0:
            raise UsageError(f"--scales: {s:g} is not positive")
    return sorted(set(scales))


def _loss_functions() -> dict[str, Callable]:
    import torch.nn.functional as F

    from ce_lab.config import LossConfig
    from ce_lab.losses import get_loss

    cfg = LossConfig()

    def registered(name: str) -> Callable:
        fn = get_loss(name).fn
        return lambda logits, targets: fn(logits, targets, cfg)

    fns = {p.key: registered(p.registry) for p in PIPELINES if p.registry}
    fns["log_softmax_nll"] = lambda logits, targets: F.nll_loss(F.log_softmax(logits, -1), targets)
    return fns


def _status_of(values, reference, scale_of_reference: float) -> str:
    """ok / wrong / inf / nan for a tensor of values against a float64 reference tensor."""
    import torch

    if torch.isnan(values).any():
        return "nan"
    if torch.isinf(values).any():
        return "inf"
    off = (values.double() - reference).abs().max().item()
    return "wrong" if off > ATOL + RTOL * scale_of_reference else "ok"


def measure(fn: Callable, pipeline: str, dtype: str, target: str, scale: float) -> Measurement:
    import torch
    import torch.nn.functional as F

    torch_dtype = getattr(torch, dtype)
    logits = (scale * torch.tensor(PATTERN, dtype=torch.float64)).to(torch_dtype)
    z = logits.unsqueeze(0).requires_grad_()
    y = torch.tensor([TARGETS[target]])
    loss = fn(z, y)
    (grad,) = torch.autograd.grad(loss, z)

    z64 = logits.double().unsqueeze(0)  # the reference sees the same rounded logits
    ref_loss = -F.log_softmax(z64, -1)[0, TARGETS[target]]
    ref_grad = F.softmax(z64, -1) - F.one_hot(y, NUM_CLASSES).double()
    return Measurement(
        pipeline=pipeline, dtype=dtype, target=target, scale=scale,
        loss=loss.item(), grad_norm=grad.double().norm().item(),
        ref_loss=ref_loss.item() + 0.0,  # + 0.0: -0.0 prints as 0
        ref_grad_norm=ref_grad.norm().item(),
        loss_status=_status_of(loss.detach(), ref_loss, abs(ref_loss.item())),
        grad_status=_status_of(grad, ref_grad, ref_grad.abs().max().item()),
    )


def _onset(fn: Callable, pipeline: str, dtype: str, target: str,
           rows: Sequence[Measurement], steps: int = 50) -> Onset:
    failing = [i for i, m in enumerate(rows) if m.status != "ok"]
    if not failing:
        return Onset(pipeline, dtype, target, None, None, None, False)
    first = failing[0]
    if first == 0:
        return Onset(pipeline, dtype, target, rows[0].scale, None, rows[0].status, True)
    lo, hi = rows[first - 1].scale, rows[first].scale
    status = rows[first].status
    for _ in range(steps):
        mid = (lo + hi) / 2
        m = measure(fn, pipeline, dtype, target, mid)
        if m.status == "ok":
            lo = mid
        else:
            hi, status = mid, m.status
    return Onset(pipeline, dtype, target, rows[first].scale, hi, status, False)


def _threshold_gap(dtype: str, fails: Callable, hi: float = 2000.0, steps: int = 60) -> float:
    """The smallest gap g in (0, hi) for which ``fails(g)`` holds, by bisection."""
    lo = 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return hi


def stability(scales: Sequence[float] = DEFAULT_SCALES) -> StabilityReport:
    import torch
    import torch.nn.functional as F

    scales = check_scales(scales)
    fns = _loss_functions()
    measurements: list[Measurement] = []
    onsets: list[Onset] = []
    for target in TARGETS:
        for dtype in DTYPES:
            for p in PIPELINES:
                rows = [measure(fns[p.key], p.key, dtype, target, s) for s in scales]
                measurements.extend(rows)
                onsets.append(_onset(fns[p.key], p.key, dtype, target, rows))

    def exp_underflows(dtype: str) -> Callable[[float], bool]:
        t = getattr(torch, dtype)
        return lambda g: torch.exp(torch.tensor(-g, dtype=t)).item() == 0.0

    def reciprocal_overflows(dtype: str) -> Callable[[float], bool]:
        t = getattr(torch, dtype)
        return lambda g: math.isinf((1 / torch.exp(torch.tensor(-g, dtype=t))).item())

    idempotence = {}
    for dtype in DTYPES:
        worst = 0.0
        for s in scales:
            z = (s * torch.tensor(PATTERN, dtype=torch.float64)).to(getattr(torch, dtype))
            once = F.log_softmax(z, -1)
            worst = max(worst, (F.log_softmax(once, -1) - once).abs().max().item())
        idempotence[dtype] = worst

    double = [m.loss for m in measurements if m.pipeline == "softmax_into_ce"]
    return StabilityReport(
        scales=scales,
        measurements=measurements,
        onsets=onsets,
        exp_underflow_gap={d: _threshold_gap(d, exp_underflows(d)) for d in DTYPES},
        reciprocal_overflow_gap={d: _threshold_gap(d, reciprocal_overflows(d)) for d in DTYPES},
        double_softmax_floor=math.log(1 + (NUM_CLASSES - 1) / math.e),
        double_softmax_lowest=min((x for x in double if math.isfinite(x)), default=math.nan),
        log_softmax_idempotence=idempotence,
    )
