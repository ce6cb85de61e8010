"""Float64 building blocks of the loss references (tests/test_losses.py,
tests/test_literature_losses.py): written from the definitions, not with torch.nn.functional."""

from __future__ import annotations

import torch

F64 = torch.float64


def onehot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    out = torch.zeros(len(targets), num_classes, dtype=F64)
    out[torch.arange(len(targets)), targets] = 1.0
    return out


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)
