"""M members trained as one: the stacked model, each member's loss gradient, the update, and the
per-step statistics. ``Stack.step(x, y, step, log_now)`` is the whole training step.

Members are ordered so that those with the same loss (and options) are adjacent: each loss then
sees one contiguous slice of the logits (a view), and a loss with a closed-form gradient computes
it for all its members in one call. Losses without one go through autograd, all in one call, so
whatever their pipeline does (a NaN from softmax -> log included) reaches the gradient exactly as
autograd computes it.

The step avoids host-device synchronisation: nothing is read back except on logged steps, where
one transfer brings every statistic of every member.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor

from ce_lab import calibration, metrics
from ce_lab.config import RunConfig
from ce_lab.errors import CeLabError
from ce_lab.losses import get_loss, make_loss, make_loss_grad
from ce_lab.metrics import When
from ce_lab.nn.mlp import StackedMLP, build_model, layer_sizes, param_names, parameter_count
from ce_lab.optim import StackedOptimizer
from ce_lab.step_stats import logit_grad_norm

STACKED_FROM = 4  # members of one loss from which its stacked closed form is the cheaper call
WATCH_LOGITS = metrics.logged_metric("logit_grad_norm").name  # d loss / d logits, as logged
GRAD_NORM = metrics.logged_metric("grad_norm/{param}").prefix  # "grad_norm/": squared in the watch


@dataclass(frozen=True)
class LossGroup:
    """Members ``start:stop`` of the stack, which share a loss and its options."""

    start: int
    stop: int
    name: str
    fn: object  # (logits (K, B, C), targets) -> (K,) losses
    grad: object | None  # closed form (logits, targets) -> (loss, d loss / d logits), or None
    probabilities: object | None  # logits -> its calibration's probabilities; None: softmax


def loss_group_key(cfg: RunConfig) -> str:
    return json.dumps(cfg.loss.model_dump(mode="json"), sort_keys=True)


def _loss_groups(cfgs: Sequence[RunConfig]) -> list[LossGroup]:
    groups: list[LossGroup] = []
    start = 0
    for i in range(1, len(cfgs) + 1):
        if i == len(cfgs) or loss_group_key(cfgs[i]) != loss_group_key(cfgs[start]):
            c = cfgs[start].loss
            groups.append(LossGroup(start, i, c.name, make_loss(c), make_loss_grad(c),
                                    get_loss(c.name).probabilities))
            start = i
    return groups


@dataclass
class StepView:
    """What a logged step's statistics are computed from (``ce_lab.metrics``' compute functions)."""

    logits: Tensor  # (M, B, C)
    targets: Tensor  # (B,)
    losses: Tensor  # (M,)
    grad_logits: Tensor  # (M, B, C): d loss / d logits
    sq_norms: list[Tensor]  # squared gradient norm per parameter tensor, 0-d (M = 1) or (M,)
    members: int
    logit_grad_norm: Tensor  # (M,): computed every step for the divergence watch, reused here
    weights_before: list[Tensor] = field(default_factory=list)
    weights_after: list[Tensor] = field(default_factory=list)

    @cached_property
    def grad_norms(self) -> list[Tensor]:
        return [s.sqrt().reshape(self.members) for s in self.sq_norms]

    @cached_property
    def sigmoid(self) -> Tensor:
        """sigmoid of the logits (M, B, C), for the saturation metrics."""
        return torch.sigmoid(self.logits)

    @cached_property
    def one_hot(self) -> Tensor:
        """(1, B, C) bool: True at each example's target class."""
        return torch.nn.functional.one_hot(self.targets, self.logits.shape[-1]).bool().unsqueeze(0)


@dataclass
class Evaluation:
    """One evaluation of every member: lists indexed by member."""

    losses: list[float]
    accs: list[float]
    calibration: list[dict[str, float]]  # {ece, nll, brier} (ce_lab.calibration)
    reliability: list[calibration.Reliability]
    logits: Tensor | None = None  # (M, N, C) on the CPU, when kept


# --- memory ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryEstimate:
    members: int
    per_member: int  # bytes
    shared: int  # bytes the stack needs whatever M is (beyond the data set, already loaded)
    largest: str = "model.hidden"  # the key whose bytes dominate: what to make smaller

    @property
    def total(self) -> int:
        return self.shared + self.members * self.per_member


def estimate_memory(cfg: RunConfig, members: int, n_inputs: int, n_classes: int,
                    n_train: int | None = None, n_eval: int | None = None) -> MemoryEstimate:
    """What a stack of ``members`` allocates, in bytes (float32).

    Per member: weights, gradients, the optimizer's state (sgd momentum one copy, adam two), the
    update's temporaries (one copy for sgd with momentum or decay, three for adam), the copy of the
    weights kept on logged steps for the update ratio; activations of a training batch (forward
    outputs and their gradients) and of an evaluation chunk. Shared: the data batch. A batch
    holds at most ``n_train`` examples and a chunk ``n_eval`` (the largest split evaluated), when
    they are known: a batch size beyond the data set trains on the whole set.
    """
    sizes = layer_sizes(cfg.model.hidden, n_inputs, n_classes)
    params = parameter_count(sizes)
    o = cfg.optim
    state = 2 if o.name in ("adam", "adamw") else 1 if o.momentum else 0
    temporaries = 3 if o.name in ("adam", "adamw") else 1 if (o.momentum or o.weight_decay) else 0
    copies = 2 + state + temporaries + (1 if cfg.log.grad_stats else 0)
    units = sum(sizes[1:])
    batch = cfg.train.batch_size if n_train is None else min(cfg.train.batch_size, n_train)
    chunk = cfg.train.eval_batch_size if n_eval is None else min(cfg.train.eval_batch_size,
                                                                  max(n_eval, 1))
    by_key = {"model.hidden": members * copies * params,
              "train.batch_size": members * 3 * batch * units + batch * n_inputs,
              "train.eval_batch_size": members * chunk * units + chunk * n_inputs}
    activations = 3 * batch * units + chunk * units
    shared = chunk * n_inputs + batch * n_inputs
    return MemoryEstimate(members, 4 * (copies * params + activations), 4 * shared,
                          max(by_key, key=by_key.__getitem__))


def available_memory(device: torch.device) -> int | None:
    """Bytes the device can still give, where that is known."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        mps = getattr(torch, "mps", None)
        if mps is not None and hasattr(mps, "recommended_max_memory"):
            return int(mps.recommended_max_memory() - mps.current_allocated_memory())
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_memory(est: MemoryEstimate, device: torch.device) -> None:
    free = available_memory(device)
    if free is None or est.total <= free:
        return
    # Name the key whose bytes dominate: a huge train.batch_size is not the model's fault.
    model = est.largest == "model.hidden"
    if est.members == 1:
        raise CeLabError(f"this model needs about {_gib(est.total)} to train but {device} has "
                         f"{_gib(free)} free; use a smaller "
                         f"{'model (model.hidden)' if model else est.largest}")
    raise CeLabError(
        f"a stack of M={est.members} members needs about {_gib(est.total)} "
        f"({_gib(est.per_member)} per member) but {device} has {_gib(free)} free; "
        f"use fewer members per stack (--max-members) or a smaller "
        f"{'model' if model else est.largest}")


# --- the stack ---------------------------------------------------------------------------------

class Stack:
    def __init__(self, cfgs: Sequence[RunConfig], device: torch.device, total_steps: int,
                 n_inputs: int, n_classes: int, n_train: int | None = None,
                 n_eval: int | None = None):
        self.cfgs = list(cfgs)
        self.M = len(self.cfgs)
        cfg = self.cfgs[0]
        m = cfg.model
        est = estimate_memory(cfg, self.M, n_inputs, n_classes, n_train, n_eval)
        check_memory(est, device)
        try:
            self.model: StackedMLP = build_model(self.M, m.hidden, m.activation, m.init, cfg.seed,
                                                 device, n_inputs, n_classes, m.init_gain,
                                                 m.output_gain)
            self.model.forward(torch.zeros(1, n_inputs, device=device))  # allocates the buffers
            self.model.zero_grad(set_to_none=False)
        except (RuntimeError, MemoryError) as e:  # the allocator's own refusal
            if "memory" not in str(e).lower() and not isinstance(e, MemoryError):
                raise
            raise CeLabError(f"cannot allocate a stack of M={self.M} members (about "
                             f"{_gib(est.total)}): {' '.join(str(e).split())[:160]}") from None
        self.params = list(self.model.parameters())
        self.param_names = param_names(self.model)
        # Backward runs from the output layer down (weight, then bias): the order in which a
        # non-finite value spreads, so the first quantity found is where it was born.
        layers = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in self.param_names))
        self.watch_order = [i for layer in reversed(layers)
                            for i, n in enumerate(self.param_names) if n.startswith(layer + ".")]
        self.watch_names = [WATCH_LOGITS] + [f"{GRAD_NORM}{self.param_names[i]}"
                                             for i in self.watch_order]
        self.optimizer = StackedOptimizer(self.params, [c.optim for c in self.cfgs],
                                          [c.schedule for c in self.cfgs], total_steps)
        self.groups = _loss_groups(self.cfgs)
        self.squashes = [get_loss(c.loss.name).squashes_sigmoid for c in self.cfgs]
        self.grad_stats = cfg.log.grad_stats
        self._stopped: Tensor | None = None  # (M, 1, 1) bool, once a member has stopped
        self._solo: StackedMLP | None = None  # one member's copy, for evaluation (M > 1)
        # What a logged step computes, before and after the update: every registered metric a
        # member of this stack writes.
        logged = [m for m in metrics.LOGGED_METRICS if m.compute is not None and When.LOG in m.when
                  and m.exists(self.grad_stats, any(self.squashes))]
        self._logged = ([m for m in logged if not m.after_update],
                        [m for m in logged if m.after_update])

    # --- members that stop -------------------------------------------------------------------

    def stop_members(self, stopped: Sequence[bool]) -> None:
        """From now on these members get a zero gradient (their results are final)."""
        if any(stopped):
            mask = torch.tensor(list(stopped), device=self.params[0].device)
            self._stopped = mask.view(-1, 1, 1)

    # --- one step ----------------------------------------------------------------------------

    def loss_gradients(self, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Every member's loss (M,) and d loss / d logits (M, B, C).

        A loss with a closed form computes it for its whole slice of the stack in one call (slice
        k is bit for bit the 2-D call on member k: ``ce_lab.losses``); below ``STACKED_FROM``
        members a 2-D call per member costs less than the stacked one. Losses without a closed
        form go through autograd, all members in one ``autograd.grad`` call.
        """
        losses: list[Tensor] = []
        grads: list[Tensor | None] = []
        by_autograd: list[tuple[int, Tensor, Tensor]] = []
        for g in self.groups:
            z = logits[g.start : g.stop]
            if g.grad is not None and g.stop - g.start >= STACKED_FROM:
                loss, grad = g.grad(z, y)
                losses.append(loss)
                grads.append(grad)
                continue
            for zk in z.unbind(0):
                if g.grad is not None:
                    loss, grad = g.grad(zk, y)
                    losses.append(loss.unsqueeze(0))
                    grads.append(grad.unsqueeze(0))
                    continue
                zk = zk.detach().requires_grad_()
                with torch.enable_grad():
                    loss = g.fn(zk, y)
                by_autograd.append((len(losses), zk, loss))
                losses.append(loss)
                grads.append(None)
        if by_autograd:
            _, leaves, outputs = zip(*by_autograd)
            for (i, _, loss), grad in zip(by_autograd, torch.autograd.grad(outputs, leaves)):
                losses[i], grads[i] = loss.detach().unsqueeze(0), grad.unsqueeze(0)
        if len(losses) == 1:  # one member, or one stacked group: no copy
            loss_t, grad_t = losses[0], grads[0]
        else:
            loss_t, grad_t = torch.cat(losses), torch.cat(grads)
        if self._stopped is not None:
            grad_t = torch.where(self._stopped, 0.0, grad_t)
        return loss_t, grad_t

    def step(self, x: Tensor, y: Tensor, step: int, log_now: bool
             ) -> tuple[Tensor, list[Tensor], dict[str, Tensor] | None]:
        """One forward/backward/update of every member at the step after ``step`` completed ones.

        Returns each member's loss (M,); what the divergence watch records after the loss, in
        the order the step computes it (``watch_names``): ``logit_grad_norm``, then the squared
        gradient norm of each parameter tensor from the output layer down; and on a logged step
        the statistics by column name, each (M,), computed as the metric registry
        (``ce_lab.metrics``) defines them.
        """
        logits = self.model.forward(x, keep=True)
        losses, grad_logits = self.loss_gradients(logits, y)
        self.model.backward(grad_logits)
        sq_norms = self.model.squared_grad_norms()
        logit_norm = logit_grad_norm(grad_logits)
        watched = [logit_norm.reshape(()) if self.M == 1 else logit_norm,
                   *(sq_norms[i] for i in self.watch_order)]
        if not log_now:
            self.optimizer.step(step)
            return losses, watched, None
        view = StepView(logits, y, losses, grad_logits, sq_norms, self.M, logit_norm)
        before, after = self._logged
        if after:  # the weights before the update, for the metrics that compare them
            view.weights_before = [p.detach().clone() for p in self.params]
        stats = self._compute(before, view)
        self.optimizer.step(step)
        view.weights_after = [p.detach() for p in self.params]
        stats.update(self._compute(after, view))
        return losses, watched, stats

    def _compute(self, metrics, view: StepView) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for m in metrics:
            value = m.compute(view)
            if m.per_param:
                out.update(zip(m.columns(self.param_names), value))
            else:
                out[m.name] = value
        return out

    # --- evaluation --------------------------------------------------------------------------

    def _member_model(self, k: int) -> StackedMLP:
        """Member ``k`` as a model of one member: a lone run's own model; in a stack, a one-member
        model (built once) holding a copy of member k's weights, in a lone run's layout."""
        if self.M == 1:
            return self.model
        if self._solo is None:
            self._solo = StackedMLP(1, self.model.sizes, self.model.activation.name).to(
                self.params[0].device)
        for solo, layer in zip(self._solo.layers(), self.model.layers()):
            solo.weight.copy_(layer.weight[k : k + 1])
            solo.bias.copy_(layer.bias[k : k + 1])
        return self._solo

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor, chunk: int, keep_logits: bool = False) -> Evaluation:
        """Mean loss, accuracy and calibration of every member over (x, y), in chunks; with
        ``keep_logits``, the logits too.

        Member by member, each through the very calls, shapes and layouts of a lone run's
        evaluation (``_member_model``), so a fused member's numbers are its lone run's by
        construction on any CPU and any number of threads. One call for the whole stack would
        not be: a BLAS may pick another kernel, blocking or thread split for a wider product or a
        batch of M products than for one (oneMKL runs a batched GEMM for M > 1, a plain one for
        M = 1), torch splits a long sum across threads at other points, and on an Intel Xeon
        (AVX-512) that moved ``val_loss`` in the 7th digit. Training keeps its stacked products,
        bit for bit a lone run's only where the kernels allow (docs/fusion.md).
        An evaluation is not per step: the loop over members costs little.
        """
        groups = [g for g in self.groups for _ in range(g.start, g.stop)]  # each member's
        losses, correct, sums, kept = [], [], [], []
        for k in range(self.M):
            model = self._member_model(k)
            loss_k, correct_k, sums_k, kept_k = [], [], [], []
            for i in range(0, x.shape[0], chunk):
                xb, yb = x[i : i + chunk], y[i : i + chunk]
                logits = model(xb)  # (1, B, C)
                loss_k.append(groups[k].fn(logits, yb))
                correct_k.append((logits.argmax(-1) == yb).sum(-1))
                sums_k.append(calibration.chunk_sums(logits, yb, groups[k].probabilities))
                if keep_logits:
                    kept_k.append(logits)
            losses.append(torch.stack(loss_k))
            correct.append(torch.stack(correct_k))
            sums.append(torch.stack(sums_k))
            if keep_logits:
                kept.append(torch.cat(kept_k, 1))
        # One transfer of each per evaluation (a sync point); sums in float64 on the CPU, which MPS
        # lacks. Each member's (chunks, 1) values are then reduced as a lone run reduces its own.
        losses_cpu = torch.stack(losses).cpu().double()  # (M, chunks, 1)
        correct_cpu = torch.stack(correct).cpu().double()
        sums_cpu = torch.stack(sums).cpu().double()  # (M, chunks, 1, SUMS)
        n = x.shape[0]
        w = torch.tensor([min(chunk, n - i) for i in range(0, n, chunk)],
                         dtype=torch.float64).unsqueeze(1)
        ev = Evaluation([], [], [], [], torch.cat(kept).cpu() if keep_logits else None)
        for k in range(self.M):
            ev.losses += ((losses_cpu[k] * w).sum(0) / n).tolist()
            ev.accs += (correct_cpu[k].sum(0) / n).tolist()
            values, tables = calibration.finish(sums_cpu[k].sum(0), n)
            ev.calibration += values
            ev.reliability += tables
        return ev
