"""Element-wise optimizers whose hyperparameters are per member, and the learning-rate schedules.

Members stacked along the first dimension of every parameter may each have their own learning
rate, momentum, Nesterov flag, weight decay, betas and schedule: every hyperparameter is an (M,)
tensor, viewed as (M, 1, ...) against each parameter, inside the same element-wise update. Each
member's arithmetic is the one torch.optim's foreach implementation does for a lone model with
those settings, kernel for kernel (add with alpha and addcmul round alike: both fuse the multiply
into the add), so a member's update is bit for bit the one it would get alone, and a lone run
(M = 1) updates as with torch.optim; tests/test_optim.py checks both.

Values that change with the step (the schedule's lr, Adam's bias corrections, AdamW's decay
factor) are computed on the host in float64, as torch.optim computes them, for ``CHUNK`` steps at
a time, and copied to the device once per chunk, on CUDA asynchronously (from pinned memory): the
step itself neither reads anything back nor waits for a copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ce_lab.config import OptimConfig, ScheduleConfig

CHUNK = 256  # steps of step-dependent hyperparameters copied to the device at once
EPS = 1e-8  # Adam's epsilon, torch's default


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


class StackedOptimizer:
    """sgd (momentum, Nesterov, weight decay), adam or adamw over stacked parameters.

    ``optims`` and ``schedules`` hold one config per member; the optimizer name is shared (a stack
    runs one update rule). ``step(step_index)`` applies the update of the step that follows
    ``step_index`` completed steps, from the gradients in each parameter's ``.grad``.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], optims: Sequence[OptimConfig],
                 schedules: Sequence[ScheduleConfig], total_steps: int):
        names = {o.name for o in optims}
        if len(names) != 1:
            raise ValueError(f"one stack runs one optimizer, got {sorted(names)}")
        self.name = names.pop()
        self.params = list(params)
        self.optims, self.schedules = list(optims), list(schedules)
        self.total_steps = total_steps
        self.members = len(optims)
        device = self.params[0].device
        self.device = device

        def member_views(values: Sequence[float]) -> list[Tensor]:
            return self._per_param(torch.tensor(list(values), dtype=self.params[0].dtype,
                                                device=device))

        self.momentum = [o.momentum for o in optims]
        self.weight_decay = [o.weight_decay for o in optims]
        self.uses_momentum = self.name == "sgd" and any(m != 0 for m in self.momentum)
        self.uses_decay = any(w != 0 for w in self.weight_decay)
        nesterov = [o.nesterov for o in optims]
        self.nesterov = "all" if all(nesterov) else "some" if any(nesterov) else "none"
        self._decay_v = member_views(self.weight_decay)
        if self.name == "sgd":
            self._momentum_v = member_views(self.momentum)
            if self.nesterov == "some":
                self._nesterov_mask = self._per_param(torch.tensor(nesterov, device=device))
        else:
            self._beta2_v = member_views([o.beta2 for o in optims])
            self._one_minus_beta1_v = member_views([1 - o.beta1 for o in optims])
            self._one_minus_beta2_v = member_views([1 - o.beta2 for o in optims])
        self.state: dict[str, list[Tensor]] = {}
        if self.uses_momentum:
            self.state["momentum_buffer"] = [torch.zeros_like(p) for p in self.params]
        if self.name in ("adam", "adamw"):
            self.state["exp_avg"] = [torch.zeros_like(p) for p in self.params]
            self.state["exp_avg_sq"] = [torch.zeros_like(p) for p in self.params]
        self.steps_taken = 0  # the optimizer's step count (Adam's bias correction uses it)
        self._chunk_start = -1
        self._chunk: dict[str, Tensor] = {}

    # --- step-dependent hyperparameters --------------------------------------------------------

    def lrs(self, step: int) -> list[float]:
        """Every member's learning rate for the step after ``step`` completed steps."""
        return [lr_at(step, self.total_steps, o.lr, s) for o, s in zip(self.optims, self.schedules)]

    def _step_values(self, step: int, taken: int) -> dict[str, list[float]]:
        """The scalars torch.optim would compute in Python for this step, per member."""
        lrs = self.lrs(step)
        if self.name == "sgd":
            return {"neg_lr": [-lr for lr in lrs]}
        t = taken + 1
        out = {
            "neg_step_size": [(lr / (1 - o.beta1 ** t)) * -1 for lr, o in zip(lrs, self.optims)],
            "bc2_sqrt": [(1 - o.beta2 ** t) ** 0.5 for o in self.optims],
        }
        if self.name == "adamw":
            out["decay"] = [1 - lr * o.weight_decay for lr, o in zip(lrs, self.optims)]
        return out

    def _values_for(self, step: int) -> dict[str, Tensor]:
        """This step's row of the device-side table, refilled every CHUNK steps (no sync)."""
        if not (0 <= step - self._chunk_start < CHUNK) or self._chunk_start < 0:
            rows = [self._step_values(s, self.steps_taken + (s - step))
                    for s in range(step, step + CHUNK)]
            self._chunk = {k: self._to_device(torch.tensor([r[k] for r in rows],
                                                           dtype=self.params[0].dtype))
                           for k in rows[0]}
            self._chunk_start = step
        i = step - self._chunk_start
        return {k: v[i] for k, v in self._chunk.items()}

    def _to_device(self, table: Tensor) -> Tensor:
        """The host table on the device without a sync: on CUDA a plain copy from pageable memory
        waits for the copy (cudaMemcpy + stream sync), one from pinned memory does not (the
        caching host allocator keeps the pinned block until the copy is done)."""
        if self.device.type == "cuda":
            return table.pin_memory().to(self.device, non_blocking=True)
        return table.to(self.device)

    def _per_param(self, row: Tensor) -> list[Tensor]:
        """An (M,) row viewed as (M, 1, ...) against each parameter."""
        return [row.view(-1, *[1] * (p.dim() - 1)) for p in self.params]

    # --- the update ----------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, step: int) -> None:
        values = self._values_for(step)
        params = self.params
        grads = [p.grad for p in params]
        if self.name == "sgd":
            self._sgd(params, grads, self._per_param(values["neg_lr"]))
        else:
            self._adam(params, grads, values)
        self.steps_taken += 1

    def _sgd(self, params: list[Tensor], grads: list[Tensor], neg_lr: list[Tensor]) -> None:
        if self.uses_decay:  # g + wd * p (a member with wd 0 adds an exact zero)
            grads = [torch.addcmul(g, p, wd) for g, p, wd in zip(grads, params, self._decay_v)]
        if self.uses_momentum:  # buf = momentum * buf + g; with momentum 0, exactly g
            bufs = self.state["momentum_buffer"]
            torch._foreach_mul_(bufs, self._momentum_v)
            torch._foreach_add_(bufs, grads)
            if self.nesterov == "none":
                grads = bufs
            else:
                ahead = [torch.addcmul(g, b, mom) for g, b, mom in zip(grads, bufs, self._momentum_v)]
                grads = ahead if self.nesterov == "all" else [
                    torch.where(mask, a, b) for mask, a, b in zip(self._nesterov_mask, ahead, bufs)]
        torch._foreach_addcmul_(params, grads, neg_lr)  # p - lr * d, rounded as add(alpha=-lr)

    def _adam(self, params: list[Tensor], grads: list[Tensor], values: dict[str, Tensor]) -> None:
        if self.name == "adamw":
            if self.uses_decay:
                torch._foreach_mul_(params, self._per_param(values["decay"]))
        elif self.uses_decay:
            grads = [torch.addcmul(g, p, wd) for g, p, wd in zip(grads, params, self._decay_v)]
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        for m, g, w in zip(exp_avg, grads, self._one_minus_beta1_v):
            m.lerp_(g, w)
        torch._foreach_mul_(exp_avg_sq, self._beta2_v)
        scaled = torch._foreach_mul(grads, self._one_minus_beta2_v)
        torch._foreach_addcmul_(exp_avg_sq, scaled, grads)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, self._per_param(values["bc2_sqrt"]))
        torch._foreach_add_(denom, EPS)
        numer = torch._foreach_mul(exp_avg, self._per_param(values["neg_step_size"]))
        torch._foreach_addcdiv_(params, numer, denom)

    # --- checkpoints: torch.optim's state_dict layout, one member at a time ----------------------

    def member_state_dict(self, m: int) -> dict[str, Any]:
        """Member ``m``'s state as torch.optim would save it for a lone model (leading dim 1)."""
        o = self.optims[m]
        state: dict[int, dict[str, Tensor]] = {}
        for i in range(len(self.params)):
            entry: dict[str, Tensor] = {}
            if self.uses_momentum and o.momentum != 0:
                entry["momentum_buffer"] = self.state["momentum_buffer"][i][m : m + 1].cpu().clone()
            if self.name in ("adam", "adamw") and self.steps_taken:
                entry["step"] = torch.tensor(float(self.steps_taken))
                entry["exp_avg"] = self.state["exp_avg"][i][m : m + 1].cpu().clone()
                entry["exp_avg_sq"] = self.state["exp_avg_sq"][i][m : m + 1].cpu().clone()
            if entry:
                state[i] = entry
        group: dict[str, Any] = {"lr": self.lrs(max(self.steps_taken - 1, 0))[m],
                                 "weight_decay": o.weight_decay, "params": list(range(len(self.params)))}
        if self.name == "sgd":
            group.update(momentum=o.momentum, nesterov=o.nesterov, dampening=0)
        else:
            group.update(betas=(o.beta1, o.beta2), eps=EPS)
        return {"state": state, "param_groups": [group]}

    def load_member_state_dict(self, m: int, saved: dict[str, Any]) -> None:
        """Restore member ``m`` from ``member_state_dict``'s layout (or torch.optim's, as older
        checkpoints hold it)."""
        state = saved.get("state") or {}
        steps = set()
        for key, entry in state.items():
            i = int(key)
            for name, value in entry.items():
                if name == "step":
                    steps.add(int(float(value)))
                elif name in self.state and value is not None:
                    self.state[name][i][m : m + 1].copy_(value.reshape(self.state[name][i][m : m + 1].shape))
                elif value is not None:
                    raise ValueError(f"optimizer state {name!r} does not belong to {self.name}")
        if len(steps) > 1:
            raise ValueError(f"inconsistent optimizer step counts {sorted(steps)}")
        if steps:
            self.steps_taken = steps.pop()
        self._chunk_start = -1
