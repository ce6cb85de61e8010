"""How a logged step computes its statistics, from a ``StepView`` ``s`` of M members
(``ce_lab.training.stack``): the ``compute`` functions of the metric registry's logged metrics
(``ce_lab.metrics``). Torch is imported by the training side, which alone calls these, so the
registry (and the run-folder and comparison code that import it) stays torch-free.
"""

from __future__ import annotations


def accuracy(s):
    return (s.logits.argmax(-1) == s.targets).float().mean(-1)


def grad_total(s):
    import torch

    return torch.stack(s.grad_norms, 1).norm(dim=1)


def logit_grad_norm(grad_logits):
    """(M,) mean over the batch of each example's ||d loss_i / d z_i|| from d loss / d logits
    (M, B, C): the gradient of each example's own loss (the batch mean divides it by B)."""
    return (grad_logits * grad_logits.shape[-2]).norm(dim=-1).mean(-1)


def member_norm(x):
    """(M,) each member's L2 norm of ``x`` (M, ...), row by row: torch reduces each row within one
    thread, where one reduction over a whole member splits it across threads, so its last bits
    would move with the thread count (which follows the load: ce_lab.threads). Each step reduces
    the dimension that lies contiguous in memory (fast, and the same rows in a stack as alone),
    and the partial norms are made contiguous rows of their own before the next."""
    import torch

    while x.dim() > 2:
        inner = min(range(1, x.dim()), key=x.stride)
        x = torch.linalg.vector_norm(x, dim=inner).contiguous()
    return torch.linalg.vector_norm(x, dim=-1)


def update_ratio(s):
    return [member_norm(after - before) / member_norm(before)
            for before, after in zip(s.weights_before, s.weights_after)]


SATURATED_LOW, SATURATED_HIGH = 0.01, 0.99  # a sigmoid output beyond these is saturated


def saturated_frac(s):
    probs = s.sigmoid
    return ((probs < SATURATED_LOW) | (probs > SATURATED_HIGH)).float().mean((-1, -2))


def saturated_side(s, wrong: bool):
    """(M,) fraction of sigmoid outputs saturated on the wrong side (the target's below 0.01, or a
    non-target's above 0.99), or with ``wrong=False`` on the right side (the complement)."""
    low, high, target = s.sigmoid < SATURATED_LOW, s.sigmoid > SATURATED_HIGH, s.one_hot
    side = (target & low) | (~target & high) if wrong else (target & high) | (~target & low)
    return side.float().mean((-1, -2))
