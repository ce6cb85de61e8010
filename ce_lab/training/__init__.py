"""Training: a stack of members (``stack``), the loop (``loop``), their run folders (``members``),
checkpoints, the divergence watch, and which runs may share a stack (``fusion``).

``train(cfg)`` trains one run, ``train_paired(cfgs)`` a comparison, ``resume(run_dir)`` continues
an interrupted run. They are imported lazily: ``ce_lab.training.fusion`` is torch-free, and the batch
planner and the CLI use it without paying torch's import.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "train": "ce_lab.training.run", "train_paired": "ce_lab.training.run", "resume": "ce_lab.training.run",
    "RunOutcome": "ce_lab.training.members", "metric_header": "ce_lab.training.members",
    "fusable": "ce_lab.training.fusion", "plan_stacks": "ce_lab.training.fusion",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ce_lab.training' has no attribute {name!r}")

