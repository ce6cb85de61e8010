"""The hand-written backward of the stacked MLP against autograd, and a whole training step.

``StackedMLP.backward`` differentiates the layers by hand; here it is checked against autograd in
float64, for every activation, depth and member count, and a whole ce-lab training step
(closed-form and autograd losses) against a reference written with nothing but autograd and
torch.optim. The optimizer's own tests are in tests/test_optim.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from ce_lab.config import with_overrides
from ce_lab.data.loader import epoch_batches
from ce_lab.losses import LOSSES, make_loss
from ce_lab.nn.mlp import build_model
from ce_lab.training import train, train_paired
from ce_lab.training.loop import batch_generator

F64 = torch.float64


def _model64(members: int, hidden: list[int], activation: str, seed: int = 0):
    model = build_model(members, hidden, activation, "default", seed).double()
    with torch.no_grad():  # members that differ, so a mix-up between them shows
        for p in model.parameters():
            p.add_(torch.randn(p.shape, dtype=F64, generator=torch.Generator().manual_seed(seed + 1))
                   * 0.05 * torch.arange(1, members + 1, dtype=F64).view(-1, *[1] * (p.dim() - 1)))
    return model


def test_weights_lie_in_memory_as_the_products_use_them():
    model = build_model(3, [16, 12], "relu", "default", 0)
    first, *rest = model.layers()
    assert first.weight.shape == (3, 16, 784)
    assert first.weight.permute(2, 0, 1).is_contiguous()  # one (784, 3*16) matrix
    for layer in rest:
        assert layer.weight.transpose(1, 2).is_contiguous()  # (M, in, out)
    assert model.double().fc1.weight.permute(2, 0, 1).is_contiguous()  # kept by .to()


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [[], [12], [12, 7]], ids=["linear", "one-hidden", "two-hidden"])
@pytest.mark.parametrize("members", [1, 3])
def test_gradients_equal_autograd_in_float64(activation, hidden, members, device):
    if device == "mps":
        pytest.skip("MPS has no float64")
    model = _model64(members, hidden, activation).to(device)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(9, 784, dtype=F64, generator=gen).to(device)
    upstream = torch.randn(members, 9, 10, dtype=F64, generator=gen).to(device)  # any d loss/d z

    params = list(model.parameters())
    logits_ref = model(x)
    want = torch.autograd.grad((logits_ref * upstream).sum(), params)

    with torch.no_grad():  # as in training: the cached views, in-place activations
        logits = model(x, keep=True)
    torch.testing.assert_close(logits, logits_ref.detach(), rtol=1e-12, atol=1e-12)
    model.backward(upstream)
    for p, g in zip(params, want):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    # The squared norms the divergence watch reads, per member.
    sq = model.squared_grad_norms()
    for p, s in zip(params, sq):
        ref = p.grad.flatten(1).pow(2).sum(1)
        torch.testing.assert_close(s.reshape(-1), ref, rtol=1e-10, atol=1e-12)


def test_backward_overwrites_the_buffers_rather_than_accumulating():
    model = _model64(1, [8], "relu")
    x = torch.randn(4, 784, dtype=F64)
    g = torch.randn(1, 4, 10, dtype=F64)
    with torch.no_grad():
        model(x, keep=True)
    model.backward(g)
    first = [p.grad.clone() for p in model.parameters()]
    with torch.no_grad():
        model(x, keep=True)
    model.backward(g)
    for p, f in zip(model.parameters(), first):
        assert torch.equal(p.grad, f)


def test_a_nan_upstream_of_a_dead_relu_unit_stays_out_as_with_autograd():
    model = _model64(1, [6], "relu")
    with torch.no_grad():
        model.fc1.bias[0, 0] = -1e6  # hidden unit 0 is never active
    x = torch.randn(3, 784, dtype=F64)
    upstream = torch.randn(1, 3, 10, dtype=F64)
    upstream[0, 0, 0] = math.nan
    params = list(model.parameters())
    want = torch.autograd.grad((model(x) * upstream).sum(), params)
    with torch.no_grad():
        model(x, keep=True)
    model.backward(upstream)
    for p, w in zip(params, want):
        assert torch.equal(torch.isnan(p.grad), torch.isnan(w))
        torch.testing.assert_close(p.grad, w, equal_nan=True, rtol=1e-10, atol=1e-12)
    assert not torch.isnan(model.fc1.weight.grad[0, 0]).any()  # the dead unit's row stays clean


# --- one whole training step against plain autograd + torch.optim --------------------------------

def _reference_first_steps(run_cfg, mnist, names: list[str], steps: int):
    """``steps`` steps the textbook way: autograd through the whole model, torch.optim.SGD."""
    m = run_cfg.model
    model = build_model(len(names), m.hidden, m.activation, m.init, run_cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=run_cfg.optim.lr, momentum=run_cfg.optim.momentum)
    fns = [make_loss(with_overrides(run_cfg, {"loss.name": n}).loss) for n in names]
    gen = batch_generator(run_cfg.seed)
    batches = epoch_batches(mnist.n_train, run_cfg.train.batch_size, gen, "cpu")
    for idx in list(batches)[:steps]:
        x, y = mnist.train_x[idx], mnist.train_y[idx]
        logits = model(x)
        loss = sum(fn(logits[m], y) for m, fn in enumerate(fns))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize("names", [["ce"], ["nll-manual"], ["ce", "mse", "hinge", "double-softmax"]],
                         ids=["ce-closed-form", "nll-manual-autograd", "fused-mixed"])
def test_training_steps_equal_autograd_and_torch_optim(cfg, data, names):  # noqa: F811
    cfg = with_overrides(cfg, {"train.max_steps": 3, "train.epochs": 0, "optim.momentum": 0.5})
    cfgs = [with_overrides(cfg, {"loss.name": n}) for n in names]
    outcomes = train_paired(cfgs, data=data)
    ref = _reference_first_steps(cfg, data, names, 3)
    for m, out in enumerate(outcomes):
        assert out.status == "completed"
        ckpt = torch.load(out.run_dir / "checkpoint.pt", weights_only=True)
        for name, p in ref.named_parameters():
            torch.testing.assert_close(ckpt["model"][name][0], p.detach()[m], rtol=1e-4, atol=1e-6)


def test_closed_form_losses_train_like_their_autograd_form(cfg, data, monkeypatch):  # noqa: F811
    with_grad = [n for n, spec in LOSSES.items() if spec.grad is not None]
    assert {"ce", "mse", "bce", "hinge", "hinge-sq"} <= set(with_grad)
    cfg = with_overrides(cfg, {"train.epochs": 1})
    closed = train_paired([with_overrides(cfg, {"loss.name": n}) for n in with_grad], data=data)
    for n in with_grad:  # the same losses with their closed forms removed: autograd does it
        monkeypatch.setitem(LOSSES, n, LOSSES[n].__class__(
            LOSSES[n].name, LOSSES[n].fn, LOSSES[n].description, LOSSES[n].squashes_sigmoid))
    auto = train_paired([with_overrides(cfg, {"loss.name": n}) for n in with_grad], data=data)
    for a, b in zip(closed, auto):
        sa, sb = a.summary, b.summary
        assert sa["status"] == sb["status"] == "completed"
        assert math.isclose(sa["final"]["val_loss"], sb["final"]["val_loss"], rel_tol=1e-4)
        assert abs(sa["final"]["val_acc"] - sb["final"]["val_acc"]) <= 0.01


def test_a_lone_run_after_backprop_keeps_gradients_for_the_optimizer(cfg, data):  # noqa: F811
    out = train(with_overrides(cfg, {"optim.name": "adam", "optim.lr": 1e-3, "train.max_steps": 5}),
                data=data)
    assert out.status == "completed"
    ckpt = torch.load(out.run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["optimizer"]["state"], "adam kept no moments: it never saw a gradient"


# --- the divergence watch --------------------------------------------------------------------------

def _watch(members=2, capacity=4):
    from ce_lab.training.divergence import DivergenceWatch

    return DivergenceWatch(members, ["loss", "grad_norm/a", "grad_norm/b"], capacity, "cpu")


def _record(watch, step, losses, norms):
    """``losses``: one per member; ``norms``: one list per quantity, one value per member (a
    plain number each with one member), as Backprop.squared_grad_norms gives them."""
    return watch.record(step, [torch.tensor(v) for v in losses], [torch.tensor(n) for n in norms])


def test_watch_reads_back_the_first_non_finite_step_and_quantity_per_member():
    watch = _watch()
    inf, nan = math.inf, math.nan
    _record(watch, 1, [1.0, 1.0], [[1.0, 1.0], [1.0, 1.0]])
    _record(watch, 2, [1.0, 1.0], [[1.0, 1.0], [inf, 1.0]])  # member 0: grad b at step 2
    _record(watch, 3, [nan, 1.0], [[nan, 1.0], [nan, 1.0]])  # member 0 again: not the first
    assert watch.read(3) == [(2, "grad_norm/b"), None]
    _record(watch, 4, [1.0, 1.0], [[1.0, nan], [1.0, 1.0]])  # member 1: grad a at step 4
    assert watch.read(4) == [None, (4, "grad_norm/a")]  # steps 1-3 were read already


def test_watch_names_the_loss_before_a_gradient_of_the_same_step():
    watch = _watch(members=1)
    _record(watch, 1, [math.inf], [math.nan, math.nan])
    assert watch.read(1) == [(1, "loss")]


def test_watch_wraps_its_ring_and_says_when_it_must_be_read():
    watch = _watch(members=1, capacity=4)
    for step in range(1, 4):
        _record(watch, step, [1.0], [1.0, 1.0])
        assert not watch.must_read(step)
    _record(watch, 4, [1.0], [1.0, math.inf])
    assert watch.must_read(4)
    assert watch.read(4) == [(4, "grad_norm/b")]
    for step in range(5, 9):  # the same four rows, written again
        _record(watch, step, [1.0], [1.0, 1.0])
    assert watch.read(8) == [None]


def test_watch_returns_the_recorded_row_for_logging():
    watch = _watch(members=2)
    row = _record(watch, 1, [0.5, 0.25], [[4.0, 9.0], [16.0, 25.0]])
    assert row.tolist() == [[0.5, 4.0, 16.0], [0.25, 9.0, 25.0]]


def test_divergence_of_a_gradient_is_detected_without_gradient_logging(cfg, data):  # noqa: F811
    # nll-manual's log(softmax) turns NaN in the gradient while its loss can still be finite;
    # logging gradient statistics or not must not change when and where the run diverges.
    base = with_overrides(cfg, {"loss.name": "nll-manual", "optim.lr": 200.0, "log.log_every": 7})
    on = train(with_overrides(base, {"log.grad_stats": True}), data=data)
    off = train(with_overrides(base, {"log.grad_stats": False}), data=data)
    assert on.status == off.status == "diverged"
    assert on.summary["diverged_at"] == off.summary["diverged_at"]
    assert on.summary["diverged_quantity"] == off.summary["diverged_quantity"]
