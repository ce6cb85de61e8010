"""The training step never waits for the GPU: with ``torch.cuda.set_sync_debug_mode("error")``
every call that synchronises the host with the device (``.item()``, ``bool(tensor)``, a blocking
copy either way, ``nonzero``, ...) raises, so a step that synchronises fails here. Needs CUDA;
skipped elsewhere (benchmarks/gpu_check.sh runs it on a GPU).

What is checked is the step as the loop runs it between two read-backs: the batch indexed on the
device, ``Stack.step`` (forward, each loss's gradient, backward, gradient norms, the update, and
on a logged step the statistics, which the loop then fetches in one transfer) and the divergence
watch's record. Read-backs (logged, evaluated and checkpointed steps) synchronise by design.
"""

from __future__ import annotations

import pytest
import torch

from ce_lab import optim
from ce_lab.config import RunConfig, with_overrides
from ce_lab.training.divergence import DivergenceWatch
from ce_lab.training.stack import Stack

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA (torch.cuda.set_sync_debug_mode)")

LOSSES = ("ce", "mse", "hinge", "nll-manual")


def members(optimizer: dict) -> list[RunConfig]:
    """The four default losses (three closed forms, one through autograd) and a group of 36 ce
    members (the stacked closed form over more than 32 slices)."""
    base = with_overrides(RunConfig(), {"device": "cuda", **optimizer})
    cfgs = [with_overrides(base, {"loss.name": n}) for n in LOSSES]
    lr = base.optim.lr
    return cfgs + [with_overrides(base, {"optim.lr": lr * 1.02 ** i}) for i in range(36)]


@pytest.mark.parametrize("optimizer", [
    {"optim.momentum": 0.9, "optim.weight_decay": 1e-4, "schedule.name": "cosine"},
    {"optim.name": "adam", "optim.lr": 1e-3},
], ids=["sgd-momentum-cosine", "adam"])
def test_a_training_step_does_not_synchronise(optimizer, monkeypatch):
    monkeypatch.setattr(optim, "CHUNK", 4)  # the step-dependent values are refilled within the test
    device = torch.device("cuda")
    cfgs = members(optimizer)
    stack = Stack(cfgs, device, total_steps=100, n_inputs=784, n_classes=10)
    watch = DivergenceWatch(stack.M, ["loss", *stack.watch_names], 10, device)
    gen = torch.Generator().manual_seed(0)
    data_x = torch.rand(512, 784, generator=gen).to(device)
    data_y = torch.randint(0, 10, (512,), generator=gen).to(device)
    order = torch.randperm(512, generator=gen).to(device)  # once per epoch in the loop
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():  # as the loop runs
            for step in range(12):
                idx = order[(step % 8) * 64 : (step % 8 + 1) * 64]
                losses, sq_norms, stats = stack.step(data_x.index_select(0, idx),
                                                     data_y.index_select(0, idx), step, step % 5 == 4)
                watch.record(step + 1, losses, sq_norms)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats is None and bool(torch.isfinite(losses).all())
    assert watch.read(12) == [None] * stack.M  # nothing diverged: the steps really trained
