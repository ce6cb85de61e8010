"""The names of the files in run and comparison folders, written once for every writer and reader,
and ``plain_name``, the check a name read from disk passes before a path is built from it.

docs/files.md ("A run folder", "A comparison folder") documents what each holds. Plain
strings; of ce_lab it imports only leaves (the exceptions, ``ce_lab.shown``), so any module may
name a file without an import cycle.
"""

from __future__ import annotations

from typing import Any

from ce_lab.errors import UnsafeName
from ce_lab.shown import quoted

# A run folder
META = "meta.json"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
EVALS = "eval.csv"
ERROR_LOG = "error.log"
CHECKPOINT = "checkpoint.pt"  # written by ce_lab.training; named here so readers need no torch
TEST_LOGITS = "test_logits.npz"  # a completed run's test logits (float32) and labels (int64)
LOCK = ".lock"  # held by the process that trains the run (ce_lab.runs.lock)
CHECKPOINT_TMP = f".{CHECKPOINT}.tmp"  # a checkpoint is written here, then renamed
# Every name a run writes in its folder: a resume refuses a symbolic link at any of them.
RUN_WRITES = (META, SUMMARY, CONFIG, METRICS, EVALS, ERROR_LOG, CHECKPOINT, CHECKPOINT_TMP,
              TEST_LOGITS, LOCK)

# A comparison folder
COMPARISON_JSON = "comparison.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"  # the same comparison as one self-contained interactive page
TABLE_CSV = "table.csv"
TABLE_JSON = "table.json"
TABLE_MD = "table.md"
PAIRED_CSV = "paired.csv"
TUNING_CSV = "tuning.csv"
TUNING_FOLDER = "tuning"  # the tuning runs of a tune-then-compare, apart from the compared ones
# its plots
LOSS_PNG = "loss.png"
VAL_ACC_PNG = "val_acc.png"
VAL_ACC_BY_SETTING_PNG = "val_acc_by_setting.png"
GRAD_NORMS_PNG = "grad_norms.png"
LOGIT_GRAD_PNG = "logit_grad.png"
RELIABILITY_PNG = "reliability.png"
SENSITIVITY_PNG = "lr_sensitivity.png"


def plain_name(name: Any, what: str) -> str:
    """``name`` if it is one plain file name (a str, not empty, not ``.`` or ``..``, no ``/``,
    ``\\`` or NUL), else UnsafeName: ``<what> '../x' is not a plain file name``. Every name read
    from disk (``run_id`` in meta.json, ...) passes here before it becomes part of a path, so
    an absolute or ``../`` one can never point a write elsewhere."""
    if (not isinstance(name, str) or name in ("", ".", "..")
            or any(c in name for c in "/\\\0")):
        raise UnsafeName(f"{what} {quoted(name)} is not a plain file name")
    return name
