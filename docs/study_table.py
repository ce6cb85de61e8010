"""The measured tables of docs/studies.md, from a batch (or comparison) folder ce-lab wrote.

    python docs/study_table.py runs/batch-saturation-... --columns saturated_wrong_frac,grad_norm/total
    python docs/study_table.py runs/batch-label-noise-... --epochs 5,10,30 --tail acc

One row per group of the comparison (the loss and the settings that differ, seeds averaged):
final and best validation accuracy and test accuracy (mean ± sample std over seeds) and the runs'
flags as summary.json has them;
with ``--columns``, metrics.csv's first and last logged value of each column (mean over seeds;
"—" where a run lacks the column, e.g. ce has no saturation columns); with ``--epochs``, the
validation accuracy at those epochs' ends (eval.csv's last row of each epoch); with ``--tail``,
the mean of a metrics.csv column over the last 10% of logged rows (``acc`` is the accuracy of the
training batches on their labels, corrupted ones included). Reads the run
folders with ce-lab's own readers; computes nothing beyond means over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ce_lab.comparison.build import Agg, build_table, show
from ce_lab.runs.record import load_run


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite and len(finite) == len(values) else None


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _at_epoch(record, epoch: int) -> float | None:
    rows = [a for e, a in zip(record.evals["epoch"], record.evals["val_acc"]) if e == epoch]
    return rows[-1] if rows else None


def _tail_mean(record, column: str) -> float | None:
    values = record.metrics.get(column)
    if not values:
        return None
    tail = values[-max(1, math.ceil(0.1 * len(values))):]
    return math.fsum(tail) / len(tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a batch or comparison folder (its comparison.json)")
    ap.add_argument("--columns", default="", help="metrics.csv columns: first and last logged value")
    ap.add_argument("--epochs", default="", help="epochs whose end-of-epoch val acc to show")
    ap.add_argument("--tail", default="", help="metrics.csv columns: mean of the last 10%% rows")
    args = ap.parse_args()
    comp = json.loads((args.folder / "comparison.json").read_text())
    records = [load_run((args.folder / r).resolve()) for r in comp["runs"]]
    table = build_table(records)
    columns = [c for c in args.columns.split(",") if c]
    epochs = [int(e) for e in args.epochs.split(",") if e]
    tails = [c for c in args.tail.split(",") if c]
    head = ["loss", *table.config_keys, "n", "final val acc", "best val acc", "test acc", "flags"]
    head += [f"val acc ep {e}" for e in epochs]
    head += [f"{c} first → last" for c in columns]
    head += [f"{c}, last 10%" for c in tails]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    def agg(row, key: str) -> str:  # "mean ± sample std" over seeds, as the comparison shows it
        v = row.values.get(key)
        if not isinstance(v, Agg):
            return _fmt(v)
        return _fmt(v.mean) + (f" ± {v.std:.4f}" if v.std is not None else "")

    for row in table.rows:
        cells = [str(row.values["loss"]), *(show(row.values.get(k)) for k in table.config_keys),
                 str(len(row.records)), agg(row, "final_val_acc"), agg(row, "best_val_acc"),
                 agg(row, "test_acc"),
                 row.values.get("flags") or "—"]
        cells += [_fmt(_mean([_at_epoch(r, e) for r in row.records])) for e in epochs]
        for c in columns:
            first = _mean([r.metrics[c][0] if c in r.metrics else None for r in row.records])
            last = _mean([r.metrics[c][-1] if c in r.metrics else None for r in row.records])
            cells.append(f"{_fmt(first)} → {_fmt(last)}" if first is not None else "—")
        cells += [_fmt(_mean([_tail_mean(r, c) for r in row.records])) for c in tails]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
