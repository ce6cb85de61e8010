"""The comparison as data files: table.csv, table.json and paired.csv (and comparison.json's
"paired" list, the same records as table.json's).

Raw values, never rounded: csv writes floats by repr and JSON by its shortest round-trip form, so
both parse back to what the runs wrote. None is an empty CSV cell and null in JSON; JSON has no NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ce_lab.comparison.build import Agg, ComparisonTable, Row, show
from ce_lab.comparison.paired import PairedDiff
from ce_lab.shown import printable


def relative_path(p: Path | str, base: Path) -> str:
    """``p`` relative to the comparison folder ``base`` (member runs sit next to it), else
    absolute (another drive)."""
    import os

    try:
        return os.path.relpath(Path(p).resolve(), Path(base).resolve())
    except ValueError:
        return str(Path(p).resolve())


def _raw(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def csv_fields(table: ComparisonTable) -> list[str]:
    fields: list[str] = []
    for c in table.columns:
        if table.aggregated and c.metric is not None:
            fields += [f"{c.key}_mean", f"{c.key}_std", f"{c.key}_n"]
        else:
            fields.append(c.key)
    return fields + ["runs"]


def raw_row(table: ComparisonTable, row: Row) -> dict[str, Any]:
    """One row with raw values (flat: aggregated metrics as _mean, _std, _n)."""
    out: dict[str, Any] = {}
    for c in table.columns:
        v = row.values.get(c.key)
        if isinstance(v, Agg):
            out[f"{c.key}_mean"], out[f"{c.key}_std"], out[f"{c.key}_n"] = v.mean, v.std, v.n
        elif isinstance(v, (list, tuple)):
            out[c.key] = show(v)
        else:
            out[c.key] = _raw(v)
    out["runs"] = ";".join(str(r.path) for r in row.records)
    return out


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row's text without control characters (a loss label from a run folder may hold an
    escape sequence; the CSV is read on terminals too). Numbers stay as they are."""
    return {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}


def to_csv(table: ComparisonTable) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_fields(table), lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        # csv writes None as an empty cell and floats by repr, which parses back exactly.
        writer.writerow(_csv_row(raw_row(table, row)))
    return buf.getvalue()


def paired_json(d: PairedDiff) -> dict[str, Any]:
    """One paired difference as data (table.json, comparison.json "paired", paired.csv)."""
    iv = d.interval
    return {
        "loss": d.label, "reference": d.reference,
        "metric": d.key, "registry_key": d.metric.metric.key, "param": d.param,
        "threshold": d.threshold, "kind": d.metric.metric.kind,
        "higher_is_better": d.metric.metric.higher_is_better,
        "n": d.n, "seeds": d.seeds, "diffs": d.diffs,
        "mean": iv.mean if iv else None, "sd": iv.sd if iv else None,
        "lo": iv.lo if iv else None, "hi": iv.hi if iv else None,
        "confidence": d.confidence,
        "excludes_zero": iv.significant if iv else None,
        "p": d.p, "p_holm": d.p_holm,
        "holm_family": d.family if d.p_holm is not None else None,
        "resolution": d.resolution, "resolution_limited": d.resolution_limited,
        "informative": d.informative,
        "significant": d.significant,
        "not_reached": {"loss": d.not_reached, "reference": d.ref_not_reached},
        "missing": {"loss": {str(s): r for s, r in d.missing.items()},
                    "reference": {str(s): r for s, r in d.ref_missing.items()}},
        "verdict": d.verdict,
    }


def to_json_data(table: ComparisonTable, diffs: Sequence[PairedDiff] = (),
                 reference: str | None = None, skipped: Sequence[str] = ()) -> dict[str, Any]:
    rows = []
    for row in table.rows:
        item: dict[str, Any] = {"label": row.label}
        for c in table.columns:
            v = row.values.get(c.key)
            if isinstance(v, Agg):
                item[c.key] = {"mean": v.mean, "std": v.std, "n": v.n, "of": v.of,
                               "values": list(v.values)}
            else:
                item[c.key] = _raw(v)
        item["runs"] = [str(r.path) for r in row.records]
        rows.append(item)
    return {
        "aggregated": table.aggregated,
        "group_by": table.group_by,
        "thresholds": table.thresholds,
        "columns": [c.key for c in table.columns],
        "rows": rows,
        "reference": reference,
        "paired": [paired_json(d) for d in diffs],
        "skipped": list(skipped),
    }


def to_json(table: ComparisonTable, diffs: Sequence[PairedDiff] = (),
            reference: str | None = None, skipped: Sequence[str] = ()) -> str:
    return json.dumps(to_json_data(table, diffs, reference, skipped), indent=2,
                      allow_nan=False, default=str) + "\n"


def paired_csv(diffs: Sequence[PairedDiff]) -> str:
    buf = io.StringIO()
    fields = ["loss", "reference", "metric", "threshold", "n", "mean", "sd", "lo", "hi", "p",
              "p_holm", "resolution", "resolution_limited", "informative", "significant", "verdict"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for d in diffs:
        writer.writerow(_csv_row(paired_json(d)))
    return buf.getvalue()
