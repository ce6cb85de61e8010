"""The Python API, for notebooks and scripts (docs/api.md): ``train``, ``resume``, ``compare``,
``resume_comparison``, ``compare_runs``, ``batch``, ``load_run``, ``load_runs``, ``load_metrics``,
``loss``.

Thin over ``ce_lab.lab``, the orchestration layer the CLI calls too (``experiments``,
``batches``), the run-folder readers (``reading``) and the losses as callables (``losses``).
"""

from ce_lab.api.batches import BatchEntry, BatchResult, batch
from ce_lab.api.experiments import (
    Comparison,
    Interrupted,
    RunFailed,
    compare,
    compare_runs,
    resume,
    resume_comparison,
    train,
)
from ce_lab.api.losses import Loss, loss
from ce_lab.api.reading import Run, load_metrics, load_run, load_runs

__all__ = [
    "BatchEntry", "BatchResult", "Comparison", "Interrupted", "Loss", "Run", "RunFailed", "batch",
    "compare", "compare_runs", "load_metrics", "load_run", "load_runs", "loss", "resume",
    "resume_comparison", "train",
]
