"""Which torch device a run uses. The only place that knows about CUDA and MPS."""

from __future__ import annotations

import torch

from ce_lab.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """auto: cuda, then mps, then cpu. An explicit device that is not available is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise UsageError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name == "mps" and not mps:
        raise UsageError("device 'mps' requested but torch.backends.mps.is_available() is False")
    return torch.device(name)
