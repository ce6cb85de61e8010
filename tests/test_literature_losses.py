"""mse-logits, mae, gce, ce-smooth and focal against independent float64 references.

The references are written from the papers' formulas with plain float64 ops (exp, log, a
max-shifted softmax), not with the log_softmax / expm1 / gather route of ce_lab/losses/literature.py.
tests/test_losses.py runs every registry-wide check on them too (values and gradients against
these references, gradcheck, closed form against autograd, float32 on large logits, stacks bit for
bit as the 2-D calls); this file adds the identities between them, the edge cases and the options.
"""

from __future__ import annotations

import math

import pytest
import torch

from ce_lab.config import LossConfig, resolve_config
from ce_lab.errors import ConfigError
from ce_lab.losses import get_loss, make_loss, make_loss_grad
from tests.float64_refs import F64, GRADS, OPTION_CASES, REFERENCES

# --- values: the per-example loss as the paper writes it, then the batch mean

# --- gradients d loss / d logits, derived by hand (batch mean included)

def _batch(seed=11, b=6, c=10, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, generator=gen, dtype=F64) * scale
    return z, torch.randint(0, c, (b,), generator=gen)


def test_registered_with_their_sources_options_and_closed_forms():
    for name in REFERENCES:
        spec = get_loss(name)
        assert spec.grad is not None and spec.batched and not spec.squashes_sigmoid
        assert spec.source and spec.description
    assert get_loss("mse-logits").source.startswith("Hui & Belkin")
    assert get_loss("mae").source.startswith("Ghosh")
    assert get_loss("gce").source.startswith("Zhang & Sabuncu")
    assert get_loss("focal").source.startswith("Lin et al.")
    defaults = LossConfig()
    assert (defaults.q, defaults.epsilon, defaults.gamma) == (0.7, 0.1, 2.0)


@pytest.mark.parametrize(("name", "cfg"), OPTION_CASES)
def test_value_and_gradient_with_options_against_the_references(name, cfg):
    z, y = _batch()
    loss, grad = make_loss_grad(cfg)(z, y)
    torch.testing.assert_close(loss, REFERENCES[name](z, y, cfg), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(make_loss(cfg)(z, y), loss, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, GRADS[name](z, y, cfg), rtol=1e-10, atol=1e-14)
    leaf = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: get_loss(name).fn(t, y, cfg), (leaf,))


def test_hand_computed_values():
    z = torch.tensor([[2.0, 0.0, -1.0]], dtype=F64)
    y = torch.tensor([0])
    p = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    # mse-logits: ((2-1)^2 + 0^2 + (-1)^2) / 3
    assert make_loss(LossConfig(name="mse-logits"))(z, y).item() == pytest.approx(2 / 3, rel=1e-14)
    assert make_loss(LossConfig(name="mae"))(z, y).item() == pytest.approx(2 * (1 - p), rel=1e-12)
    assert make_loss(LossConfig(name="gce", q=0.5))(z, y).item() == pytest.approx(
        (1 - math.sqrt(p)) / 0.5, rel=1e-12)
    assert make_loss(LossConfig(name="focal", gamma=2))(z, y).item() == pytest.approx(
        -((1 - p) ** 2) * math.log(p), rel=1e-12)
    log_p = [math.log(p), math.log(p / math.exp(2)), math.log(p / math.exp(3))]
    smooth = -(0.8 + 0.2 / 3) * log_p[0] - 0.2 / 3 * (log_p[1] + log_p[2])
    assert make_loss(LossConfig(name="ce-smooth", epsilon=0.2))(z, y).item() == pytest.approx(
        smooth, rel=1e-12)


def test_the_identities_between_them():
    z, y = _batch(seed=4, b=32)
    ce = torch.nn.functional.cross_entropy(z, y)
    one = {n: make_loss(LossConfig(name=n, **kw))(z, y) for n, kw in
           [("mae", {}), ("ce-smooth", {"epsilon": 0.0}), ("focal", {"gamma": 0.0})]}
    gce1 = make_loss(LossConfig(name="gce", q=1.0))(z, y)
    torch.testing.assert_close(one["mae"], 2 * gce1, rtol=1e-13, atol=0)  # mae = 2 gce(q=1)
    torch.testing.assert_close(one["ce-smooth"], ce, rtol=1e-13, atol=0)  # eps = 0 is ce
    torch.testing.assert_close(one["focal"], ce, rtol=1e-13, atol=0)  # gamma = 0 is ce
    # gce -> ce as q -> 0 ((1 - p^q)/q = -log p + O(q))
    gce_small = make_loss(LossConfig(name="gce", q=1e-6))(z, y)
    torch.testing.assert_close(gce_small, ce, rtol=1e-4, atol=0)
    # ce-smooth is PyTorch's own label smoothing, an implementation written apart from this one
    for eps in (0.1, 0.45):
        torch.testing.assert_close(
            make_loss(LossConfig(name="ce-smooth", epsilon=eps))(z, y),
            torch.nn.functional.cross_entropy(z, y, label_smoothing=eps), rtol=1e-13, atol=0)
    # focal with gamma = 0 has ce's gradient
    _, g_focal = make_loss_grad(LossConfig(name="focal", gamma=0.0))(z, y)
    _, g_ce = make_loss_grad(LossConfig(name="ce"))(z, y)
    torch.testing.assert_close(g_focal, g_ce, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_where_the_target_is_certain(gamma):
    # p_y == 1.0 exactly (float32): (1 - p_y)^(gamma - 1) is inf for gamma < 1, times log p_y = 0;
    # the closed form takes the limit, 0, and the loss is 0 there.
    z = torch.tensor([[80.0, 0.0, -5.0], [0.5, 0.0, 0.2]])
    y = torch.tensor([0, 2])
    loss, grad = make_loss_grad(LossConfig(name="focal", gamma=gamma))(z, y)
    assert torch.softmax(z, -1)[0, 0] == 1.0
    assert torch.isfinite(grad).all() and torch.isfinite(loss)
    assert grad[0].abs().max() < 1e-34  # softmax's tail, e^-80 / 2 (gamma = 0: ce's gradient)
    want = GRADS["focal"](z[1:].double(), y[1:], LossConfig(name="focal", gamma=gamma)) / 2
    torch.testing.assert_close(grad[1:].double(), want, rtol=1e-5, atol=1e-8)


def test_mse_logits_gradient_does_not_saturate_unlike_mse():
    # Confidently wrong: z_y = -20. mse on a sigmoid has almost no gradient there; the square loss
    # on logits has the largest (Hui & Belkin's loss keeps learning where sigmoid-mse stalls).
    z = torch.tensor([[-20.0, 20.0, 0.0]], dtype=F64)
    y = torch.tensor([0])
    _, g_logits = make_loss_grad(LossConfig(name="mse-logits"))(z, y)
    _, g_sigmoid = make_loss_grad(LossConfig(name="mse"))(z, y)
    assert g_logits[0, 0].item() == pytest.approx(2 * (-20 - 1) / 3, rel=1e-14)
    assert abs(g_sigmoid[0, 0].item()) < 1e-8


@pytest.mark.parametrize(("item", "message"), [
    ("loss.q=2", "--set loss.q=2: loss.q: Input should be less than or equal to 1 (got 2)"),
    ("loss.q=0", "--set loss.q=0: loss.q: Input should be greater than 0 (got 0)"),
    ("loss.epsilon=1", "--set loss.epsilon=1: loss.epsilon: Input should be less than 1 (got 1)"),
    ("loss.epsilon=-0.1",
     "--set loss.epsilon=-0.1: loss.epsilon: Input should be greater than or equal to 0 "
     "(got -0.1)"),
    ("loss.gamma=-1",
     "--set loss.gamma=-1: loss.gamma: Input should be greater than or equal to 0 (got -1)"),
    ("loss.gamma=yes", "--set loss.gamma=yes: loss.gamma: expected a number, not a boolean "
     "(got True)"),
])
def test_a_bad_option_is_one_line_naming_the_key(item, message):
    with pytest.raises(ConfigError) as info:
        resolve_config(sets=[item])
    assert str(info.value) == message
