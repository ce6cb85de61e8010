"""Gradients of one output unit against their closed forms; the collapse mark; the PNG."""

from __future__ import annotations

import math

import pytest

from ce_lab.theory.saturation import logit_gradients, saturation

PROBS = [1e-4, 0.001, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.75, 0.9, 0.99, 0.999]


def test_autograd_gradients_match_the_closed_forms():
    g = logit_gradients(PROBS, hinge_margin=1.0)
    for i, p in enumerate(PROBS):
        z = math.log(p / (1 - p))
        assert g["sigmoid_prime"][i] == pytest.approx(p * (1 - p), rel=1e-9)  # sigma(1 - sigma)
        # d/dz (sigma - 1)^2 = 2 (sigma - 1) sigma (1 - sigma)
        assert g["mse"][i] == pytest.approx(2 * (1 - p) * p * (1 - p), rel=1e-9)
        assert g["bce"][i] == pytest.approx(abs(p - 1), rel=1e-9)  # |p - y|, y = 1
        assert g["ce"][i] == pytest.approx(abs(p - 1), rel=1e-9)
        assert g["hinge"][i] == (1.0 if z < 1.0 else 0.0)


def test_hinge_margin_moves_the_step():
    g = logit_gradients([0.8, 0.9], hinge_margin=2.0)  # z = 1.39, 2.20
    assert g["hinge"] == [1.0, 0.0]


def test_mse_collapse_is_marked_where_its_gradient_is_below_a_tenth_of_its_peak():
    r = saturation([0.001, 0.01, 0.05, 0.5, 0.9, 0.99])
    peak = 8 / 27  # max of 2p(1-p)^2, at p = 1/3
    assert r.mse_max == pytest.approx(peak, rel=1e-4)
    assert r.mse_argmax == pytest.approx(1 / 3, abs=0.01)
    for edge in (r.collapsed_below, r.collapsed_above):
        assert 2 * edge * (1 - edge) ** 2 == pytest.approx(0.1 * r.mse_max, rel=1e-6)
    assert r.collapsed_below < 1 / 3 < r.collapsed_above
    assert r.collapsed(0.001) and r.collapsed(0.01) and not r.collapsed(0.05)
    assert not r.collapsed(0.5) and r.collapsed(0.99)
    # where MSE has collapsed on the wrong side, cross-entropy pushes almost at full strength
    i = r.probs.index(0.001)
    assert r.grads["bce"][i] > 400 * r.grads["mse"][i]
