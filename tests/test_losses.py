"""The loss registry against independent float64 references.

Every reference below is written from the formula with plain float64 tensor ops (exp, log, log1p,
clamp_min, ...), never with the torch.nn.functional call the registry wraps, so a wrong reduction,
a wrong normaliser or a swapped argument in ``ce_lab/losses/`` shows up as a value mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ce_lab.config import LossConfig, resolve_config
from ce_lab.errors import ConfigError, UsageError
from ce_lab.losses import LOSSES, get_loss, loss_names, make_loss, make_loss_grad
from tests.conftest import assert_same
from tests.float64_refs import GRADS as LITERATURE_GRADS
from tests.float64_refs import OPTION_CASES as LITERATURE_OPTION_CASES
from tests.float64_refs import REFERENCES as LITERATURE_REFERENCES
from tests.float64_refs import onehot
from tests.float64_refs import softmax as _softmax

NUM_CLASSES = 10  # MNIST's, for these tests; the losses read C from the logits
F64 = torch.float64
DOUBLE_SOFTMAX_FLOOR = math.log(1 + 9 / math.e)  # 10 classes: softmax(z) at best a one-hot vector

# ---------------------------------------------------------------------------------------------
# Independent references (float64, written from the formulas)


def _sigmoid(z: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-z))


def _softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z), written so it neither overflows nor loses the small tail."""
    return z.clamp_min(0) + torch.log1p(torch.exp(-z.abs()))


def _ref_ce(z, y):
    # -log(exp(z_y) / sum_j exp(z_j)) = log sum_j exp(z_j) - z_y, the sum shifted by max(z)
    m = z.max(dim=-1).values
    lse = m + torch.log(torch.exp(z - m[:, None]).sum(dim=-1))
    return (lse - z[torch.arange(len(y)), y]).mean()


def _ref_mse(z, y, reduction):
    sq = (_sigmoid(z) - onehot(y, z.shape[1])) ** 2
    per_sample = sq.sum(dim=-1)
    return (per_sample / z.shape[1]).mean() if reduction == "mean" else per_sample.mean()


def _ref_hinge(z, y, margin, p):
    b, c = z.shape
    zy = z[torch.arange(b), y][:, None]
    terms = (margin - zy + z).clamp_min(0) ** p
    terms[torch.arange(b), y] = 0.0  # the sum runs over j != y
    return (terms.sum(dim=-1) / c).mean()


def _ref_bce(z, y):
    # -[t log sigmoid(z) + (1-t) log(1-sigmoid(z))] = t softplus(-z) + (1-t) softplus(z)
    t = onehot(y, z.shape[1])
    return (t * _softplus(-z) + (1 - t) * _softplus(z)).mean()


def _ref_double_softmax(z, y):
    return _ref_ce(_softmax(z), y)


REFERENCES = {
    "ce": lambda z, y, cfg: _ref_ce(z, y),
    "mse": lambda z, y, cfg: _ref_mse(z, y, cfg.mse_reduction),
    "hinge": lambda z, y, cfg: _ref_hinge(z, y, cfg.hinge_margin, 1),
    "hinge-sq": lambda z, y, cfg: _ref_hinge(z, y, cfg.hinge_margin, 2),
    "nll-manual": lambda z, y, cfg: _ref_ce(z, y),  # on logits where softmax does not underflow
    "bce": lambda z, y, cfg: _ref_bce(z, y),
    "double-softmax": lambda z, y, cfg: _ref_double_softmax(z, y),
    "log-softmax-ce": lambda z, y, cfg: _ref_ce(z, y),
    **LITERATURE_REFERENCES,  # mse-logits, mae, gce, ce-smooth, focal
}

# ---------------------------------------------------------------------------------------------
# Closed-form gradients d loss / d logits (batch mean included)


def _grad_ce(z, y, cfg):
    return (_softmax(z) - onehot(y, z.shape[1])) / z.shape[0]


def _grad_mse(z, y, cfg):
    b, c = z.shape
    s = _sigmoid(z)
    per_entry = 2 * (s - onehot(y, c)) * s * (1 - s)
    return per_entry / (b * c) if cfg.mse_reduction == "mean" else per_entry / b


def _grad_hinge(p):
    def grad(z, y, cfg):
        b, c = z.shape
        zy = z[torch.arange(b), y][:, None]
        active = (cfg.hinge_margin - zy + z).clamp_min(0)
        active[torch.arange(b), y] = 0.0
        g = p * active ** (p - 1) * (active > 0) / (b * c)  # d/dz_j of each active term
        g[torch.arange(b), y] = -g.sum(dim=-1)  # and minus that for z_y, once per active term
        return g

    return grad


def _grad_bce(z, y, cfg):
    return (_sigmoid(z) - onehot(y, z.shape[1])) / z.numel()


def _grad_double_softmax(z, y, cfg):
    # chain rule through the inner softmax s: dL/dz = s * (g - <s, g>), with g = dL/ds
    s = _softmax(z)
    g = _grad_ce(s, y, cfg)
    return s * (g - (s * g).sum(dim=-1, keepdim=True))


CLOSED_FORM_GRADS = {
    "ce": _grad_ce,
    "mse": _grad_mse,
    "hinge": _grad_hinge(1),
    "hinge-sq": _grad_hinge(2),
    "nll-manual": _grad_ce,
    "bce": _grad_bce,
    "double-softmax": _grad_double_softmax,
    "log-softmax-ce": _grad_ce,  # same function of z as ce, so the same gradient
    **LITERATURE_GRADS,
}

# Every registered loss with every config that changes its formula.
CASES = [
    pytest.param(name, LossConfig(name=name), id=name)
    for name in loss_names()
] + [
    pytest.param("mse", LossConfig(name="mse", mse_reduction="sum"), id="mse-sum"),
    pytest.param("hinge", LossConfig(name="hinge", hinge_margin=2.5), id="hinge-m2.5"),
    pytest.param("hinge-sq", LossConfig(name="hinge-sq", hinge_margin=0.3), id="hinge-sq-m0.3"),
    *LITERATURE_OPTION_CASES,
]


def test_every_registered_loss_has_a_reference():
    assert set(REFERENCES) == set(LOSSES) == set(CLOSED_FORM_GRADS)


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies: a batch of logits and integer targets


@st.composite
def batches(draw, min_classes=2, max_classes=NUM_CLASSES, bound=30.0):
    b = draw(st.integers(1, 6))
    c = draw(st.integers(min_classes, max_classes))
    z = draw(arrays(np.float64, (b, c), elements=st.floats(-bound, bound)))
    y = draw(arrays(np.int64, (b,), elements=st.integers(0, c - 1)))
    return torch.from_numpy(z), torch.from_numpy(y)


def _hinge_kink_free(name: str, z: torch.Tensor, y: torch.Tensor, cfg: LossConfig) -> bool:
    """False where a hinge term sits on its kink m - z_y + z_j = 0 (no unique gradient there)."""
    if not name.startswith("hinge"):
        return True
    b = z.shape[0]
    slack = cfg.hinge_margin - z[torch.arange(b), y][:, None] + z
    slack[torch.arange(b), y] = 1.0
    return bool((slack.abs() > 1e-6).all())


def _value_and_grad(fn, z, y, cfg):
    z = z.clone().requires_grad_(True)
    loss = fn(z, y, cfg)
    (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


# ---------------------------------------------------------------------------------------------
# Values and gradients against the references


@pytest.mark.parametrize(("name", "cfg"), CASES)
@settings(max_examples=30, deadline=None)
@given(batch=batches())
def test_value_matches_float64_reference(name, cfg, batch):
    z, y = batch
    got = make_loss(cfg)(z, y)
    want = REFERENCES[name](z, y, cfg)
    assert got.dtype == F64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "cfg"), CASES)
@settings(max_examples=30, deadline=None)
@given(batch=batches())
def test_gradient_matches_closed_form(name, cfg, batch):
    z, y = batch
    assume(_hinge_kink_free(name, z, y, cfg))
    _, got = _value_and_grad(get_loss(name).fn, z, y, cfg)
    want = CLOSED_FORM_GRADS[name](z, y, cfg)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "cfg"), CASES)
def test_gradient_matches_autograd_of_reference(name, cfg):
    # A second, independent route: autograd through the separately written formula.
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(5, NUM_CLASSES, generator=gen, dtype=F64) * 4
    y = torch.randint(0, NUM_CLASSES, (5,), generator=gen)
    assert _hinge_kink_free(name, z, y, cfg)
    got_loss, got = _value_and_grad(get_loss(name).fn, z, y, cfg)
    want_loss, want = _value_and_grad(REFERENCES[name], z, y, cfg)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert got.abs().max() > 1e-6  # these logits give every loss a gradient to compare


@pytest.mark.parametrize(("name", "cfg"), CASES)
def test_gradcheck(name, cfg):
    gen = torch.Generator().manual_seed(3)
    z = (torch.randn(4, NUM_CLASSES, generator=gen, dtype=F64) * 3).requires_grad_(True)
    y = torch.randint(0, NUM_CLASSES, (4,), generator=gen)
    assert _hinge_kink_free(name, z.detach(), y, cfg)  # finite differences need a smooth point
    fn = get_loss(name).fn
    assert torch.autograd.gradcheck(lambda logits: fn(logits, y, cfg), (z,))


def test_hand_computed_values():
    """A few numbers worked out by hand, so the references themselves are anchored."""
    z = torch.tensor([[2.0, 0.0, 0.0]], dtype=F64)
    y = torch.tensor([0])
    # ce: -log(e^2 / (e^2 + 2))
    assert get_loss("ce").fn(z, y, LossConfig()).item() == pytest.approx(
        -math.log(math.exp(2) / (math.exp(2) + 2)), rel=1e-12
    )
    # hinge, margin 1: j=1 and j=2 each give max(0, 1 - 2 + 0) = 0
    assert get_loss("hinge").fn(z, y, LossConfig()).item() == 0.0
    # hinge with target 1: j=0 gives 1 - 0 + 2 = 3, j=2 gives 1; (3 + 1) / 3 classes
    y1 = torch.tensor([1])
    assert get_loss("hinge").fn(z, y1, LossConfig()).item() == pytest.approx(4 / 3, rel=1e-12)
    assert get_loss("hinge-sq").fn(z, y1, LossConfig()).item() == pytest.approx(10 / 3, rel=1e-12)
    # mse at z = 0: sigmoid = 1/2 everywhere, every squared error 1/4
    z0 = torch.zeros(2, NUM_CLASSES, dtype=F64)
    y0 = torch.tensor([0, 5])
    assert get_loss("mse").fn(z0, y0, LossConfig()).item() == pytest.approx(0.25)
    assert get_loss("mse").fn(z0, y0, LossConfig(mse_reduction="sum")).item() == pytest.approx(2.5)
    # bce at z = 0: log 2 per entry
    assert get_loss("bce").fn(z0, y0, LossConfig()).item() == pytest.approx(math.log(2))


# ---------------------------------------------------------------------------------------------
# nll-manual: ce on moderate logits, non-finite where softmax underflows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@settings(max_examples=30, deadline=None)
@given(batch=batches(bound=15.0))
def test_nll_manual_equals_ce_on_moderate_logits(dtype, batch):
    z, y = batch
    z = z.to(dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    cfg = LossConfig()
    nll_loss, nll_grad = _value_and_grad(get_loss("nll-manual").fn, z, y, cfg)
    ce_loss, ce_grad = _value_and_grad(get_loss("ce").fn, z, y, cfg)
    torch.testing.assert_close(nll_loss, ce_loss, **tol)
    torch.testing.assert_close(nll_grad, ce_grad, **tol)


def test_nll_manual_is_infinite_when_the_target_probability_underflows():
    # float32: exp(-200) ~ 1e-87 is far below the smallest subnormal (1.4e-45), so softmax gives
    # the target exactly 0 and log(0) = -inf: the loss is +inf. Its backward then divides by that
    # zero probability (0 * inf) and every entry of the gradient is NaN. ce stays finite (200).
    z = torch.zeros(1, NUM_CLASSES)
    z[0, 0] = 200.0
    y = torch.tensor([3])
    loss, grad = _value_and_grad(get_loss("nll-manual").fn, z, y, LossConfig())
    assert loss.item() == math.inf
    assert grad.isnan().all()
    ce_loss, ce_grad = _value_and_grad(get_loss("ce").fn, z, y, LossConfig())
    assert ce_loss.item() == pytest.approx(200.0)
    assert ce_grad.isfinite().all()


@pytest.mark.parametrize(
    ("dtype", "gap"), [(torch.float32, 200.0), (torch.float64, 800.0)], ids=["float32", "float64"]
)
def test_nll_manual_finite_loss_but_nan_gradient_when_a_non_target_underflows(dtype, gap):
    # Target at the max: its probability rounds to 1 and the loss is a finite 0. But the others
    # have probability exactly 0, so log(softmax) holds -inf in entries the loss never uses. In the
    # backward, d log(p)/dp = 1/p meets an incoming gradient of 0 there: 0/0 = NaN, and the softmax
    # backward spreads it to every logit. ce's gradient at the same point is finite (about 0).
    z = torch.zeros(2, NUM_CLASSES, dtype=dtype)
    z[:, 0] = gap
    y = torch.tensor([0, 0])
    loss, grad = _value_and_grad(get_loss("nll-manual").fn, z, y, LossConfig())
    assert loss.item() == 0.0
    assert grad.isnan().all()
    _, ce_grad = _value_and_grad(get_loss("ce").fn, z, y, LossConfig())
    assert ce_grad.isfinite().all()
    assert ce_grad.abs().max().item() < 1e-30


# ---------------------------------------------------------------------------------------------
# double-softmax: bounded below by log(1 + 9/e), reached by a confident correct prediction


def test_double_softmax_floor_constant():
    # softmax(z) = onehot(y) is the best input to the outer cross-entropy: -log(e / (e + 9))
    assert -math.log(math.e / (math.e + 9)) == pytest.approx(DOUBLE_SOFTMAX_FLOOR, rel=1e-15)
    assert DOUBLE_SOFTMAX_FLOOR == pytest.approx(1.4612, abs=1e-4)


@settings(max_examples=30, deadline=None)
@given(batch=batches(min_classes=NUM_CLASSES, bound=100.0))
def test_double_softmax_never_below_its_floor(batch):
    z, y = batch
    loss = get_loss("double-softmax").fn(z, y, LossConfig())
    assert loss.item() >= DOUBLE_SOFTMAX_FLOOR - 1e-12


@settings(max_examples=30, deadline=None)
@given(batch=batches(min_classes=NUM_CLASSES, bound=20.0), lead=st.floats(60.0, 200.0))
def test_double_softmax_approaches_its_floor_when_confident_and_correct(batch, lead):
    z, y = batch
    # put the target `lead` above every other logit: softmax(z) is one-hot up to e^-60
    rows = torch.arange(len(y))
    z[rows, y] = z.max(dim=-1).values + lead
    loss = get_loss("double-softmax").fn(z, y, LossConfig())
    assert loss.item() == pytest.approx(DOUBLE_SOFTMAX_FLOOR, abs=1e-12)
    assert loss.item() >= DOUBLE_SOFTMAX_FLOOR - 1e-12


def test_double_softmax_barely_moves_while_ce_goes_to_zero():
    # The reason it is a mistake: doubling the confidence hardly changes the loss near the floor.
    y = torch.tensor([0])
    losses = []
    for lead in (2.0, 5.0, 10.0):
        z = torch.zeros(1, NUM_CLASSES, dtype=F64)
        z[0, 0] = lead
        losses.append(get_loss("double-softmax").fn(z, y, LossConfig()).item())
        assert get_loss("ce").fn(z, y, LossConfig()).item() < math.log(NUM_CLASSES)
    assert losses[0] > losses[1] > losses[2] > DOUBLE_SOFTMAX_FLOOR
    assert losses[2] - DOUBLE_SOFTMAX_FLOOR < 1e-3


# ---------------------------------------------------------------------------------------------
# log-softmax-ce: log_softmax is idempotent, so it is ce


@settings(max_examples=30, deadline=None)
@given(batch=batches(bound=100.0))
def test_log_softmax_ce_equals_ce(batch):
    z, y = batch
    cfg = LossConfig()
    lsm_loss, lsm_grad = _value_and_grad(get_loss("log-softmax-ce").fn, z, y, cfg)
    ce_loss, ce_grad = _value_and_grad(get_loss("ce").fn, z, y, cfg)
    torch.testing.assert_close(lsm_loss, ce_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lsm_grad, ce_grad, rtol=1e-10, atol=1e-14)


def test_log_softmax_is_idempotent():
    z = torch.randn(3, NUM_CLASSES, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    once = torch.log_softmax(z, dim=-1)
    torch.testing.assert_close(torch.log_softmax(once, dim=-1), once, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Registry metadata and errors


@pytest.mark.parametrize("name", loss_names())
def test_every_spec_is_described(name):
    spec = LOSSES[name]
    assert spec.name == name
    assert spec.description.strip()


def test_squashes_sigmoid_exactly_for_mse_and_bce():
    assert {n for n, spec in LOSSES.items() if spec.squashes_sigmoid} == {"mse", "bce"}


def test_get_loss_unknown_name_lists_the_valid_ones():
    with pytest.raises(UsageError) as info:
        get_loss("cross-entropy")
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "'cross-entropy'" in msg
    for name in loss_names():
        assert name in msg


def test_config_rejects_an_unknown_loss_name():
    with pytest.raises(ConfigError) as info:
        resolve_config(sets=["loss.name=softmax"])
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "loss.name" in msg and "'softmax'" in msg
    assert "\n" not in msg
    for name in loss_names():
        assert name in msg


def test_make_loss_binds_the_config():
    z = torch.tensor([[0.5, -1.0, 2.0]], dtype=F64)
    y = torch.tensor([2])
    wide = make_loss(LossConfig(name="hinge", hinge_margin=4.0))(z, y)
    # j=0: 4 - 2 + 0.5 = 2.5, j=1: 4 - 2 - 1 = 1; (2.5 + 1) / 3
    assert wide.item() == pytest.approx(3.5 / 3, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Closed-form gradients, which training uses instead of autograd where a loss gives one

CLOSED_FORM_CASES = [c for c in CASES if get_loss(c.values[0]).grad is not None]


def test_the_pipelines_that_show_autograd_have_no_closed_form():
    assert {c.values[0] for c in CLOSED_FORM_CASES} == {"ce", "mse", "hinge", "hinge-sq", "bce",
                                                        *LITERATURE_REFERENCES}
    for name in ("nll-manual", "double-softmax", "log-softmax-ce"):
        assert get_loss(name).grad is None and make_loss_grad(LossConfig(name=name)) is None


@pytest.mark.parametrize(("name", "cfg"), CLOSED_FORM_CASES)
@settings(max_examples=30, deadline=None)
@given(batch=batches())
def test_closed_form_equals_autograd_of_the_loss(name, cfg, batch):
    z, y = batch
    assume(_hinge_kink_free(name, z, y, cfg))
    want_loss, want_grad = _value_and_grad(get_loss(name).fn, z, y, cfg)
    got_loss, got_grad = make_loss_grad(cfg)(z, y)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got_grad, CLOSED_FORM_GRADS[name](z, y, cfg), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "cfg"), CLOSED_FORM_CASES)
def test_closed_form_in_float32_on_large_logits(name, cfg, device):
    # Logits of a few hundred: softmax underflows for most classes, sigmoids saturate. The
    # closed forms stay finite and agree with autograd there too (on --device).
    gen = torch.Generator().manual_seed(5)
    z = (torch.randn(16, NUM_CLASSES, generator=gen) * 300).to(device)
    y = torch.randint(0, NUM_CLASSES, (16,), generator=gen).to(device)
    want_loss, want_grad = _value_and_grad(get_loss(name).fn, z, y, cfg)
    got_loss, got_grad = make_loss_grad(cfg)(z, y)
    assert torch.isfinite(got_grad).all() and torch.isfinite(got_loss)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Stacks of logits (K, B, C): slice k bit for bit the 2-D call on logits[k], and the 2-D call bit
# for bit what it was before stacks existed (the functions below are that code, kept verbatim).


def _head_onehot(logits, targets):
    return logits.new_zeros(logits.shape).scatter_(-1, targets.unsqueeze(-1), 1.0)


def _head_ce_grad(logits, targets, cfg):
    log_p = torch.log_softmax(logits, dim=-1)
    loss = torch.nn.functional.nll_loss(log_p, targets)
    return loss, log_p.exp_().sub_(_head_onehot(logits, targets)).div_(logits.shape[0])


def _head_mse_grad(logits, targets, cfg):
    s = torch.sigmoid(logits)
    diff = s - _head_onehot(logits, targets)
    per_example = logits.numel() if cfg.mse_reduction == "mean" else logits.shape[0]
    loss = diff.square().sum() / per_example
    return loss, torch.ops.aten.sigmoid_backward(diff * (2.0 / per_example), s)


def _head_hinge_grad(p):
    def grad(logits, targets, cfg):
        b, c = logits.shape
        z_target = logits.gather(-1, targets.unsqueeze(-1))
        slack = (logits - z_target + cfg.hinge_margin).clamp_min_(0).scatter_(
            -1, targets.unsqueeze(-1), 0.0)
        loss = (slack if p == 1 else slack.square()).sum() / (b * c)
        per_term = (slack > 0).to(logits.dtype) if p == 1 else slack * 2.0
        grad = per_term.scatter_(-1, targets.unsqueeze(-1), per_term.sum(-1, keepdim=True).neg())
        return loss, grad.div_(b * c)

    return grad


def _head_bce_grad(logits, targets, cfg):
    onehot = _head_onehot(logits, targets)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot)
    return loss, (torch.sigmoid(logits) - onehot).div_(logits.numel())


def _head_mse(logits, targets, cfg):
    onehot = torch.nn.functional.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    sq = (torch.sigmoid(logits) - onehot).pow(2)
    return sq.mean() if cfg.mse_reduction == "mean" else sq.sum(-1).mean()


def _head_bce(logits, targets, cfg):
    onehot = torch.nn.functional.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot)


HEAD_GRADS = {"ce": _head_ce_grad, "mse": _head_mse_grad, "hinge": _head_hinge_grad(1),
              "hinge-sq": _head_hinge_grad(2), "bce": _head_bce_grad}
HEAD_VALUES = {"ce": lambda z, y, cfg: torch.nn.functional.cross_entropy(z, y), "mse": _head_mse,
               "bce": _head_bce}
# The losses added after stacks existed have no earlier 2-D code: their 2-D call is the head.
for _name in LITERATURE_REFERENCES:
    HEAD_GRADS[_name] = lambda z, y, cfg: make_loss_grad(cfg)(z, y)
    HEAD_VALUES[_name] = lambda z, y, cfg: make_loss(cfg)(z, y)


def _stack(k: int, b: int, kind: str, dtype=torch.float32, c: int = NUM_CLASSES, seed: int = 0):
    gen = torch.Generator().manual_seed(seed * 1000 + k * 100 + b)
    z = torch.randn(k, b, c, generator=gen, dtype=dtype)
    if kind == "random":
        z *= 4
    else:  # extreme: +-300, where softmax underflows and sigmoids saturate, mixed with small ones
        z = torch.where(torch.rand(z.shape, generator=gen) < 0.5, z.sign() * 300, z)
    return z, torch.randint(0, c, (b,), generator=gen)


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _assert_slices_are_the_2d_calls(fn, head, z, y, cfg):
    """fn(z) on the stack, slice k, is fn(z[k]), which is head(z[k]) (today's code), all exactly."""
    got = _as_tuple(fn(z, y))
    assert got[0].shape == z.shape[:-2]
    if len(got) == 2:  # (loss, gradient)
        assert got[1].shape == z.shape and got[1].is_contiguous()
    for k in range(z.shape[0]):
        one, want = _as_tuple(fn(z[k], y)), _as_tuple(head(z[k], y, cfg))
        for stacked, one_k, want_k in zip(got, one, want, strict=True):
            assert_same(one_k, want_k)  # the 2-D call is what it was
            assert_same(stacked[k], one_k)  # and slice k of the stack is the 2-D call


@pytest.mark.parametrize("kind", ["random", "extreme"])
@pytest.mark.parametrize("b", [1, 5, 64])
@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize(("name", "cfg"), CLOSED_FORM_CASES)
def test_closed_form_on_a_stack_is_the_2d_call_bit_for_bit(name, cfg, k, b, kind, device):
    z, y = (t.to(device) for t in _stack(k, b, kind))
    _assert_slices_are_the_2d_calls(make_loss_grad(cfg), HEAD_GRADS[name], z, y, cfg)


BATCHED_VALUE_CASES = [c for c in CASES if get_loss(c.values[0]).batched]


def test_the_batched_value_functions():
    assert {c.values[0] for c in BATCHED_VALUE_CASES} == set(HEAD_VALUES)


@pytest.mark.parametrize("kind", ["random", "extreme"])
@pytest.mark.parametrize(("k", "b"), [(1, 5), (3, 1), (7, 64), (3, 2000)])
@pytest.mark.parametrize(("name", "cfg"), BATCHED_VALUE_CASES)
def test_loss_value_on_a_stack_is_the_2d_call_bit_for_bit(name, cfg, k, b, kind):
    z, y = _stack(k, b, kind)
    _assert_slices_are_the_2d_calls(make_loss(cfg), HEAD_VALUES[name], z, y, cfg)


@pytest.mark.parametrize(("name", "cfg"), [c for c in CASES if not get_loss(c.values[0]).batched])
def test_make_loss_takes_a_stack_for_every_loss(name, cfg):
    z, y = _stack(3, 5, "random", dtype=F64)
    got = make_loss(cfg)(z, y)
    assert got.shape == (3,)
    for k in range(3):
        assert torch.equal(got[k], get_loss(name).fn(z[k], y, cfg))


@pytest.mark.parametrize(("name", "cfg"), CLOSED_FORM_CASES)
def test_closed_form_on_a_large_stack_float64_and_more_leading_dims(name, cfg):
    # 6 x 600 x 10 is past the size where elementwise kernels split across threads: the stack is
    # computed in chunks (5 slices, then 1); 4000 x 10 is past it in one slice. float64, other
    # class counts and two leading dims go the same way.
    for z, y in (_stack(6, 600, "random"), _stack(2, 4000, "extreme"),
                 _stack(3, 5, "extreme", dtype=F64, c=3)):
        _assert_slices_are_the_2d_calls(make_loss_grad(cfg), HEAD_GRADS[name], z, y, cfg)
    z, y = _stack(6, 5, "random")
    loss, grad = make_loss_grad(cfg)(z.view(2, 3, 5, NUM_CLASSES), y)
    flat_loss, flat_grad = make_loss_grad(cfg)(z, y)
    assert torch.equal(loss, flat_loss.view(2, 3)) and torch.equal(grad, flat_grad.view(2, 3, 5, -1))


@pytest.mark.parametrize("b", [1, 2, 16, 17, 33, 64, 255, 256, 257, 258, 4100])
def test_nll_mean_replays_nll_loss_summation_order(b):
    from ce_lab.losses.stacks import nll_mean, nll_mean_replayed

    for dtype in (torch.float32, F64):
        z, y = _stack(3, b, "random", dtype=dtype)
        z = z * torch.logspace(-3, 3, b, dtype=dtype)[:, None]  # magnitudes that expose the order
        log_p = torch.log_softmax(z, dim=-1)
        want = torch.stack([torch.nn.functional.nll_loss(lp, y) for lp in log_p])
        assert torch.equal(nll_mean_replayed(log_p, y), want)
        assert torch.equal(nll_mean(log_p, y), want)


def test_ce_on_a_stack_of_many_members_replays_the_order():
    from ce_lab.losses.stacks import NLL_PER_SLICE

    k = NLL_PER_SLICE + 3
    for kind in ("random", "extreme"):
        z, y = _stack(k, 64, kind)
        _assert_slices_are_the_2d_calls(make_loss_grad(LossConfig()), HEAD_GRADS["ce"], z, y,
                                        LossConfig())
        _assert_slices_are_the_2d_calls(make_loss(LossConfig()), HEAD_VALUES["ce"], z, y,
                                        LossConfig())


# ---------------------------------------------------------------------------------------------
# A loss is one function plus one registration: listed, validated, trained, with its options


def test_loss_options_are_their_losses_config_keys_with_todays_format():
    from ce_lab.config import RunConfig, to_yaml
    from ce_lab.losses import HingeOptions, MseOptions, loss_options

    assert get_loss("mse").options is MseOptions
    assert get_loss("hinge").options is get_loss("hinge-sq").options is HingeOptions
    assert list(LossConfig.model_fields) == ["name", "mse_reduction", "hinge_margin", "q",
                                             "epsilon", "gamma", "epsilon_poly", "sce_alpha",
                                             "sce_beta", "apl_alpha", "apl_beta", "t"]
    # what `config show` prints and every run's config.yaml holds: the earlier keys unchanged,
    # the options of the losses added since after them
    assert ("\nloss:\n  name: ce\n  mse_reduction: mean\n  hinge_margin: 1.0\n  q: 0.7\n"
            "  epsilon: 0.1\n  gamma: 2.0\n  epsilon_poly: 1.0\n  sce_alpha: 0.1\n  sce_beta: 1.0\n"
            "  apl_alpha: 1.0\n  apl_beta: 1.0\n  t: 2\noptim:\n") in to_yaml(RunConfig())
    cfg = LossConfig(name="hinge-sq", hinge_margin=0.5)
    assert loss_options(cfg) == HingeOptions(hinge_margin=0.5)
    assert loss_options(LossConfig(name="ce")) is None


@pytest.mark.parametrize(("item", "message"), [
    ("loss.hinge_margin=0", "loss.hinge_margin: Input should be greater than 0 (got 0)"),
    ("loss.mse_reduction=max", "loss.mse_reduction: Input should be 'mean' or 'sum' (got 'max')"),
])
def test_a_bad_option_value_is_one_line_naming_the_key(item, message):
    with pytest.raises(ConfigError) as info:
        resolve_config(sets=[item])
    assert str(info.value) == f"--set {item}: {message}"


def test_new_option_keys_cannot_arrive_after_the_config_is_built():
    from ce_lab.losses import LossOptions, register_loss

    class Late(LossOptions):
        late_knob: float = 1.0

    with pytest.raises(RuntimeError, match="loss.late_knob"):
        register_loss("late", lambda z, y, cfg: z.sum(), "never registered", options=Late)
    assert "late" not in LOSSES


@pytest.mark.parametrize("first", ["ce_lab.config", "ce_lab.losses.registry",
                                   "ce_lab.losses.literature", "ce_lab.losses.stacks",
                                   "ce_lab.cli.completion"])
def test_whichever_module_is_imported_first_every_loss_and_option_is_registered(first):
    # Before the losses package, a loss with options had to be registered before ce_lab.config
    # was imported; now any entry into the package registers them all, in one order.
    import subprocess
    import sys

    code = (f"import {first}\nimport sys\nfrom ce_lab.config import LossConfig\n"
            "from ce_lab.losses import LOSSES\n"
            "print(','.join(LOSSES)); print(','.join(LossConfig.model_fields))\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [",".join(LOSSES), ",".join(LossConfig.model_fields), "False"]
    assert out.stdout.split()[0].startswith("ce,mse,hinge,hinge-sq,nll-manual,bce,")
    assert out.stdout.split()[0].endswith(",mse-logits,mae,gce,ce-smooth,focal,poly1,squentropy,"
                                          "sparsemax,sce,nce-rce,nce-mae,taylor-ce")
