"""ce-lab: what changes when the same network is trained with a different classification loss.

The Python API (docs/api.md)::

    import ce_lab
    run = ce_lab.train("mse", epochs=1, lr=0.5)
    cmp = ce_lab.compare(["ce", "mse"], seeds=[0, 1], epochs=1)
    res = ce_lab.batch("configs/sweep-lr.yaml", jobs=2)
    runs = ce_lab.load_runs("runs")
    sce = ce_lab.loss("sce")  # a loss for your own PyTorch code: sce(logits, targets)

Every name is imported on first use, so ``import ce_lab`` stays fast and loads neither torch nor
pandas; training loads torch, DataFrames load pandas.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": "ce_lab.api", "compare": "ce_lab.api", "resume": "ce_lab.api",
    "resume_comparison": "ce_lab.api", "Interrupted": "ce_lab.api", "ParamError": "ce_lab.errors",
    "compare_runs": "ce_lab.api", "load_run": "ce_lab.api", "load_runs": "ce_lab.api",
    "load_metrics": "ce_lab.api", "Run": "ce_lab.api", "Comparison": "ce_lab.api",
    "RunFailed": "ce_lab.api", "batch": "ce_lab.api", "BatchResult": "ce_lab.api",
    "BatchEntry": "ce_lab.api", "MissingDependency": "ce_lab.errors",
    "RunConfig": "ce_lab.config", "CeLabError": "ce_lab.errors", "UsageError": "ce_lab.errors",
    "ConfigError": "ce_lab.errors", "DataError": "ce_lab.errors",
    "RunFolderError": "ce_lab.runs.files", "loss": "ce_lab.api", "Loss": "ce_lab.api",
}
__all__ = ["__version__", *sorted(_LAZY)]


# ``ce_lab.training`` and ``ce_lab.comparison`` are packages that, called, are the API's functions.
_CALLABLE_PACKAGES = ("train", "compare")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ce_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
