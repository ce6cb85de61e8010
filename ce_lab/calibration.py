"""Calibration of a run's probabilities: expected calibration error, NLL and Brier score.

The probability rule, one for every loss (but sparsemax, below): p = softmax(z) of the logits.
Predictions are the argmax of the logits for every loss already, and softmax is the one map from
logits to a distribution that every loss shares (for ce, ce-smooth, focal, mae, gce and the softmax pipelines
it is the distribution the loss is a function of); one rule keeps a difference in calibration a
difference made by the loss, not by a choice of normalisation. For losses whose logits estimate
something else (mse and bce: per-class sigmoids; mse-logits: the one-hot vector itself; hinge:
margins) softmax(z) is not their own estimate, and their numbers say how calibrated their logits
are when read as softmax scores (docs/calibration.md). test_logits.npz keeps the logits, so any
other rule can be applied without ce-lab. The exception is a loss that defines its own map from
logits to a distribution, ``LossSpec.probabilities``: sparsemax, whose loss is a function of
sparsemax(z) as ce's is of softmax(z), is measured on sparsemax(z). Its exact zeros make its NLL
infinite as soon as one example's label gets probability 0 (written as such, never clamped: a
distribution that rules the label out is infinitely surprised by it).

- ECE (Naeini et al. 2015; Guo et al. 2017): confidence = max_j p_j, in 15 equal-width bins, bin m
  holding confidences in ((m - 1)/15, m/15]; ECE = sum_m |correct_m - confidence_m| / N, the sums
  over the bin's examples (= sum_m n_m/N |acc_m - conf_m|). A correct example is one whose logit
  argmax is its label (ce-lab's accuracy).
- NLL: the mean of -log p_y (log_softmax: finite for finite logits; sparsemax: inf where p_y = 0).
- Brier score (Brier 1950, multi-class): the mean over examples of sum_j (p_j - onehot_j)^2, in
  [0, 2].

On the device: a chunk of logits (M, B, C) gives every member's sums as one (M, SUMS) tensor, the
bins by a one-hot product (no loop over bins, no .item(), deterministic on a GPU, unlike
scatter_add). The evaluation adds its chunks' sums in float64 after its one transfer; ``finish``
turns them into the metrics, and ``reliability`` into the per-bin table of a reliability diagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor

N_BINS = 15
RULE = ("calibration: p = softmax(z) of the logits for every loss; ECE over 15 equal-width bins "
        "of the confidence max_j p_j; NLL = mean -log p_y; Brier = mean of sum_j (p_j - onehot_j)^2")
OWN_PROBABILITIES = {"sparsemax": "sparsemax(z)"}  # the losses of LossSpec.probabilities, shown


def rule(losses) -> str:
    """RULE, naming the losses among ``losses`` that are measured on their own probabilities."""
    own = [f"{name}: {OWN_PROBABILITIES[name]}" for name in dict.fromkeys(losses)
           if name in OWN_PROBABILITIES]
    return RULE.replace("every loss;", f"every loss ({'; '.join(own)});") if own else RULE


METRICS = ("ece", "nll", "brier")  # eval.csv val_<name>, summary.json final.test_<name>
_HEAD = 2  # sums per member before the bins: nll, brier; then (count, confidence, correct) per bin
SUMS = _HEAD + 3 * N_BINS


def bin_index(confidence: Tensor) -> Tensor:
    """The bin of each confidence: m - 1 for ((m - 1)/15, m/15] (a confidence is >= 1/C > 0)."""
    return (confidence * N_BINS).ceil_().long().sub_(1).clamp_(0, N_BINS - 1)


def chunk_sums(logits: Tensor, targets: Tensor,
               probabilities: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """(M, SUMS) sums over the chunk's examples: -log p_y, the Brier terms, and per bin the
    count, the confidences and the correct predictions. logits (M, B, C), targets (B,);
    ``probabilities``: the loss's map from logits to p, where it is not softmax."""
    import torch

    if probabilities is None:
        log_p = torch.log_softmax(logits, dim=-1)
        probs = log_p.exp()
    else:
        probs = probabilities(logits)
        log_p = probs.log()  # -inf where p is 0
    index = targets.view(1, -1, 1).expand(logits.shape[0], -1, 1)
    nll = log_p.gather(-1, index).sum((-2, -1)).neg_()
    onehot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    brier = (probs - onehot).square_().sum((-2, -1))
    confidence = probs.amax(-1)  # (M, B)
    correct = (logits.argmax(-1) == targets).to(probs.dtype)
    in_bin = (bin_index(confidence).unsqueeze(-1)
              == torch.arange(N_BINS, device=logits.device)).to(probs.dtype)  # (M, B, bins)
    per_bin = in_bin.transpose(-1, -2) @ torch.stack(
        (torch.ones_like(confidence), confidence, correct), -1)  # (M, bins, 3)
    return torch.cat((nll.unsqueeze(1), brier.unsqueeze(1), per_bin.flatten(1)), 1)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's table: per bin, its examples, their mean confidence and accuracy
    (None for an empty bin)."""

    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]

    def to_dict(self) -> dict:
        return {"bins": N_BINS, "count": self.count, "confidence": self.confidence,
                "accuracy": self.accuracy}


def finish(sums: Tensor, n: int) -> tuple[list[dict[str, float]], list[Reliability]]:
    """Every member's {ece, nll, brier} and reliability table from its float64 sums (M, SUMS)
    over ``n`` examples."""
    per_bin = sums[:, _HEAD:].reshape(-1, N_BINS, 3)
    count, conf, correct = per_bin.unbind(-1)
    ece = (correct - conf).abs().sum(-1) / n
    values = [dict(zip(METRICS, row)) for row in
              zip(ece.tolist(), (sums[:, 0] / n).tolist(), (sums[:, 1] / n).tolist())]
    tables = []
    for c, s, k in zip(count.tolist(), conf.tolist(), correct.tolist()):
        tables.append(Reliability([round(x) for x in c],
                                  [a / x if x else None for a, x in zip(s, c)],
                                  [a / x if x else None for a, x in zip(k, c)]))
    return values, tables
