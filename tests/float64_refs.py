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


# --- the losses of ce_lab/losses/recent.py and robust.py, from the papers' formulas

LOG_1E4 = float(np.log(1e-4))  # rce's log 0 (Wang et al.: the one-hot target clamped to 1e-4)


def _ce(z, y):
    return -torch.log(_p_y(z, y))


def ref_poly1(z, y, cfg):
    return (_ce(z, y) + cfg.epsilon_poly * (1 - _p_y(z, y))).mean()


def ref_squentropy(z, y, cfg):
    c = z.shape[1]
    wrong = 1 - onehot(y, c)
    return (_ce(z, y) + (wrong * z**2).sum(dim=-1) / (c - 1)).mean()


def _rce(z, y):
    # -sum_k p_k log q_k, q the one-hot target with its zeros clamped to 1e-4
    q = onehot(y, z.shape[1]).clamp_min(1e-4)
    return -(softmax(z) * torch.log(q)).sum(dim=-1)


def ref_sce(z, y, cfg):
    return (cfg.sce_alpha * _ce(z, y) + cfg.sce_beta * _rce(z, y)).mean()


def _nce(z, y):
    log_p = torch.log(softmax(z))
    return _ce(z, y) / -log_p.sum(dim=-1)


def ref_nce_rce(z, y, cfg):
    return (cfg.apl_alpha * _nce(z, y) + cfg.apl_beta * _rce(z, y)).mean()


def ref_nce_mae(z, y, cfg):
    # Ma et al.'s code's mae: 1 - p_y, which is half of sum_k |p_k - t_k|
    mae = (softmax(z) - onehot(y, z.shape[1])).abs().sum(dim=-1) / 2
    return (cfg.apl_alpha * _nce(z, y) + cfg.apl_beta * mae).mean()


def ref_taylor_ce(z, y, cfg):
    u = 1 - _p_y(z, y)
    return sum(u**k / k for k in range(1, cfg.t + 1)).mean()


def ref_sparsemax_probs(z):
    """sparsemax by bisection on tau (sum_j max(z_j - tau, 0) = 1), not by sorting: tau lies in
    [max z - 1, max z]; the support found, tau is then its exact (sum - 1) / size."""
    lo = z.max(dim=-1, keepdim=True).values - 1
    hi = lo + 1
    for _ in range(200):
        mid = (lo + hi) / 2
        over = (z - mid).clamp_min(0).sum(dim=-1, keepdim=True) > 1
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    support = z > lo
    tau = ((z * support).sum(dim=-1, keepdim=True) - 1) / support.sum(dim=-1, keepdim=True)
    return (z - tau).clamp_min(0), tau, support


def ref_sparsemax(z, y, cfg):
    # Martins & Astudillo: -z_y + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2
    _, tau, support = ref_sparsemax_probs(z)
    half = ((z**2 - tau**2) * support).sum(dim=-1) / 2
    return (-z[torch.arange(len(y)), y] + half + 0.5).mean()


def grad_poly1(z, y, cfg):
    return (1 + cfg.epsilon_poly * _p_y(z, y))[:, None] * _ce_direction(z, y) / z.shape[0]


def grad_squentropy(z, y, cfg):
    c = z.shape[1]
    return (_ce_direction(z, y) + 2 * (1 - onehot(y, c)) * z / (c - 1)) / z.shape[0]


def _rce_grad(z, y):
    # rce = -A (1 - p_y): d/dz = -A p_y (p - t)
    return -LOG_1E4 * _p_y(z, y)[:, None] * _ce_direction(z, y)


def grad_sce(z, y, cfg):
    return (cfg.sce_alpha * _ce_direction(z, y) + cfg.sce_beta * _rce_grad(z, y)) / z.shape[0]


def _nce_grad(z, y):
    # nce = a / S, a = -log p_y, S = -sum_k log p_k: da/dz = p - t, dS/dz = C p - 1
    p, c = softmax(z), z.shape[1]
    s = -torch.log(p).sum(dim=-1, keepdim=True)
    return _ce_direction(z, y) / s - _ce(z, y)[:, None] * (c * p - 1) / s**2


def grad_nce_rce(z, y, cfg):
    return (cfg.apl_alpha * _nce_grad(z, y) + cfg.apl_beta * _rce_grad(z, y)) / z.shape[0]


def grad_nce_mae(z, y, cfg):
    mae = _p_y(z, y)[:, None] * _ce_direction(z, y)  # d/dz (1 - p_y)
    return (cfg.apl_alpha * _nce_grad(z, y) + cfg.apl_beta * mae) / z.shape[0]


def grad_taylor_ce(z, y, cfg):
    # d/dp_y sum_k (1 - p_y)^k / k = -sum_k (1 - p_y)^(k-1); dp_y/dz = -p_y (p - t)
    p = _p_y(z, y)
    outer = p * sum((1 - p) ** (k - 1) for k in range(1, cfg.t + 1))
    return outer[:, None] * _ce_direction(z, y) / z.shape[0]


def grad_sparsemax(z, y, cfg):
    return (ref_sparsemax_probs(z)[0] - onehot(y, z.shape[1])) / z.shape[0]


REFERENCES.update({"poly1": ref_poly1, "squentropy": ref_squentropy, "sparsemax": ref_sparsemax,
                   "sce": ref_sce, "nce-rce": ref_nce_rce, "nce-mae": ref_nce_mae,
                   "taylor-ce": ref_taylor_ce})
GRADS.update({"poly1": grad_poly1, "squentropy": grad_squentropy, "sparsemax": grad_sparsemax,
              "sce": grad_sce, "nce-rce": grad_nce_rce, "nce-mae": grad_nce_mae,
              "taylor-ce": grad_taylor_ce})
OPTION_CASES += [
    pytest.param("poly1", LossConfig(name="poly1", epsilon_poly=0.0), id="poly1-eps0"),
    pytest.param("poly1", LossConfig(name="poly1", epsilon_poly=-1.0), id="poly1-eps-1"),
    pytest.param("poly1", LossConfig(name="poly1", epsilon_poly=2.5), id="poly1-eps2.5"),
    pytest.param("sce", LossConfig(name="sce", sce_alpha=0.01, sce_beta=1.0), id="sce-mnist"),
    pytest.param("sce", LossConfig(name="sce", sce_alpha=6.0, sce_beta=0.1), id="sce-cifar100"),
    pytest.param("nce-rce", LossConfig(name="nce-rce", apl_alpha=1.0, apl_beta=10.0),
                 id="nce-rce-mnist"),
    pytest.param("nce-mae", LossConfig(name="nce-mae", apl_alpha=10.0, apl_beta=0.0),
                 id="nce-mae-nce-only"),
    pytest.param("taylor-ce", LossConfig(name="taylor-ce", t=1), id="taylor-ce-t1"),
    pytest.param("taylor-ce", LossConfig(name="taylor-ce", t=6), id="taylor-ce-t6"),
]
