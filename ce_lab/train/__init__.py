"""Training: a stack of members (``stack``), the loop (``loop``), their run folders (``members``),
checkpoints, the divergence watch, and which runs may share a stack (``fusion``).

``train(cfg)`` trains one run, ``train_paired(cfgs)`` a comparison, ``resume(run_dir)`` continues
an interrupted run. They are imported lazily: ``ce_lab.train.fusion`` is torch-free, and the batch
planner and the CLI use it without paying torch's import.

The package itself is callable: ``ce_lab.train("mse", epochs=1)`` is the Python API's
``ce_lab.api.train`` (see ce_lab/_callable.py for why).
"""

from __future__ import annotations

from typing import Any

from ce_lab._callable import make_callable

_LAZY = {
    "train": "ce_lab.train.run", "train_paired": "ce_lab.train.run", "resume": "ce_lab.train.run",
    "RunOutcome": "ce_lab.train.members", "metric_header": "ce_lab.train.members",
    "fusable": "ce_lab.train.fusion", "plan_stacks": "ce_lab.train.fusion",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ce_lab.train' has no attribute {name!r}")


make_callable(__name__, "train")
