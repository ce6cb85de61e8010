"""The tuned studies' tables in docs/studies.md, from the folder of `ce-lab compare --group BATCH
--best-of optim.lr` (its table.json: rows and paired differences as the comparison computed them).

    python docs/study_tuned_table.py runs/compare-... --by data.name
    python docs/study_tuned_table.py runs/compare-... --by data.label_noise,data.label_noise_kind

One row per loss and setting (the --by keys), at the rate the comparison chose: mean ± sample std
over the evaluation seeds of test accuracy, val acc AUC and test ECE, and the paired test-accuracy
difference against the reference loss of the same setting (its mean, 95% Student-t interval, the
Holm-adjusted p over the comparison's whole family and the comparison's verdict). Computes
nothing: every number is the comparison's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _agg(cell, digits: int = 4) -> str:
    if not isinstance(cell, dict) or cell.get("mean") is None:
        return "—"
    std = cell.get("std")
    return f"{cell['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _paired(p: dict | None) -> str:
    if p is None:
        return "—"
    if p.get("mean") is None:
        return p.get("verdict") or "—"
    return (f"{p['mean']:+.4f} [{p['lo']:+.4f}, {p['hi']:+.4f}], p Holm {p['p_holm']:.3f}: "
            f"{p['verdict']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a comparison folder (its table.json)")
    ap.add_argument("--by", required=True, help="comma-separated config keys of a setting")
    ap.add_argument("--metric", default="test_acc", help="the paired metric shown (test_acc)")
    args = ap.parse_args()
    table = json.loads((args.folder / "table.json").read_text())
    keys = [k for k in args.by.split(",") if k]
    paired = {p["loss"]: p for p in table.get("paired") or [] if p["metric"] == args.metric}
    ref = table.get("reference")
    head = [*keys, "loss", "lr", "test acc", "val acc AUC", "test ECE",
            f"test acc − {ref}, paired (95% interval, Holm)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows = sorted(table["rows"], key=lambda r: tuple(str(r.get(k)) for k in keys))
    for row in rows:
        cells = [str(row.get(k)) for k in keys]
        cells += [f"`{row['loss']}`", f"{row.get('optim.lr')}", _agg(row.get("test_acc")),
                  _agg(row.get("val_acc_auc")), _agg(row.get("test_ece")),
                  _paired(paired.get(row["label"]))]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
