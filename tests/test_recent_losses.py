"""poly1, squentropy, sparsemax (ce_lab/losses/recent.py) and sce, nce-rce, nce-mae, taylor-ce
(ce_lab/losses/robust.py): what tests/test_losses.py does not already check for every loss.

tests/test_losses.py runs every registry-wide check on them (values and gradients against the
float64 references of tests/float64_refs.py, gradcheck, closed form against autograd, float32 on
logits of a few hundred, stacks bit for bit as the 2-D calls); this file adds logits up to 1e4,
ties and batches of one, hand-computed values, the identities between them and ce, sparsemax's
probabilities and the options.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ce_lab.config import LossConfig, resolve_config
from ce_lab.errors import ConfigError
from ce_lab.losses import get_loss, make_loss, make_loss_grad
from tests.float64_refs import F64, GRADS, REFERENCES, ref_sparsemax_probs

NEW = ("poly1", "squentropy", "sparsemax", "sce", "nce-rce", "nce-mae", "taylor-ce")
A = -math.log(1e-4)  # rce's -log 0


def _both(name, z, y, **options):
    """(loss, closed-form gradient) and (loss, autograd gradient of the value function)."""
    cfg = LossConfig(name=name, **options)
    loss, grad = make_loss_grad(cfg)(z, y)
    leaf = z.clone().requires_grad_(True)
    value = get_loss(name).fn(leaf, y, cfg)
    (auto,) = torch.autograd.grad(value, leaf)
    return (loss, grad), (value.detach(), auto)


def test_registered_with_sources_closed_forms_and_stacks():
    for name in NEW:
        spec = get_loss(name)
        assert spec.grad is not None and spec.batched and not spec.squashes_sigmoid
        assert spec.source and spec.description
    assert get_loss("poly1").source.startswith("Leng et al., ICLR 2022")
    assert get_loss("squentropy").source.startswith("Hui, Belkin & Wright, ICML 2023")
    assert get_loss("sparsemax").source.startswith("Martins & Astudillo, ICML 2016")
    assert get_loss("sce").source.startswith("Wang et al., ICCV 2019")
    assert get_loss("nce-rce").source.startswith("Ma et al., ICML 2020")
    assert get_loss("taylor-ce").source.startswith("Feng et al., IJCAI 2020")
    d = LossConfig()
    assert (d.epsilon_poly, d.sce_alpha, d.sce_beta, d.apl_alpha, d.apl_beta, d.t) == (
        1.0, 0.1, 1.0, 1.0, 1.0, 2)
    # only sparsemax brings its own probabilities; every other loss is calibrated on softmax
    from ce_lab.calibration import OWN_PROBABILITIES
    from ce_lab.losses import LOSSES

    assert {n for n, s in LOSSES.items() if s.probabilities} == set(OWN_PROBABILITIES)


# --- extreme logits: |z| up to 1e4, ties, a batch of one ---------------------------------------

def _extreme(dtype, seed=0, b=16, c=10):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, generator=gen, dtype=dtype) * 3
    big = torch.rand(b, c, generator=gen) < 0.4
    z = torch.where(big, torch.sign(z) * 1e4, z)
    z[0] = 1e4  # a row of ties at 1e4
    z[1] = -1e4
    z[2, :] = 0.0
    z[3, 0], z[3, 1:] = 1e4, -1e4  # certain, then certainly wrong in row 4
    z[4, 0], z[4, 1:] = -1e4, 1e4
    y = torch.randint(0, c, (b,), generator=gen)
    y[3] = y[4] = 0
    return z, y


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", NEW)
def test_finite_and_the_closed_form_is_autograd_at_logits_of_1e4(name, dtype):
    z, y = _extreme(dtype)
    (loss, grad), (value, auto) = _both(name, z, y)
    assert torch.isfinite(loss) and torch.isfinite(grad).all() and torch.isfinite(auto).all()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(loss, value, **tol)
    torch.testing.assert_close(grad, auto, **tol)
    # every row of the gradient sums to 0 but squentropy's (its square term is not shift-free)
    if name != "squentropy":
        assert grad.sum(-1).abs().max() < (1e-7 if dtype == torch.float32 else 1e-15)
    for k in range(len(y)):  # and every example alone, a batch of one, is finite too
        one, _ = _both(name, z[k:k + 1], y[k:k + 1])
        assert torch.isfinite(one[0]) and torch.isfinite(one[1]).all()


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("level", [0.0, 1e4, -1e4, 7.5])
@pytest.mark.parametrize("name", NEW)
def test_ties_in_a_batch_of_one_against_the_references(name, level, dtype):
    # all C logits equal: p = 1/C (softmax and sparsemax alike), the references stay exact
    z = torch.full((1, 10), level, dtype=dtype)
    y = torch.tensor([3])
    cfg = LossConfig(name=name)
    (loss, grad), (_, auto) = _both(name, z, y)
    want = REFERENCES[name](z.double(), y, cfg)
    if name == "sparsemax":  # the paper's form cancels squares of 1e4 even in float64: by hand
        want = torch.tensor(0.5 - 0.5 / 10, dtype=F64)  # -1/C + 1/(2C) + 1/2
    want_grad = GRADS[name](z.double(), y, cfg)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(loss.double(), want, **tol)
    torch.testing.assert_close(grad.double(), want_grad, **tol)
    torch.testing.assert_close(auto.double(), want_grad, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
def test_hand_values_where_the_prediction_is_certain_or_certainly_wrong(dtype):
    # C = 10, z = (1e4, -1e4, ..., -1e4): label 0 is certain, label 1 wrong by 2e4
    z = torch.full((1, 10), -1e4, dtype=dtype)
    z[0, 0] = 1e4
    right, wrong = torch.tensor([0]), torch.tensor([1])
    ce_wrong = 2e4
    expect = {
        "poly1": (0.0, ce_wrong + 1.0),
        "squentropy": (9 * 1e8 / 9, ce_wrong + 8 * 1e8 / 9 + 1e8 / 9),
        "sparsemax": (0.0, 2e4),  # tau = z_0 - 1: tau - z_y + 1/2 + 1/2
        "sce": (0.0, 0.1 * ce_wrong + A),
        "nce-rce": (0.0, 1.0 / 9 * 1.0 + A),  # nce = 2e4 / (0 + 9 * 2e4)
        "nce-mae": (0.0, 1.0 / 9 + 1.0),
        "taylor-ce": (0.0, 1.0 + 0.5),
    }
    for name, (at_right, at_wrong) in expect.items():
        cfg = LossConfig(name=name)
        for y, want in ((right, at_right), (wrong, at_wrong)):
            loss, grad = make_loss_grad(cfg)(z, y)
            assert loss.item() == pytest.approx(want, rel=1e-6, abs=1e-6), (name, y)
            assert torch.isfinite(grad).all()


def test_hand_computed_values_at_moderate_logits():
    z = torch.tensor([[2.0, 0.0, -1.0]], dtype=F64)
    y = torch.tensor([0])
    e = [math.exp(v) for v in (2.0, 0.0, -1.0)]
    p = [v / sum(e) for v in e]
    ce = -math.log(p[0])

    def value(name, **kw):
        return make_loss(LossConfig(name=name, **kw))(z, y).item()

    assert value("poly1", epsilon_poly=2.0) == pytest.approx(ce + 2 * (1 - p[0]), rel=1e-13)
    assert value("squentropy") == pytest.approx(ce + (0 + 1) / 2, rel=1e-13)
    assert value("sce", sce_alpha=0.5, sce_beta=2.0) == pytest.approx(
        0.5 * ce + 2.0 * A * (p[1] + p[2]), rel=1e-13)
    nce = ce / -sum(math.log(v) for v in p)
    assert value("nce-rce", apl_alpha=2.0, apl_beta=3.0) == pytest.approx(
        2 * nce + 3 * A * (1 - p[0]), rel=1e-13)
    assert value("nce-mae", apl_alpha=2.0, apl_beta=3.0) == pytest.approx(
        2 * nce + 3 * (1 - p[0]), rel=1e-13)
    u = 1 - p[0]
    assert value("taylor-ce", t=3) == pytest.approx(u + u**2 / 2 + u**3 / 3, rel=1e-13)
    # sparsemax of (2, 0, -1): the support is {0} (1 + 2*0 > 2 fails), tau = 1, p = (1, 0, 0);
    # the loss is -2 + 1/2 (4 - 1) + 1/2 = 0: a margin of 1 over every other logit costs nothing
    assert value("sparsemax") == 0.0
    # with (0.5, 0, -1): support {0, 1}, tau = (0.5 - 1) / 2 = -0.25, p = (0.75, 0.25, 0)
    z2 = torch.tensor([[0.5, 0.0, -1.0]], dtype=F64)
    from ce_lab.losses.recent import sparsemax

    assert sparsemax(z2).tolist() == [[0.75, 0.25, 0.0]]
    want = -0.5 + 0.5 * ((0.25 - 0.0625) + (0.0 - 0.0625)) + 0.5
    got = make_loss(LossConfig(name="sparsemax"))(z2, y)
    assert got.item() == pytest.approx(want, rel=1e-14)


def test_the_identities_with_ce_mae_and_each_other():
    gen = torch.Generator().manual_seed(8)
    z = torch.randn(32, 10, generator=gen, dtype=F64) * 2
    y = torch.randint(0, 10, (32,), generator=gen)
    ce = torch.nn.functional.cross_entropy(z, y)

    def value(name, **kw):
        return make_loss(LossConfig(name=name, **kw))(z, y)

    exact = {"rtol": 1e-13, "atol": 0}
    torch.testing.assert_close(value("poly1", epsilon_poly=0.0), ce, **exact)
    torch.testing.assert_close(value("sce", sce_alpha=1.0, sce_beta=0.0), ce, **exact)
    mae = value("mae")
    torch.testing.assert_close(value("taylor-ce", t=1), mae / 2, **exact)  # 1 - p_y
    torch.testing.assert_close(value("nce-mae", apl_alpha=0.0), mae / 2, **exact)
    torch.testing.assert_close(value("sce", sce_alpha=0.0), mae / 2 * A, **exact)  # rce
    torch.testing.assert_close(value("nce-rce", apl_beta=0.0), value("nce-mae", apl_beta=0.0),
                               **exact)
    # taylor-ce is ce's series: for p_y not small it converges to ce as t grows
    certain = z.clone()
    certain[torch.arange(32), y] += 12.0
    torch.testing.assert_close(make_loss(LossConfig(name="taylor-ce", t=400))(certain, y),
                               torch.nn.functional.cross_entropy(certain, y), rtol=1e-10, atol=0)
    # nce is in (0, 1]; squentropy minus ce is the mean square of the wrong logits
    nce = value("nce-mae", apl_beta=0.0)
    assert 0 < nce.item() <= 1
    wrong = torch.ones_like(z).scatter_(1, y[:, None], 0.0)
    torch.testing.assert_close(value("squentropy") - ce, ((z * wrong) ** 2).sum(1).mean() / 9,
                               rtol=1e-12, atol=0)


def test_sparsemax_probabilities_and_gradient():
    from ce_lab.losses.recent import sparsemax

    gen = torch.Generator().manual_seed(2)
    for scale in (0.1, 1.0, 10.0, 1e4):
        z = torch.randn(64, 10, generator=gen, dtype=F64) * scale
        p = sparsemax(z)
        torch.testing.assert_close(p.sum(-1), torch.ones(64, dtype=F64), rtol=1e-12, atol=1e-12)
        assert (p >= 0).all()
        assert torch.equal(p.argmax(-1), z.argmax(-1))  # predictions stay the logits' argmax
        torch.testing.assert_close(p, ref_sparsemax_probs(z)[0], rtol=1e-9, atol=1e-12)
        y = torch.randint(0, 10, (64,), generator=gen)
        _, grad = make_loss_grad(LossConfig(name="sparsemax"))(z, y)
        torch.testing.assert_close(grad, (p - torch.nn.functional.one_hot(y, 10)) / 64,
                                   rtol=0, atol=1e-15)
    assert (sparsemax(torch.tensor([[5.0, 0.0, 0.0]])) == torch.tensor([[1.0, 0.0, 0.0]])).all()
    # the stacked layout (K, B, C) too
    z = torch.randn(3, 4, 10, generator=gen)
    assert torch.equal(sparsemax(z)[1], sparsemax(z[1]))


def test_calibration_of_sparsemax_is_on_its_own_probabilities():
    from ce_lab.calibration import chunk_sums, finish
    from ce_lab.losses.recent import sparsemax

    gen = torch.Generator().manual_seed(4)
    z = torch.randn(1, 200, 10, generator=gen, dtype=F64) * 2
    y = torch.randint(0, 10, (200,), generator=gen)
    (values,), _ = finish(chunk_sums(z, y, get_loss("sparsemax").probabilities), 200)
    p = sparsemax(z[0]).numpy()
    n = np.arange(200)
    assert values["brier"] == pytest.approx(
        ((p - np.eye(10)[y.numpy()]) ** 2).sum(1).mean(), rel=1e-12)
    assert (p[n, y.numpy()] == 0).any() and values["nll"] == math.inf  # a label ruled out
    conf, correct = p.max(1), p.argmax(1) == y.numpy()
    ece = sum(abs(correct[sel].sum() - conf[sel].sum()) / 200 for m in range(15)
              if (sel := (conf > m / 15) & (conf <= (m + 1) / 15)).any())
    assert values["ece"] == pytest.approx(ece, rel=1e-12)
    # where every label keeps some probability, the NLL is finite: -log p_y
    easy = torch.zeros(1, 2, 10, dtype=F64)
    (values,), _ = finish(chunk_sums(easy, torch.tensor([0, 1]), sparsemax), 2)
    assert values["nll"] == pytest.approx(math.log(10), rel=1e-14)
    # every other loss: softmax, as before
    (soft,), _ = finish(chunk_sums(z, y), 200)
    assert math.isfinite(soft["nll"]) and soft["nll"] != values["nll"]


@pytest.mark.parametrize(("item", "message"), [
    ("loss.t=0", "loss.t: Input should be greater than or equal to 1 (got 0)"),
    ("loss.t=2.5", "loss.t: Input should be a valid integer (got 2.5)"),
    ("loss.t=true", "loss.t: Input should be a valid integer (got True)"),
    ("loss.epsilon_poly=-2", "loss.epsilon_poly: Input should be greater than or equal to -1 "
     "(got -2)"),
    ("loss.sce_alpha=-0.1", "loss.sce_alpha: Input should be greater than or equal to 0 "
     "(got -0.1)"),
    ("loss.apl_beta=yes", "loss.apl_beta: expected a number, not a boolean (got True)"),
])
def test_a_bad_option_is_one_line_naming_the_key(item, message):
    with pytest.raises(ConfigError) as info:
        resolve_config(sets=[item])
    assert str(info.value) == f"--set {item}: {message}"


def test_weights_both_zero_are_refused_for_the_selected_loss_only():
    with pytest.raises(ConfigError, match="alpha and beta are both 0") as info:
        resolve_config(sets=["loss.name=sce", "loss.sce_alpha=0", "loss.sce_beta=0"])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="alpha and beta are both 0"):
        resolve_config(sets=["loss.name=nce-mae", "loss.apl_alpha=0", "loss.apl_beta=0"])
    # another loss's options do not matter to it
    assert resolve_config(sets=["loss.sce_alpha=0", "loss.sce_beta=0"]).loss.name == "ce"


def test_docs_losses_md_lists_every_loss_and_option():
    from pathlib import Path

    from ce_lab.losses import LOSSES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "losses.md").read_text(encoding="utf-8")
    for name, spec in LOSSES.items():
        assert f"`{name}`" in doc, name
        for key in (spec.options.model_fields if spec.options else {}):
            # Each option is named as its config key; its default is checked in docs/config.md
            # (tests/test_docs_links.py).
            assert f"`loss.{key}" in doc, key
