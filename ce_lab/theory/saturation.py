"""How hard each loss pushes one output unit, as a function of how right it already is.

Setup (what is held fixed): one unit with logit z for the true class; the predicted probability of
that class is p = sigmoid(z), so z = ln(p / (1 - p)). For every p the gradient |d loss / d z| is
taken with autograd in float64 through the losses of ``ce_lab.losses`` that training uses:

- ``mse``:  (sigmoid(z) - 1)^2            -> 2 p (1 - p)^2, with its factor sigmoid'(z) = p (1 - p)
- ``bce``:  -ln sigmoid(z)                 -> 1 - p  (p - y with y = 1)
- ``ce``:   softmax over the two logits (0, z), true class the second: the same p, the same 1 - p
- ``hinge``: F.multi_margin_loss on (0, z), times 2 to undo its mean over the 2 classes, which is
  max(0, m - z): gradient 1 until the margin z >= m is met (p >= sigmoid(m)), then 0

A batch of N points is evaluated at once; every loss is a batch mean, so it is multiplied by N to
get each point's own gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ce_lab.errors import CeLabError, UsageError

LOSSES = ("mse", "bce", "ce", "hinge")
DEFAULT_PROBS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
COLLAPSE_FRACTION = 0.1  # MSE's gradient below this fraction of its own maximum counts as collapsed
CURVE_LOGITS = (-9.0, 9.0, 1801)  # z from, to, points (step 0.01): the plot and MSE's maximum


@dataclass(frozen=True)
class SaturationReport:
    probs: list[float]
    logits: list[float]
    sigmoid_prime: list[float]  # sigmoid'(z) = sigmoid(z)(1 - sigmoid(z)), by autograd
    grads: dict[str, list[float]]  # loss name -> |d loss / d z| at each p
    hinge_margin: float
    mse_max: float  # the largest MSE gradient over the dense curve
    mse_argmax: float  # the p where it occurs
    collapse_fraction: float
    collapsed_below: float  # MSE's gradient is collapsed for p < this (wrong and confident) ...
    collapsed_above: float  # ... and for p > this (right: nothing left to learn, harmless)
    curve: dict[str, list[float]]  # "p" and each loss on the dense grid, for the plot

    def collapsed(self, p: float) -> bool:
        return p < self.collapsed_below or p > self.collapsed_above

    def to_dict(self) -> dict[str, Any]:
        """What ``ce-lab saturation --format json`` writes (before ``jsonsafe``), but the plot."""
        return {
            "setup": "one output unit, logit z, p = sigmoid(z), true label 1; |d loss / d z| by "
                     "autograd in float64. mse: (sigmoid(z) - 1)^2; bce: -ln sigmoid(z); ce: "
                     "softmax over logits (0, z); hinge: max(0, m - z)",
            "hinge_margin": self.hinge_margin,
            "rows": [
                {"p": p, "z": z, "sigmoid_prime": sp,
                 **{name: self.grads[name][i] for name in self.grads},
                 "mse_collapsed": self.collapsed(p)}
                for i, (p, z, sp) in enumerate(zip(self.probs, self.logits, self.sigmoid_prime,
                                                   strict=True))
            ],
            "mse_max": {"grad": self.mse_max, "p": self.mse_argmax},
            "collapse_fraction": self.collapse_fraction,
            "mse_collapsed_below_p": self.collapsed_below,
            "mse_collapsed_above_p": self.collapsed_above,
        }


def check_probs(probs: Sequence[float]) -> list[float]:
    for p in probs:
        if not 0 < p < 1:
            raise UsageError(f"--probs: {p:g} is not strictly between 0 and 1")
    return sorted(set(probs))


def logit_gradients(probs: Sequence[float], hinge_margin: float = 1.0) -> dict[str, list[float]]:
    """|d loss / d z| at each p (z = logit(p)) for every loss, and sigmoid'(z), by autograd."""
    import torch

    from ce_lab.config import LossConfig
    from ce_lab.losses import get_loss

    cfg = LossConfig(hinge_margin=hinge_margin)
    n = len(probs)
    p = torch.tensor(list(probs), dtype=torch.float64)

    def grad_of(loss_name: str, two_logits: bool, undo_mean: float) -> list[float]:
        z = torch.logit(p).requires_grad_()
        if two_logits:  # the other class's logit is held at 0, so softmax gives it 1 - p
            logits = torch.stack([torch.zeros_like(z), z], dim=1)
            targets = torch.ones(n, dtype=torch.long)
        else:  # a single class: one_hot(0) is the target 1 for that unit
            logits = z.unsqueeze(1)
            targets = torch.zeros(n, dtype=torch.long)
        loss = get_loss(loss_name).fn(logits, targets, cfg) * undo_mean
        (g,) = torch.autograd.grad(loss, z)
        return g.abs().tolist()

    z = torch.logit(p).requires_grad_()
    (sig_prime,) = torch.autograd.grad(torch.sigmoid(z).sum(), z)
    return {
        "sigmoid_prime": sig_prime.tolist(),
        "mse": grad_of("mse", False, n),
        "bce": grad_of("bce", False, n),
        "ce": grad_of("ce", True, n),
        "hinge": grad_of("hinge", True, 2 * n),  # multi_margin_loss also divides by the 2 classes
    }


def _bisect(f, lo: float, hi: float, steps: int = 60) -> float:
    """The point in [lo, hi] where f changes sign (f(lo) and f(hi) differ in sign)."""
    f_lo = f(lo) > 0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == f_lo:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def saturation(probs: Sequence[float] = DEFAULT_PROBS, hinge_margin: float = 1.0,
               collapse_fraction: float = COLLAPSE_FRACTION) -> SaturationReport:
    import torch

    probs = check_probs(probs)
    rows = logit_gradients(probs, hinge_margin)
    lo, hi, points = CURVE_LOGITS
    dense = torch.sigmoid(torch.linspace(lo, hi, points, dtype=torch.float64)).tolist()
    curve = logit_gradients(dense, hinge_margin)
    mse_curve = curve["mse"]
    top = max(range(len(dense)), key=mse_curve.__getitem__)
    mse_max, mse_argmax = mse_curve[top], dense[top]
    threshold = collapse_fraction * mse_max

    def above_threshold(p: float) -> float:
        return logit_gradients([p], hinge_margin)["mse"][0] - threshold

    # MSE's gradient rises then falls in p; each side crosses the threshold once.
    tiny = 1e-12
    below = _bisect(above_threshold, tiny, mse_argmax)
    above = _bisect(above_threshold, mse_argmax, 1 - tiny)
    return SaturationReport(
        probs=probs,
        logits=torch.logit(torch.tensor(probs, dtype=torch.float64)).tolist(),
        sigmoid_prime=rows["sigmoid_prime"],
        grads={name: rows[name] for name in LOSSES},
        hinge_margin=hinge_margin,
        mse_max=mse_max,
        mse_argmax=mse_argmax,
        collapse_fraction=collapse_fraction,
        collapsed_below=below,
        collapsed_above=above,
        curve={"p": dense, **{name: curve[name] for name in LOSSES}},
    )


def plot(report: SaturationReport, path: Path) -> Path:
    """Write |d loss / d z| against p as a PNG, with MSE's collapsed regime shaded."""
    # The object-oriented API with the Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    p = report.curve["p"]
    labels = {
        "mse": "MSE on sigmoid: 2p(1-p)²",
        "bce": "BCE / cross-entropy: 1-p",
        "hinge": f"hinge, margin {report.hinge_margin:g}",
    }
    styles = {"mse": "-", "bce": "-", "hinge": "--"}
    for name, label in labels.items():
        ax.plot(p, report.curve[name], styles[name], label=label, linewidth=2)
    ax.axvspan(p[0], report.collapsed_below, color="tab:red", alpha=0.2,
               label=f"MSE collapsed, wrong (p < {report.collapsed_below:.3f})")
    ax.axvspan(report.collapsed_above, p[-1], color="tab:gray", alpha=0.15,
               label=f"MSE small, already right (p > {report.collapsed_above:.3f})")
    ax.axhline(report.collapse_fraction * report.mse_max, color="tab:red", linewidth=0.8,
               linestyle=":")
    ax.set_xlabel("predicted probability of the true class, p = sigmoid(z)")
    ax.set_ylabel("|d loss / d z|  (one output unit)")
    ax.set_title("Gradient reaching the logit: MSE on a sigmoid vanishes when confidently wrong")
    # A logit-scaled p axis: uniform in z, so both saturated tails get room, labelled in p.
    ax.set_xscale("logit")
    ax.set_xlim(p[0], p[-1])
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise CeLabError(f"cannot write the plot to {path}: {e.strerror or e}") from None
    return path

