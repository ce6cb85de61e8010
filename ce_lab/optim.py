"""Optimizers and learning-rate schedules, from the config."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ce_lab.config import OptimConfig, ScheduleConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    # Every optimizer here updates each parameter element on its own, so members stacked along
    # the first dimension of a tensor are trained exactly as if they were separate models.
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return cls(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


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
