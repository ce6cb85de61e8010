"""Float64 references written from the definitions, not with torch.nn.functional or the code
under test: the building blocks of the loss references (tests/test_losses.py,
tests/test_literature_losses.py), the literature losses' values and gradients, and calibration
(ECE, NLL, Brier) in numpy (tests/test_calibration.py, tests/test_compare_stats.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ce_lab.config import LossConfig

F64 = torch.float64


def onehot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    out = torch.zeros(len(targets), num_classes, dtype=F64)
    out[torch.arange(len(targets)), targets] = 1.0
    return out


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def numpy_calibration(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, float]:
    """ECE (equal-width bins ((m-1)/bins, m/bins] of the max softmax probability), NLL, Brier,
    in float64 numpy: the definitions, written apart from ce_lab/calibration.py."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(labels)
    conf = p.max(axis=1)
    correct = logits.argmax(axis=1) == labels
    ece = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.sum() / n * abs(correct[sel].mean() - conf[sel].mean())
    onehot = np.eye(logits.shape[1])[labels]
    return {"ece": ece, "nll": float(-np.log(p[np.arange(n), labels]).mean()),
            "brier": float(((p - onehot) ** 2).sum(axis=1).mean())}


# --- the literature losses (ce_lab/losses/literature.py), from the papers' formulas


def _p_y(z, y):
    return softmax(z)[torch.arange(len(y)), y]


def ref_mse_logits(z, y, cfg):
    # Hui & Belkin: (1/C) [ (z_y - 1)^2 + sum_{j != y} z_j^2 ]
    return (((z - onehot(y, z.shape[1])) ** 2).sum(dim=-1) / z.shape[1]).mean()


def ref_mae(z, y, cfg):
    return (softmax(z) - onehot(y, z.shape[1])).abs().sum(dim=-1).mean()


def ref_gce(z, y, cfg):
    return ((1 - _p_y(z, y) ** cfg.q) / cfg.q).mean()


def ref_ce_smooth(z, y, cfg):
    c = z.shape[1]
    s = (1 - cfg.epsilon) * onehot(y, c) + cfg.epsilon / c
    return -(s * torch.log(softmax(z))).sum(dim=-1).mean()


def ref_focal(z, y, cfg):
    p = _p_y(z, y)
    return (-((1 - p) ** cfg.gamma) * torch.log(p)).mean()


def grad_mse_logits(z, y, cfg):
    return 2 * (z - onehot(y, z.shape[1])) / z.numel()


def _ce_direction(z, y):
    return softmax(z) - onehot(y, z.shape[1])  # d(-log p_y)/dz


def grad_mae(z, y, cfg):
    # d/dz 2 (1 - p_y) = -2 dp_y/dz = 2 p_y (p - t)
    return 2 * _p_y(z, y)[:, None] * _ce_direction(z, y) / z.shape[0]


def grad_gce(z, y, cfg):
    # d/dz (1 - p_y^q) / q = -p_y^(q-1) dp_y/dz = p_y^q (p - t)
    return _p_y(z, y)[:, None] ** cfg.q * _ce_direction(z, y) / z.shape[0]


def grad_ce_smooth(z, y, cfg):
    c = z.shape[1]
    s = (1 - cfg.epsilon) * onehot(y, c) + cfg.epsilon / c
    return (softmax(z) - s) / z.shape[0]


def grad_focal(z, y, cfg):
    # f(p) = -(1-p)^g log p; f'(p) = g (1-p)^(g-1) log p - (1-p)^g / p; dp_y/dz = -p_y (p - t)
    p, g = _p_y(z, y), cfg.gamma
    # where p rounds to 1, the second term's limit (it is 0 * inf in floats): 0
    second = torch.where(p < 1, g * p * (1 - p) ** (g - 1) * torch.log(p), 0.0)
    outer = (1 - p) ** g - second
    return outer[:, None] * _ce_direction(z, y) / z.shape[0]


REFERENCES = {"mse-logits": ref_mse_logits, "mae": ref_mae, "gce": ref_gce,
              "ce-smooth": ref_ce_smooth, "focal": ref_focal}


GRADS = {"mse-logits": grad_mse_logits, "mae": grad_mae, "gce": grad_gce,
         "ce-smooth": grad_ce_smooth, "focal": grad_focal}


# The configs that change a formula, beyond each loss's defaults (test_losses.py's CASES)
OPTION_CASES = [
    pytest.param("gce", LossConfig(name="gce", q=0.25), id="gce-q0.25"),
    pytest.param("gce", LossConfig(name="gce", q=1.0), id="gce-q1"),
    pytest.param("ce-smooth", LossConfig(name="ce-smooth", epsilon=0.0), id="ce-smooth-eps0"),
    pytest.param("ce-smooth", LossConfig(name="ce-smooth", epsilon=0.45), id="ce-smooth-eps0.45"),
    pytest.param("focal", LossConfig(name="focal", gamma=0.0), id="focal-g0"),
    pytest.param("focal", LossConfig(name="focal", gamma=1.0), id="focal-g1"),
    pytest.param("focal", LossConfig(name="focal", gamma=3.5), id="focal-g3.5"),
]
