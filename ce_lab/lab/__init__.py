"""THE orchestration layer: plain functions with typed parameters that wire data, stacks, run
folders and comparisons. ``ce-lab``'s commands parse text, call one of these and render; the
Python API (``ce_lab.train``, ``ce_lab.compare``, ...) is a thin layer over them. Nothing else
wires the engine, so a capability added here exists at every door.

- one run: ``train_run``, ``resume_run`` (``single``)
- a training comparison: ``plan_comparison`` checks the arguments, ``run_comparison`` trains
  (tuning each loss's rate first when asked) and compares, ``resume_comparison`` finishes an
  interrupted one (``comparing``, ``tuning``, ``resuming``, ``request_file``)
- runs on disk: ``compare_on_disk``, with ``best_of`` (``on_disk``)

Arguments are typed values: a bad one raises ParamError naming the parameter (``«seeds»``),
which the CLI spells as its flag. Torch is imported only where training starts.
"""

from ce_lab.lab.comparing import (
    CompareRequest,
    TrainedComparison,
    TuneSpec,
    plan_comparison,
    resume_comparison,
    run_comparison,
)
from ce_lab.lab.on_disk import NothingToCompare, OnDiskComparison, compare_on_disk
from ce_lab.lab.single import check_resume, resume_run, train_run

__all__ = [
    "CompareRequest", "NothingToCompare", "OnDiskComparison", "TrainedComparison", "TuneSpec",
    "check_resume", "compare_on_disk", "plan_comparison", "resume_comparison", "resume_run",
    "run_comparison", "train_run",
]
