"""The element-wise optimizer with per-member hyperparameters, against torch.optim.

A lone member (M = 1) must update exactly as torch.optim's foreach implementation, bit for bit; a
member of a stack whose other members have other hyperparameters must update exactly as it would
alone. Checked for sgd (plain, momentum, Nesterov, weight decay), adam and adamw, with schedules,
on layer sizes whose element counts are and are not multiples of the vector width.
"""

from __future__ import annotations

import pytest
import torch

from ce_lab.config import OptimConfig, ScheduleConfig
from ce_lab.nn.mlp import build_model
from ce_lab.optim import CHUNK, StackedOptimizer, lr_at
from tests import conftest
from tests.conftest import assert_same

SGD = [
    OptimConfig(name="sgd", lr=0.3),
    OptimConfig(name="sgd", lr=0.05, momentum=0.5),
    OptimConfig(name="sgd", lr=0.3, momentum=0.9, nesterov=True, weight_decay=1e-3),
    OptimConfig(name="sgd", lr=1.5, weight_decay=0.01),
    OptimConfig(name="sgd", lr=0.1, momentum=0.8),
    OptimConfig(name="sgd", lr=3.0),
]
ADAM = [
    OptimConfig(name="adam", lr=1e-2),
    OptimConfig(name="adam", lr=1e-2, weight_decay=0.01, beta1=0.8),
    OptimConfig(name="adam", lr=0.3, beta2=0.9),
    OptimConfig(name="adam", lr=1e-3),
    OptimConfig(name="adam", lr=3e-3, beta1=0.5, beta2=0.99),
    OptimConfig(name="adam", lr=5e-2, weight_decay=0.1),
]
ADAMW = [o.model_copy(update={"name": "adamw"}) for o in ADAM]
COSINE = ScheduleConfig(name="cosine", min_lr=0.001)
STEP = ScheduleConfig(name="step", step_every=2, gamma=0.5)


def _grads(model, step: int) -> None:
    """The same gradient for every member (so members differ only by their hyperparameters)."""
    for p in model.parameters():
        g = torch.randn(p.shape[1:], generator=torch.Generator().manual_seed(p[0].numel() + step))
        p.grad = g.to(p.device).expand(p.shape).clone()


def _train(optims, schedules=None, steps=4, hidden=(8,), reference=False):
    model = build_model(len(optims), list(hidden), "relu", "default", 3, conftest.TEST_DEVICE)
    params = list(model.parameters())
    schedules = schedules or [ScheduleConfig()] * len(optims)
    if reference:
        (o,), (s,) = optims, schedules
        if o.name == "sgd":
            opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                  weight_decay=o.weight_decay, foreach=True)
        else:
            cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o.name]
            opt = cls(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay,
                      foreach=True)
    else:
        opt = StackedOptimizer(params, optims, schedules, total_steps=steps)
    for step in range(steps):
        _grads(model, step)
        if reference:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, o.lr, s)
            opt.step()
        else:
            opt.step(step)
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("optim", [*SGD, *ADAM, *ADAMW], ids=lambda o: f"{o.name}-{o.lr}")
@pytest.mark.parametrize("schedule", [ScheduleConfig(), COSINE, STEP], ids=["const", "cos", "step"])
def test_a_lone_member_updates_as_torch_optim_bit_for_bit(optim, schedule):
    ours = _train([optim], [schedule])
    ref = _train([optim], [schedule], reference=True)
    for a, b in zip(ours, ref):
        assert_same(a, b)


@pytest.mark.parametrize("optims", [SGD, ADAM, ADAMW], ids=["sgd", "adam", "adamw"])
@pytest.mark.parametrize("hidden", [(8,), (300,), (37, 5)], ids=["8", "300", "37-5"])
def test_each_member_of_a_mixed_stack_updates_as_it_would_alone(optims, hidden):
    schedules = [COSINE if i % 3 == 0 else STEP if i % 3 == 1 else ScheduleConfig()
                 for i in range(len(optims))]
    fused = _train(optims, schedules, hidden=hidden)
    for m, (o, s) in enumerate(zip(optims, schedules)):
        alone = _train([o], [s], hidden=hidden)
        for f, a in zip(fused, alone):
            assert_same(f[m : m + 1], a, (m, o))


def test_step_dependent_values_are_refilled_across_chunks():
    # More steps than one device-side chunk holds: the refill must continue the sequence.
    o, s = OptimConfig(name="adam", lr=1e-2), COSINE
    steps = CHUNK + 3
    for a, b in zip(_train([o], [s], steps=steps, hidden=(4,)),
                    _train([o], [s], steps=steps, hidden=(4,), reference=True)):
        assert_same(a, b)


def test_member_state_round_trips_through_torch_optims_layout():
    optims = [ADAM[0], ADAM[2]]
    model = build_model(2, [8], "relu", "default", 3)
    opt = StackedOptimizer(list(model.parameters()), optims, [ScheduleConfig()] * 2, 10)
    for step in range(3):
        _grads(model, step)
        opt.step(step)
    saved = opt.member_state_dict(1)
    assert saved["state"][0]["step"].item() == 3.0
    assert saved["state"][0]["exp_avg"].shape == (1, 8, 784)
    lone = build_model(1, [8], "relu", "default", 3)
    ref = torch.optim.Adam(lone.parameters(), lr=0.3, betas=(0.9, 0.9))
    ref.load_state_dict(saved)  # torch.optim reads it as its own
    other = StackedOptimizer(list(lone.parameters()), [optims[1]], [ScheduleConfig()], 10)
    other.load_member_state_dict(0, saved)
    assert other.steps_taken == 3
    assert torch.equal(other.state["exp_avg_sq"][2], opt.state["exp_avg_sq"][2][1:2])  # a copy


def test_one_stack_runs_one_optimizer():
    model = build_model(2, [4], "relu", "default", 0)
    with pytest.raises(ValueError, match="one optimizer"):
        StackedOptimizer(list(model.parameters()), [SGD[0], ADAM[0]], [ScheduleConfig()] * 2, 5)
