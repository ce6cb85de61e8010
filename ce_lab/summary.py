"""summary.json of a run, derived from the CSV files it wrote (so a resumed run needs no extra state).

Column names come from the metric registry (ce_lab/metrics.py), so a renamed column is renamed here
too; the summary's own keys are its file format and stay spelled out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ce_lab.calibration import METRICS as CALIBRATION_METRICS
from ce_lab.metrics import LOGGED_METRICS, When, logged_metric, threshold_key
from ce_lab.runs.names import EVALS, METRICS
from ce_lab.runs.read import GRAD_WINDOWS, LOGIT_GRAD_WINDOWS, read_csv_rows

__all__ = ["summarize", "threshold_key"]

# Looked up, not spelled: a column dropped from the registry fails here, at import.
_STEP, _EXAMPLES, _WALL, _VAL_ACC = (
    logged_metric(n).name for n in ("step", "examples", "wall_s", "val_acc"))
_GRAD_NORM = logged_metric("grad_norm/{param}").prefix  # "grad_norm/": per tensor, and total
_LOGIT_GRAD = logged_metric("logit_grad_norm").name
# eval.csv's value columns (not its position columns), in file order: "final" holds their last row.
_EVAL_VALUES = [m.name for m in LOGGED_METRICS if m.when == (When.EVAL,)]
_GRAD_TOTAL = logged_metric("grad_norm/total").name

# Flags: runs that ended without learning, whatever their status says.
# stalled: grad_norm/total below STALL_GRAD_NORM on every one of the last STALL_TAIL of the logged
# rows (at least one row). Measured (docs/studies.md): ce that fits all 5000 training images of
# configs/study-label-noise.yaml still ends at 0.09; mse started with model.output_gain 1000, whose
# sigmoid' underflows, at exactly 0. It needs log.grad_stats: without the gradient columns a run
# is never flagged stalled.
STALL_GRAD_NORM = 1e-6
STALL_TAIL = 0.10
# chance: the final validation accuracy within CHANCE_MARGIN of 1 / C, C the data set's classes
# (CHANCE_ACC for MNIST's ten). MNIST's class frequencies are 0.090 (fives) to 0.112 (ones):
# answering one class for every image lands inside this margin.
CHANCE_ACC = 0.1
CHANCE_MARGIN = 0.025
FLAGS = ("stalled", "chance")


def run_flags(metrics: list[dict[str, str]], final_val_acc: float | None,
              n_classes: int = 10) -> list[str]:
    """The flags a run's rows earn: a subset of FLAGS, in that order."""
    flags = []
    grads = [_f(r[_GRAD_TOTAL]) for r in metrics if r.get(_GRAD_TOTAL) not in (None, "")]
    if grads and len(grads) == len(metrics):
        tail = grads[-max(1, math.ceil(STALL_TAIL * len(grads))):]
        if all(math.isfinite(g) and g < STALL_GRAD_NORM for g in tail):
            flags.append("stalled")
    if (final_val_acc is not None and math.isfinite(final_val_acc)
            and abs(final_val_acc - 1 / n_classes) <= CHANCE_MARGIN):
        flags.append("chance")
    return flags
# The test set's numbers of a completed run, "final"."test_<name>"
_TEST_VALUES = ("loss", "acc", *CALIBRATION_METRICS)


def _f(text: str) -> float:
    # float() reads nan, inf and -inf as written by runs.files.format_value; an empty cell was not
    # computed at that step (a diverged step that was not logged).
    return float(text) if text else math.nan


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


Rows = list[dict[str, str]]


def early_late_rows(rows: Rows) -> tuple[Rows, Rows]:
    """The first and the last tenth of the logged rows (at least one row each; ceil(n / 10)).

    Why not the first and last epoch: with one epoch both were the same rows by definition. With
    fewer than 20 rows the two windows may touch or overlap; they never are empty.
    """
    k = -(-len(rows) // 10)  # integer ceil: 0.1 * n in floats rounds 30 rows up to 4
    return rows[:k], rows[-k:]


def val_acc_auc(examples: list[int], accs: list[float]) -> float | None:
    """Area under validation accuracy against examples seen, divided by the examples spanned:
    the mean validation accuracy over training, in [0, 1].

    Trapezoid rule over the evaluation points, from the first evaluation to the last (there is no
    evaluation at 0 examples, and none is invented). One evaluation: its accuracy. None without an
    evaluation or when any evaluated accuracy is non-finite (a diverged member).
    """
    if not accs or not all(math.isfinite(a) for a in accs):
        return None
    if len(accs) == 1 or examples[-1] == examples[0]:
        return accs[-1]
    area = math.fsum((x1 - x0) * (a0 + a1) / 2
                     for x0, x1, a0, a1 in zip(examples, examples[1:], accs, accs[1:]))
    return area / (examples[-1] - examples[0])


def summarize(run_dir: Path, *, status: str, loss: str, seed: int, steps: int, examples: int,
              wall_seconds: float, steps_per_epoch: int, thresholds: tuple[float, ...],
              test: dict[str, Any] | None, diverged_at: int | None,
              diverged_quantity: str | None, group: str | None,
              n_classes: int = 10) -> dict[str, Any]:
    metrics = read_csv_rows(run_dir / METRICS)
    evals = read_csv_rows(run_dir / EVALS)
    last_eval = evals[-1] if evals else None
    val_acc = [(_f(r[_VAL_ACC]), int(r[_STEP])) for r in evals]
    finite_acc = [(a, s) for a, s in val_acc if math.isfinite(a)]
    best = max(finite_acc, key=lambda t: (t[0], -t[1])) if finite_acc else None

    convergence: dict[str, Any] = {}
    for t in thresholds:
        hit = next((r for r in evals if _f(r[_VAL_ACC]) >= t), None)
        convergence[threshold_key(t)] = None if hit is None else {
            "step": int(hit[_STEP]), "examples": int(hit[_EXAMPLES]), "seconds": _f(hit[_WALL])
        }

    grad_summary = None
    grad_cols = [c for c in (metrics[0].keys() if metrics else []) if c.startswith(_GRAD_NORM)]
    if grad_cols:
        first, last = early_late_rows(metrics)

        def per_layer(rows):
            return {c.removeprefix(_GRAD_NORM): _mean([_f(r[c]) for r in rows]) for c in grad_cols}

        def step_range(rows):
            return [int(rows[0][_STEP]), int(rows[-1][_STEP])]

        grad_summary = {}
        for window, rows in (("early", first), ("late", last)):
            grad_summary[GRAD_WINDOWS[window]] = per_layer(rows)
            grad_summary[LOGIT_GRAD_WINDOWS[window]] = _mean([_f(r[_LOGIT_GRAD]) for r in rows])
            grad_summary[f"{window}_steps"] = step_range(rows)

    epochs_done = steps / steps_per_epoch if steps_per_epoch else 0.0
    final_val_acc = _f(last_eval[_VAL_ACC]) if last_eval else None
    return {
        "status": status,
        "loss": loss,
        "seed": seed,
        "steps": steps,
        "epochs_completed": steps // steps_per_epoch if steps_per_epoch else 0,
        "examples": examples,
        "wall_seconds": wall_seconds,
        "seconds_per_epoch": wall_seconds / epochs_done if epochs_done else None,
        "final": {
            # a column a run written before it existed lacks is None (added_later metrics)
            **{c: _f(last_eval[c]) if last_eval and last_eval.get(c) else None
               for c in _EVAL_VALUES},
            **{f"test_{k}": test.get(k) if test else None for k in _TEST_VALUES},
        },
        # the test set's reliability table (ce_lab.calibration.Reliability), completed runs
        "test_reliability": test.get("reliability") if test else None,
        "best_val_acc": best[0] if best else None,
        "best_val_step": best[1] if best else None,
        "val_acc_auc": val_acc_auc([int(r[_EXAMPLES]) for r in evals], [a for a, _ in val_acc]),
        "thresholds": list(thresholds),
        "convergence": convergence,
        "grad_summary": grad_summary,
        "diverged_at": diverged_at,
        "diverged_quantity": diverged_quantity,
        "group": group,
        "flags": run_flags(metrics, final_val_acc, n_classes),
    }
