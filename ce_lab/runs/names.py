"""The names of the files in run and comparison folders, written once for every writer and reader.

The README ("Files a run writes", "What a comparison writes") documents what each holds. Plain
strings, importing nothing, so any module may name a file without an import cycle.
"""

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

# A comparison folder
COMPARISON_JSON = "comparison.json"
REPORT_MD = "report.md"
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
