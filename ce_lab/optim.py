"""Optimizers and learning-rate schedules, from the config."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from ce_lab.config import OptimConfig, ScheduleConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    # Every optimizer here updates each parameter element on its own, so members stacked along
    # the first dimension of a tensor are trained exactly as if they were separate models.
    # foreach=True on every device: torch picks it by itself only on GPUs, but on a CPU too one
    # call over all parameters halves the cost of a step's update (the default MLP's step is
    # short enough for that to show).
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay, foreach=True)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return cls(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
               foreach=True)


def update_function(opt: torch.optim.Optimizer, cfg: OptimConfig) -> Callable[[float], None]:
    """``update(lr)``: one optimizer step at learning rate ``lr``, from the gradients in ``.grad``.

    Plain SGD (no momentum, no weight decay) is applied directly as ``p -= lr * grad``, the very
    call torch.optim.SGD(foreach=True) makes, bit for bit: on a CPU its step() wrapper (profiler hooks,
    grad-mode and compile guards, per-group bookkeeping) costs more than updating the default MLP.
    Every other optimizer goes through ``opt.step()``. Either way the lr lands in param_groups, so
    a checkpoint's optimizer state is the same.
    """
    params = [p for group in opt.param_groups for p in group["params"]]
    direct = cfg.name == "sgd" and cfg.momentum == 0 and cfg.weight_decay == 0

    def update(lr: float) -> None:
        for group in opt.param_groups:
            group["lr"] = lr
        if not direct:
            opt.step()
            return
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-lr)

    return update


def lr_at(step: int, total_steps: int, base_lr: float, cfg: ScheduleConfig) -> float:
    """The learning rate for the step that follows ``step`` completed steps.

    A pure function of the step, so a resumed run needs no scheduler state to continue exactly.
    """
    if cfg.name == "step":
        return base_lr * cfg.gamma ** (step // cfg.step_every)
    if cfg.name == "cosine":
        frac = min(step / max(total_steps, 1), 1.0)
        return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
    return base_lr
