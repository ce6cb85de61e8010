"""Stacks of logits (K, B, C) computed slice by slice bit for bit as the 2-D calls on them.

The losses (``ce_lab.losses``) take stacks so that one call serves the K members of a stack that
share a loss; slice k must be exactly what the 2-D call on ``logits[k]`` gives (on a CPU), or a
fused member would not train as it does alone. Two things would break that, and the helpers here
avoid both:
- reductions: F.nll_loss sums a batch in its own cascade: a stack calls it per slice, or for
  many slices replays its order (``nll_mean``); every other sum runs over one slice's own dims.
- vector tails: TensorIterator fuses adjacent slices into one loop, which moves the boundary
  between its vectorised body and its scalar tail, and sigmoid's vector and scalar code differ in
  the last bit. ``apart`` lays the slices out with a gap, so each slice is one inner loop exactly
  as in a 2-D call; stacks above ``GRAIN`` elements go in chunks, so that no elementwise op
  splits them across threads at other points than a 2-D call would. (On a GPU the same calls
  work; bit identity is only promised, and tested, on a CPU.)
torch is imported inside the functions, as in the rest of ``ce_lab.losses``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

    from ce_lab.config import LossConfig


GRAIN = 32_768  # at::internal::GRAIN_SIZE: larger elementwise ops are split across threads


def apart(z: Tensor) -> Tensor:
    """A copy of the stack ``z`` (K, B, C) with a one-element gap after every slice.

    Without the gap TensorIterator fuses the K slices into one loop of K*B*C elements, whose
    vector/scalar-tail boundary falls elsewhere in a slice than in a 2-D call's loop of B*C; with
    it, every slice is one inner loop of B*C, as in the 2-D call. Results of ops on it are
    allocated dense, which is fine for exact arithmetic (+, -, *, /) but not for sigmoid or exp:
    those take ``apart`` tensors, or write into ``apart_like`` buffers.
    """
    return apart_like(z).copy_(z)


def apart_like(z: Tensor) -> Tensor | None:
    """An empty buffer laid out as ``apart`` (None for a 2-D ``z``: ``out=None`` allocates)."""
    if z.dim() == 2:
        return None
    k, b, c = z.shape
    return z.new_empty(k, b * c + 1)[:, : b * c].view(k, b, c)


def stacked(core: Callable[..., tuple[Tensor, ...]]) -> Callable[..., Any]:
    """Lifts ``core`` to logits of shape (..., B, C). ``core(z, targets, cfg)`` returns a tuple of
    per-slice results and takes either a 2-D ``z`` (B, C), the plain call, or a stack (K >= 2,
    B, C) laid out by ``apart``; stacks go in chunks below ``GRAIN`` elements (one thread's
    share), and a chunk of one slice is a 2-D call."""

    @wraps(core)
    def stacked(logits: Tensor, targets: Tensor, cfg: LossConfig):
        import torch

        if logits.dim() == 2:
            outs = core(logits, targets, cfg)
        else:
            b, c = logits.shape[-2:]
            z = logits if logits.dim() == 3 else logits.reshape(-1, b, c)
            k = z.shape[0]
            # Chunks keep a CPU's thread split as a 2-D call's; elsewhere they would only add
            # launches (K / 51 of each kernel for batches of 64 x 10), so a stack is one chunk.
            if k * b * c < GRAIN or not z.is_cpu:
                outs = tuple(o.contiguous() for o in stacked_chunk(core, z, targets, cfg))
            else:
                per = max(1, (GRAIN - 1) // (b * c))
                parts = [stacked_chunk(core, z[i:i + per], targets, cfg) for i in range(0, k, per)]
                outs = tuple(torch.cat(p) for p in zip(*parts))
            if logits.dim() > 3:
                outs = tuple(o.reshape(logits.shape[:-2] + o.shape[1:]) for o in outs)
        return outs[0] if len(outs) == 1 else outs

    return stacked


def stacked_chunk(core, chunk: Tensor, targets: Tensor, cfg: LossConfig) -> tuple[Tensor, ...]:
    if chunk.shape[0] == 1:  # one slice: the 2-D call itself
        return tuple(o.unsqueeze(0) for o in core(chunk[0], targets, cfg))
    return core(apart(chunk), targets, cfg)


def target_index(z: Tensor, targets: Tensor) -> Tensor:
    """The targets as a gather/scatter index of z's shape with a last dim of 1."""
    index = targets.unsqueeze(-1)
    return index if z.dim() == 2 else index.expand(*z.shape[:-1], 1)


def one_hot(logits: Tensor, targets: Tensor) -> Tensor:
    # Not F.one_hot, which on a CPU checks the targets' range with two reductions read back to
    # Python: in the training loop that made it four times slower than this scatter.
    return logits.new_zeros(logits.shape).scatter_(-1, target_index(logits, targets), 1.0)


def slice_numel(z: Tensor) -> int:
    return z.shape[-2] * z.shape[-1]


def slice_sum(x: Tensor) -> Tensor:
    """The sum over each slice's (B, C): one reduction of B*C contiguous values per slice."""
    return x.sum() if x.dim() == 2 else x.sum((-2, -1))


def sequential_sum(x: Tensor) -> Tensor:
    """Sum over the last dim left to right from 0, as a C loop would (no vector lanes)."""
    acc = x.new_zeros(x.shape[:-1])
    for col in x.unbind(-1):
        acc = acc.add_(col)
    return acc


NLL_PER_SLICE = 32  # up to this many slices, K calls of F.nll_loss beat replaying its order


def nll_mean(log_p: Tensor, targets: Tensor) -> Tensor:
    """F.nll_loss(log_p[k], targets) (mean) for every k of log_p (K, B, C), bit for bit."""
    import torch
    import torch.nn.functional as F

    if log_p.dim() == 2:
        return F.nll_loss(log_p, targets)
    if not log_p.is_cpu:  # bit identity is a CPU promise: one gather and one mean for the stack
        return log_p.gather(-1, target_index(log_p, targets)).squeeze(-1).mean(-1).neg()
    if log_p.shape[0] <= NLL_PER_SLICE:  # each a few microseconds; the replay costs ~40 ops
        return torch.stack([F.nll_loss(one, targets) for one in log_p.unbind(0)])
    return nll_mean_replayed(log_p, targets)


def nll_mean_replayed(log_p: Tensor, targets: Tensor) -> Tensor:
    """``nll_mean`` in one pass over all K slices, replaying F.nll_loss's summation order.

    ATen's CPU kernel sums the batch in a cascade of 8 partial sums over blocks of 16: element 0
    lands alone in the top partial, elements 1..16 form the first block of the bottom one, every
    16 blocks move up a level, and the partials are added bottom up at the end
    (tests/test_losses.py checks this against F.nll_loss).
    """
    k, b = log_p.shape[:2]
    neg = log_p.gather(-1, target_index(log_p, targets)).squeeze(-1).neg()  # (K, B): p -= data
    items, partials = neg[:, 1:], []
    while items.shape[-1] > 16:
        n = items.shape[-1]
        full, blocks = n // 16, -(-n // 16)
        # Every block of 16 in one pass; the open last block padded with +0, which changes no
        # sum that starts from +0 (not even a zero's sign)
        padded = items.new_zeros(k, blocks * 16)
        padded[:, :n] = items
        sums = sequential_sum(padded.view(k, blocks, 16))
        if full < blocks:
            partials.append(sums[:, full])  # this level's open block
        items = sums[:, :full]  # the full blocks move up a level
    if items.shape[-1]:
        partials.append(sequential_sum(items))
    total = neg.new_zeros(k)
    for partial_sum in partials:
        total = total.add_(partial_sum)
    return total.add_(neg[:, 0]).div_(b)


