"""THE orchestration layer: plain functions with typed parameters that wire data, stacks, run
folders and comparisons. ``ce-lab``'s commands parse text, call one of these and render; the
Python API (``ce_lab.train``, ``ce_lab.compare``, ...) is a thin layer over them. Nothing else
wires the engine, so a capability added here exists at every door.

- one run: ``train_run``, ``resume_run`` (``single``)
- a training comparison: ``plan_comparison`` checks the arguments, ``run_comparison`` trains
  (tuning each loss's rate first when asked) and compares, ``resume_comparison`` finishes an
  interrupted one (``comparing``, ``tuning``, ``resuming``, ``request_file``)
- runs on disk: ``compare_on_disk``, with ``best_of`` (``on_disk``); ``list_runs`` filters
  them (by config value too) and finds the config keys that differ (``listing``)
- a batch file: ``prepare_batch`` checks the arguments and loads it (or a batch folder to
  continue), ``dry_run_batch`` says what it would do, ``run_batch`` runs it on the local or Ray
  executor and compares what finished (``batch``)

Arguments are typed values: a bad one raises ParamError naming the parameter (``«seeds»``),
which the CLI spells as its flag. Torch is imported only where training starts.
"""

from ce_lab.lab.batch import (
    BatchPlan,
    BatchRequest,
    RanBatch,
    dry_run_batch,
    prepare_batch,
    run_batch,
)
from ce_lab.lab.comparing import (
    CompareRequest,
    TrainedComparison,
    TuneSpec,
    plan_comparison,
    resume_comparison,
    run_comparison,
)
from ce_lab.lab.listing import RunList, list_runs
from ce_lab.lab.on_disk import NothingToCompare, OnDiskComparison, compare_on_disk
from ce_lab.lab.single import check_resume, resume_run, train_run

__all__ = [
    "BatchPlan", "BatchRequest", "CompareRequest", "NothingToCompare", "OnDiskComparison",
    "RanBatch", "RunList", "TrainedComparison", "TuneSpec", "check_resume", "compare_on_disk",
    "dry_run_batch", "list_runs", "plan_comparison", "prepare_batch", "resume_comparison", "resume_run",
    "run_batch", "run_comparison", "train_run",
]
