"""``ce_lab.loss(name, **options)`` (ce_lab/api/losses.py): every registered loss as a callable for
one's own PyTorch code, its value and autograd gradient against the closed forms and the float64
references, and its one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import ce_lab
from ce_lab.config import LossConfig
from ce_lab.losses import loss_names, make_loss, make_loss_grad
from tests.float64_refs import F64, GRADS, REFERENCES


def _batch(seed=5, b=6, c=10, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, generator=gen, dtype=dtype) * 3
    return z, torch.randint(0, c, (b,), generator=gen)


@pytest.mark.parametrize("name", loss_names())
def test_every_loss_is_the_registered_value_and_autograd_gives_the_closed_form(name):
    z, y = _batch()
    fn = ce_lab.loss(name)
    leaf = z.clone().requires_grad_(True)
    value = fn(leaf, y)
    value.backward()
    cfg = LossConfig(name=name)
    assert torch.equal(value.detach(), make_loss(cfg)(z, y))  # what a run logs as its loss
    closed = make_loss_grad(cfg)
    if closed is not None:  # the gradient training uses, where the loss has a closed form
        loss, grad = closed(z, y)
        torch.testing.assert_close(value.detach(), loss, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(leaf.grad, grad, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize(("name", "options"), [
    ("gce", {"q": 0.3}), ("focal", {"gamma": 0.5}), ("ce-smooth", {"epsilon": 0.2}),
    ("poly1", {"epsilon_poly": 2.0}), ("sce", {"sce_alpha": 0.01, "sce_beta": 1.0}),
    ("nce-rce", {"apl_alpha": 1.0, "apl_beta": 10.0}), ("nce-mae", {}), ("taylor-ce", {"t": 4}),
    ("squentropy", {}), ("sparsemax", {}), ("mse-logits", {}), ("mae", {}),
])
def test_value_and_gradient_against_the_float64_references(name, options):
    z, y = _batch(seed=9)
    leaf = z.clone().requires_grad_(True)
    value = ce_lab.loss(name, **options)(leaf, y)
    (grad,) = torch.autograd.grad(value, leaf)
    cfg = LossConfig(name=name, **options)
    torch.testing.assert_close(value.detach(), REFERENCES[name](z, y, cfg), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, GRADS[name](z, y, cfg), rtol=1e-9, atol=1e-12)


def test_it_trains_a_model_in_plain_pytorch_like_a_torch_nn_loss():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    criterion = ce_lab.loss("sce")
    first = None
    for _ in range(50):
        opt.zero_grad()
        value = criterion(model(x), y)
        value.backward()
        opt.step()
        first = value.item() if first is None else first
    assert value.item() < first / 2
    assert (model(x).argmax(1) == y).float().mean() > 0.8
    # float32 in, float32 out; second derivatives exist (a Hessian-vector product)
    z = torch.randn(4, 3, requires_grad=True)
    (g,) = torch.autograd.grad(criterion(z, y[:4]), z, create_graph=True)
    (hv,) = torch.autograd.grad(g.sum(), z)
    assert value.dtype == torch.float32 and torch.isfinite(hv).all()


def test_options_default_and_show_in_the_repr():
    sce = ce_lab.loss("sce", sce_alpha=0.01)
    assert sce.options == {"sce_alpha": 0.01, "sce_beta": 1.0}
    assert repr(sce) == "ce_lab.loss('sce', sce_alpha=0.01, sce_beta=1.0)"
    assert repr(ce_lab.loss("ce")) == "ce_lab.loss('ce')"
    assert isinstance(sce, ce_lab.Loss)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: ce_lab.loss("poly"), ce_lab.UsageError, "unknown loss 'poly' — did you mean 'poly1'?"),
    (lambda: ce_lab.loss("focal", gama=1.0), ce_lab.ParamError,
     "loss 'focal' has no option 'gama' — did you mean 'gamma'?"),
    (lambda: ce_lab.loss("gce", gamma=2.0), ce_lab.ParamError,
     "loss 'gce' has no option 'gamma'; its options: q"),
    (lambda: ce_lab.loss("ce", q=0.5), ce_lab.ParamError, "loss 'ce' has no option 'q'; it takes none"),
    (lambda: ce_lab.loss("gce", q=2), ce_lab.ConfigError,
     "loss 'gce': q: Input should be less than or equal to 1 (got 2)"),
    (lambda: ce_lab.loss("taylor-ce", t=2.5), ce_lab.ConfigError,
     "loss 'taylor-ce': t: Input should be a valid integer (got 2.5)"),
    (lambda: ce_lab.loss("sce", sce_alpha=0, sce_beta=0), ce_lab.ConfigError,
     "loss 'sce': alpha and beta are both 0: the loss would be 0 everywhere"),
    (lambda: ce_lab.loss(3), ce_lab.ParamError, "name must be the name of a loss (ce-lab losses), not 3"),
])
def test_a_bad_name_or_option_is_one_line(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_bad_tensors_are_one_line():
    ce = ce_lab.loss("ce")
    z, y = _batch()
    for args, message in [
        ((z[0], y), "logits must be (B, C) and targets (B,): got (10,) and (6,)"),
        ((z, y[:3]), "logits must be (B, C) and targets (B,): got (6, 10) and (3,)"),
        ((z, y.double()), "logits must be floats and targets class indices: got torch.float64 "
                          "and torch.float64"),
        ((z.numpy(), y), "logits and targets must be torch tensors: got ndarray and Tensor"),
    ]:
        with pytest.raises(ce_lab.ParamError) as info:
            ce(*args)
        assert str(info.value) == message


def test_making_a_loss_imports_no_torch():
    code = ("import sys, ce_lab\nf = ce_lab.loss('gce', q=0.5)\nprint('torch' in sys.modules)\n"
            "import torch\nprint(round(f(torch.zeros(2, 4), torch.tensor([0, 1])).item(), 6))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", str(round((1 - 0.25**0.5) / 0.5, 6))]
