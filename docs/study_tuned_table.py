"""The tuned studies' tables in docs/studies.md, from the folder of `ce-lab compare --group BATCH
--best-of optim.lr` (its table.json: rows and paired differences as the comparison computed them).

    python docs/study_tuned_table.py runs/compare-... --by data.name
    python docs/study_tuned_table.py runs/compare-... --by data.label_noise,data.label_noise_kind
    python docs/study_tuned_table.py runs/compare-... --by data.name --plot docs/study-datasets.png

One row per loss and setting (the --by keys), at the rate the comparison chose: mean ± sample std
over the evaluation seeds of test accuracy, val acc AUC and test ECE, and the paired test-accuracy
difference against the reference loss of the same setting (its mean, 95% Student-t interval, the
Holm-adjusted p over the comparison's whole family and the comparison's verdict). Computes
nothing: every number is the comparison's. ``--plot FILE``: the test accuracy of each loss per
setting, a bar at the mean and a dot per evaluation seed (the comparison's own plots draw one
panel per loss and rate when each loss has its own rate).
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


def _plot(rows: list[dict], keys: list[str], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(", ".join(str(r.get(k)) for k in keys) for r in rows))
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    width = 0.8 / len(losses)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(settings) + 2), 4.2))
    for j, loss in enumerate(losses):
        for i, setting in enumerate(settings):
            row = next((r for r in rows if r["loss"] == loss
                        and ", ".join(str(r.get(k)) for k in keys) == setting), None)
            cell = (row or {}).get(metric)
            if not isinstance(cell, dict) or cell.get("mean") is None:
                continue
            x = i - 0.4 + width * (j + 0.5)
            ax.bar(x, cell["mean"], width * 0.9, color=f"C{j}", label=loss if i == 0 else None)
            values = [v for v in cell.get("values") or [] if v is not None]
            ax.plot([x] * len(values), values, "k.", markersize=3)
    lows = [v for r in rows for v in (r.get(metric) or {}).get("values") or [] if v is not None]
    ax.set_ylim(max(0.0, min(lows) - 0.05) if lows else 0.0, 1.0)
    ax.set_xticks(range(len(settings)), settings)
    ax.set_xlabel(", ".join(keys))
    ax.set_ylabel(metric.replace("_", " ") + " (bar: mean; dots: seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncols=min(6, len(losses)), fontsize="small", loc="upper center",
              bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a comparison folder (its table.json)")
    ap.add_argument("--by", required=True, help="comma-separated config keys of a setting")
    ap.add_argument("--metric", default="test_acc", help="the paired metric shown (test_acc)")
    ap.add_argument("--plot", type=Path, help="also draw that metric per setting into this PNG")
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
    if args.plot:
        _plot(rows, keys, args.plot, args.metric)


if __name__ == "__main__":
    main()
