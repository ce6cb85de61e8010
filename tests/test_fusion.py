"""Stacks of members that differ in the loss *and* the optimizer's hyperparameters.

The rule of what may differ inside a stack (``ce_lab.training.fusion``), and the promise that makes
a stack worth having (docs/fusion.md): every member trains as it would alone.
To the bit on a CPU: a member's evaluation, given the same weights, on any CPU and any threads (it
is a lone run's by construction); the whole run (``loss``, ``acc``, ``val_*``, the final numbers)
wherever the stack's training step is slice for slice the lone step's here, which
``conftest.stack_trains_exactly`` checks first. Elsewhere (other shapes or kernels, a GPU) within
float32 rounding.
"""

from __future__ import annotations

import json
import math

import pytest

from ce_lab.config import with_overrides
from ce_lab.errors import CeLabError
from ce_lab.training import fusable, plan_stacks, train, train_paired
from ce_lab.training.fusion import member_labels
from tests import conftest
from tests.helpers import rows

GRADS = ("grad_norm/fc1.weight", "grad_norm/fc1.bias", "grad_norm/fc2.weight", "grad_norm/fc2.bias",
         "grad_norm/total", "logit_grad_norm", "update_ratio/fc1.weight", "update_ratio/fc2.weight")
COMPARED = {"metrics.csv": ("step", "lr", "loss", "acc", *GRADS),
            "eval.csv": ("step", "val_loss", "val_acc", "val_ece", "val_nll", "val_brier")}


def same_columns(a: list[dict], b: list[dict], cols, exact: bool, msg=None) -> None:
    """The columns equal as written (to the bit) where training is ``exact``
    (``conftest.stack_trains_exactly``); within float32 rounding elsewhere."""
    got, want = [[r[k] for k in cols] for r in a], [[r[k] for k in cols] for r in b]
    if exact:
        assert got == want, msg
    else:
        assert len(got) == len(want), msg
        for x, y in zip(got, want):
            assert all(math.isclose(float(p), float(q), rel_tol=1e-3, abs_tol=1e-5)
                       or p == q for p, q in zip(x, y)), msg


def same_final(a: dict, b: dict, exact: bool, msg=None) -> None:
    """summary.json's final numbers: equal where training is ``exact``, else within rounding."""
    if exact:
        assert a == b, msg
    else:
        assert a.keys() == b.keys(), msg
        for k in a:
            assert a[k] == b[k] or math.isclose(a[k], b[k], rel_tol=1e-3, abs_tol=1e-5), (k, msg)


@pytest.mark.parametrize("override", [
    {"loss.name": "mse"}, {"loss.hinge_margin": 2.0}, {"optim.lr": 3.0}, {"optim.momentum": 0.9},
    {"optim.momentum": 0.9, "optim.nesterov": True}, {"optim.weight_decay": 1e-3},
    {"optim.beta1": 0.5}, {"optim.beta2": 0.9}, {"schedule.name": "cosine"},
    {"schedule.name": "step", "schedule.gamma": 0.5}, {"log.thresholds": [0.5]},
    {"out_dir": "elsewhere"},
], ids=lambda o: ",".join(o))
def test_what_may_differ_inside_a_stack(cfg, override):  # noqa: F811
    assert fusable([cfg, with_overrides(cfg, override)])


@pytest.mark.parametrize("override", [
    {"seed": 1}, {"data.val_size": 10}, {"model.hidden": [16]}, {"model.activation": "tanh"},
    {"model.init": "xavier"}, {"train.batch_size": 32}, {"train.epochs": 1},
    {"train.max_steps": 5}, {"train.eval_batch_size": 7}, {"optim.name": "adam"},
    {"device": "auto"}, {"log.log_every": 3}, {"log.eval_every": 3}, {"log.grad_stats": False},
    {"log.checkpoint": False},
], ids=lambda o: ",".join(o))
def test_what_a_stack_must_share(cfg, override):  # noqa: F811
    assert not fusable([cfg, with_overrides(cfg, override)])


def test_stacks_are_planned_by_the_rule_and_bounded_in_size(cfg):  # noqa: F811
    cfgs = [with_overrides(cfg, {"optim.lr": lr, "seed": seed})
            for seed in (0, 1) for lr in (0.1, 0.3, 1.0)]
    assert plan_stacks(cfgs) == [[0, 1, 2], [3, 4, 5]]
    assert plan_stacks(cfgs, max_members=2) == [[0, 1], [2], [3, 4], [5]]


def test_members_are_labelled_by_what_tells_them_apart(cfg):  # noqa: F811
    cfgs = [with_overrides(cfg, o) for o in ({"loss.name": "ce"}, {"loss.name": "mse"},
                                             {"loss.name": "mse", "optim.lr": 3.0})]
    assert member_labels(cfgs) == ["ce lr=0.1", "mse lr=0.1", "mse lr=3.0"]
    assert member_labels(cfgs[:2]) == ["ce", "mse"]


GRID = {  # at least 6 members mixing losses, learning rates, momentum and weight decay
    "sgd": [{"loss.name": "ce"}, {"loss.name": "ce", "optim.lr": 0.5},
            {"loss.name": "mse", "optim.lr": 3.0}, {"loss.name": "hinge", "optim.momentum": 0.9},
            {"loss.name": "nll-manual", "optim.weight_decay": 1e-2},
            {"loss.name": "mse", "optim.momentum": 0.5, "optim.nesterov": True,
             "schedule.name": "cosine"},
            {"loss.name": "nll-manual", "optim.lr": 0.03}],
    "adam": [{"loss.name": "ce"}, {"loss.name": "ce", "optim.lr": 3e-3},
             {"loss.name": "mse", "optim.lr": 1e-2}, {"loss.name": "hinge", "optim.beta1": 0.5},
             {"loss.name": "nll-manual", "optim.weight_decay": 1e-2},
             {"loss.name": "bce", "optim.beta2": 0.9, "schedule.name": "step",
              "schedule.step_every": 7}],
}
GRID["adamw"] = GRID["adam"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_member_of_a_mixed_stack_trains_bit_for_bit_as_alone(cfg, data, optimizer):  # noqa: F811
    base = with_overrides(cfg, {"optim.name": optimizer, "train.epochs": 1,
                                "optim.lr": 0.1 if optimizer == "sgd" else 1e-3})
    cfgs = [with_overrides(base, o) for o in GRID[optimizer]]
    assert fusable(cfgs)
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)
    ids = {o.run_dir.name for o in fused}
    for c, out in zip(cfgs, fused):
        meta = json.loads((out.run_dir / "meta.json").read_text())
        assert set(meta["fused_with"]) == ids - {out.run_dir.name}  # really one stack
        alone = train(c, data=data)
        assert out.status == alone.status
        for name, cols in COMPARED.items():
            a, b = rows(out.run_dir / name), rows(alone.run_dir / name)
            assert len(a) == len(b) and a
            same_columns(a, b, cols, exact, (c.loss.name, c.optim, name))
        same_final(out.summary["final"], alone.summary["final"], exact, c.loss.name)


def test_a_member_that_diverges_stops_alone_in_a_mixed_stack(cfg, data):  # noqa: F811
    cfgs = [with_overrides(cfg, o) for o in (
        {"loss.name": "nll-manual", "optim.lr": 200.0}, {"loss.name": "ce", "optim.lr": 0.2},
        {"loss.name": "mse", "optim.lr": 2.0})]
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)
    assert [o.status for o in fused] == ["diverged", "completed", "completed"]
    alone = train(cfgs[0], data=data)
    for key in ("diverged_at", "diverged_quantity", "steps"):
        assert fused[0].summary[key] == alone.summary[key]
    same_columns(rows(fused[0].run_dir / "metrics.csv"), rows(alone.run_dir / "metrics.csv"),
                 ["loss"], exact)
    ce_alone = train(cfgs[1], data=data)
    same_columns(rows(fused[1].run_dir / "metrics.csv"), rows(ce_alone.run_dir / "metrics.csv"),
                 ["loss"], exact)


def test_a_stack_too_big_for_memory_is_refused_with_its_size(cfg, data):  # noqa: F811
    huge = with_overrides(cfg, {"model.hidden": [2_000_000]})  # ~6 GB of weights per member
    with pytest.raises(CeLabError, match=r"a stack of M=4 members needs about [\d.]+ GiB") as e:
        train_paired([with_overrides(huge, {"optim.lr": lr}) for lr in (0.1, 0.2, 0.3, 0.4)],
                     data=data)
    assert "\n" not in str(e.value)


def test_a_loss_with_many_members_is_computed_stacked_and_still_equals_alone(cfg, data):  # noqa: F811
    from ce_lab.training.stack import STACKED_FROM

    base = with_overrides(cfg, {"train.epochs": 1})
    lrs = [0.03, 0.1, 0.3, 1.0, 3.0][: max(STACKED_FROM, 4)]
    cfgs = [with_overrides(base, {"loss.name": n, "optim.lr": lr})
            for n in ("mse", "bce", "ce", "hinge") for lr in lrs]
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)
    for c, out in zip(cfgs, fused):
        alone = train(c, data=data)
        for name, cols in COMPARED.items():
            same_columns(rows(out.run_dir / name), rows(alone.run_dir / name), cols, exact,
                         (c.loss.name, c.optim.lr))


def test_the_literature_losses_fused_train_bit_for_bit_as_alone(cfg, data):  # noqa: F811
    # mse-logits, mae, gce, ce-smooth, focal: STACKED_FROM members each (their stacked closed
    # forms), options differing inside the stack (two gce q, two focal gamma), beside ce and mse
    from ce_lab.training.stack import STACKED_FROM

    base = with_overrides(cfg, {"train.epochs": 1})
    lrs = [0.03, 0.1, 0.3, 1.0, 3.0][: max(STACKED_FROM, 4)]
    cfgs = [with_overrides(base, {"loss.name": n, "optim.lr": lr})
            for n in ("mse-logits", "mae", "gce", "ce-smooth", "focal") for lr in lrs]
    cfgs += [with_overrides(base, o) for o in (
        {"loss.name": "gce", "loss.q": 0.3}, {"loss.name": "focal", "loss.gamma": 0.5},
        {"loss.name": "ce-smooth", "loss.epsilon": 0.3}, {"loss.name": "ce"})]
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)
    for i, (c, out) in enumerate(zip(cfgs, fused)):
        assert out.status == "completed", (c.loss, out.message)
        if i < 5 * len(lrs) and i % len(lrs) not in (0, 3):
            continue  # two members of each stacked group, and every other member
        alone = train(c, data=data)
        for name, cols in COMPARED.items():
            same_columns(rows(out.run_dir / name), rows(alone.run_dir / name), cols, exact,
                         (c.loss, c.optim.lr))
        same_final(out.summary["final"], alone.summary["final"], exact, c.loss)


def test_the_recent_and_noise_robust_losses_fused_train_bit_for_bit_as_alone(cfg, data):  # noqa: F811
    # poly1, squentropy, sparsemax, sce, nce-rce, nce-mae, taylor-ce: STACKED_FROM members each
    # (their stacked closed forms), options differing inside the stack, beside ce; sparsemax's
    # calibration is on its own probabilities in the stack as alone
    from ce_lab.training.stack import STACKED_FROM

    base = with_overrides(cfg, {"train.epochs": 1})
    names = ("poly1", "squentropy", "sparsemax", "sce", "nce-rce", "nce-mae", "taylor-ce")
    lrs = [0.03, 0.1, 0.3, 1.0, 3.0][: max(STACKED_FROM, 4)]
    cfgs = [with_overrides(base, {"loss.name": n, "optim.lr": lr}) for n in names for lr in lrs]
    cfgs += [with_overrides(base, o) for o in (
        {"loss.name": "poly1", "loss.epsilon_poly": -0.5}, {"loss.name": "taylor-ce", "loss.t": 4},
        {"loss.name": "sce", "loss.sce_alpha": 0.01}, {"loss.name": "nce-rce", "loss.apl_beta": 10.0},
        {"loss.name": "ce"})]
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)
    for i, (c, out) in enumerate(zip(cfgs, fused)):
        assert out.status == "completed", (c.loss, out.message)
        if i < len(names) * len(lrs) and i % len(lrs) != 1:
            continue  # one member of each stacked group, and every other member
        alone = train(c, data=data)
        for name, cols in COMPARED.items():
            same_columns(rows(out.run_dir / name), rows(alone.run_dir / name), cols, exact,
                         (c.loss, c.optim.lr))
        same_final(out.summary["final"], alone.summary["final"], exact, c.loss)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_member_is_evaluated_in_a_stack_exactly_as_alone(cfg, threads):  # noqa: F811
    # Given the same weights, every number an evaluation gives (loss, accuracy, calibration, the
    # reliability table, the logits) is the lone run's, whatever the threads and the chunks: with
    # chunks of more than 32,768 numbers, one stacked call split its sums across threads in
    # another order than a lone run's call (val_brier differed in the 8th digit with 2 threads).
    import torch

    from ce_lab.training.stack import Stack

    device = torch.device(conftest.TEST_DEVICE)
    cfgs = [with_overrides(cfg, o) for o in (
        {"loss.name": "ce"}, {"loss.name": "ce", "optim.lr": 0.5}, {"loss.name": "mse"},
        {"loss.name": "focal"}, {"loss.name": "nll-manual"})]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 784, generator=gen).to(device)
    y = torch.randint(0, 10, (4000,), generator=gen).to(device)
    stack = Stack(cfgs, device, 10, 784, 10)
    with torch.no_grad():  # members apart from each other, as after training
        for p in stack.params:
            p.add_(0.2 * torch.randn(p.shape, generator=gen).to(device))
    alone = []
    for k, c in enumerate(cfgs):
        lone = Stack([c], device, 10, 784, 10)
        with torch.no_grad():
            for p, q in zip(lone.params, stack.params):
                p.copy_(q[k : k + 1])
        alone.append(lone)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for chunk in (4000, 1500):
            fused = stack.evaluate(x, y, chunk, keep_logits=True)
            for k, lone in enumerate(alone):
                ev = lone.evaluate(x, y, chunk, keep_logits=True)
                got = (fused.losses[k], fused.accs[k], fused.calibration[k], fused.reliability[k])
                want = (ev.losses[0], ev.accs[0], ev.calibration[0], ev.reliability[0])
                if conftest.TEST_DEVICE == "cpu":
                    assert got == want, (cfgs[k].loss.name, chunk)
                else:
                    assert got[1] == want[1]
                    assert math.isclose(got[0], want[0], rel_tol=1e-5, abs_tol=1e-7)
                conftest.assert_same(fused.logits[k], ev.logits[0], (cfgs[k].loss.name, chunk))
    finally:
        torch.set_num_threads(before)
