"""The comparison table: one row per run, or per group of seeds, and its renderings.

Raw values (csv, json) are never rounded, so they parse back to what the runs wrote. A threshold a
run never reached has no number anywhere: None in the table, null in JSON, an empty CSV cell and
"not reached" in the rich and markdown tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ce_lab.compare.stats import Agg, Interval, paired_interval
from ce_lab.errors import UsageError
from ce_lab.runs.folder import ENDED_STATUSES, threshold_key
from ce_lab.runs.record import RunRecord

# Config keys that never change a result; they differ between runs without meaning anything.
NON_RESULT_KEYS = frozenset({
    "out_dir", "data.root", "data.download", "log.progress", "log.checkpoint",
    "train.eval_batch_size",
})
NOT_REACHED = "not reached"
NONE_SHOWN = "—"


@dataclass(frozen=True)
class Column:
    key: str  # csv header, json key and --sort name
    header: str  # shown in the rich and markdown tables
    kind: str  # text | config | int | step | acc | seconds | norm | threshold


@dataclass
class Row:
    label: str
    records: list[RunRecord]
    values: dict[str, Any]  # per run: scalars or None; aggregated: Agg for every metric


@dataclass
class ComparisonTable:
    columns: list[Column]
    rows: list[Row]
    aggregated: bool
    group_by: list[str]
    thresholds: list[float]
    config_keys: list[str]  # config columns shown
    notes: list[str] = field(default_factory=list)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass
class PairedDiff:
    """steps(loss) - steps(reference) to one threshold, seed by seed."""

    label: str
    reference: str
    threshold: float
    seeds: list[int]
    diffs: list[float | None]  # None where either run of the pair did not reach the threshold
    not_reached: int  # paired seeds where the loss did not reach it
    ref_not_reached: int  # ... where the reference did not
    interval: Interval | None  # only when every pair reached it

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        if self.n == 0:
            return "no paired seeds"
        misses = []
        if self.not_reached:
            misses.append(f"{self.label} not reached in {self.not_reached}/{self.n} seeds")
        if self.ref_not_reached:
            misses.append(f"{self.reference} not reached in {self.ref_not_reached}/{self.n} seeds")
        if misses:
            return "; ".join(misses)
        assert self.interval is not None
        if self.interval.significant is None:
            return "one seed: no interval"
        return "significant" if self.interval.significant else "not significant"


# ---------------------------------------------------------------------------------------------
# Building


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _same(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def differing_keys(records: Sequence[RunRecord]) -> list[str]:
    """Dotted config keys whose values are not all equal, in config order."""
    flats = [flatten(r.config) for r in records]
    keys: list[str] = []
    for f in flats:
        keys.extend(k for k in f if k not in keys)
    return [
        k for k in keys
        if k not in NON_RESULT_KEYS and len({_same(f.get(k)) for f in flats}) > 1
    ]


def config_value(record: RunRecord, key: str) -> Any:
    if key == "loss":
        return record.loss
    return flatten(record.config).get(key)


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def _layers(records: Sequence[RunRecord]) -> list[str]:
    """Weight tensors with gradient summaries (one per layer), in model order."""
    names: list[str] = []
    for r in records:
        gs = r.summary.get("grad_summary") or {}
        for part in ("first_epoch", "last_epoch"):
            for name in gs.get(part) or {}:
                if name.endswith(".weight") and name not in names:
                    names.append(name)
    return names


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v  # steps stay integers, as the run wrote them
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def run_metrics(r: RunRecord, thresholds: Sequence[float], layers: Sequence[str]) -> dict:
    """The numbers of one run, keyed by column (None: not available / not reached)."""
    final = r.summary.get("final") or {}
    out: dict[str, float | None] = {
        "final_val_acc": _num(final.get("val_acc")),
        "best_val_acc": _num(r.summary.get("best_val_acc")),
        "test_acc": _num(final.get("test_acc")),
    }
    for t in thresholds:
        conv = r.convergence(t) or {}
        out[f"steps_to_{threshold_key(t)}"] = _num(conv.get("step"))
        out[f"seconds_to_{threshold_key(t)}"] = _num(conv.get("seconds"))
    gs = r.summary.get("grad_summary") or {}
    for layer in layers:
        out[f"grad_early/{layer}"] = _num((gs.get("first_epoch") or {}).get(layer))
        out[f"grad_late/{layer}"] = _num((gs.get("last_epoch") or {}).get(layer))
    out["logit_grad_early"] = _num(gs.get("logit_grad_norm_start"))
    out["logit_grad_late"] = _num(gs.get("logit_grad_norm_end"))
    out["diverged_at"] = _num(r.summary.get("diverged_at"))
    return out


def _metric_columns(thresholds: Sequence[float], layers: Sequence[str]) -> list[Column]:
    cols = [
        Column("final_val_acc", "final val acc", "acc"),
        Column("best_val_acc", "best val acc", "acc"),
        Column("test_acc", "test acc", "acc"),
    ]
    for t in thresholds:
        cols.append(Column(f"steps_to_{threshold_key(t)}", f"steps to {threshold_key(t)}", "threshold"))
        cols.append(Column(f"seconds_to_{threshold_key(t)}", f"s to {threshold_key(t)}", "threshold"))
    for layer in layers:
        short = layer.removesuffix(".weight")
        cols.append(Column(f"grad_early/{layer}", f"grad {short} early", "norm"))
        cols.append(Column(f"grad_late/{layer}", f"grad {short} late", "norm"))
    cols.append(Column("logit_grad_early", "dL/dz early", "norm"))
    cols.append(Column("logit_grad_late", "dL/dz late", "norm"))
    cols.append(Column("diverged_at", "diverged at", "step"))
    return cols


def static_sort_keys(thresholds: Sequence[float]) -> list[str]:
    """Column names valid whatever the runs turn out to be (for checking --sort early)."""
    base = ["run", "loss", "seed", "n", "status"]
    return base + [c.key for c in _metric_columns(thresholds, [])]


def check_sort_key(sort: str, thresholds: Sequence[float], extra: Sequence[str] = ()) -> None:
    """UsageError (exit 2) listing the valid columns unless ``sort`` names one."""
    from ce_lab.config import RunConfig, to_dict

    key = sort.removeprefix("-")
    shown = static_sort_keys(thresholds)
    valid = {*shown, *extra, *flatten(to_dict(RunConfig()))}
    if key in valid or key.startswith(("grad_early/", "grad_late/")):
        return
    listed = ", ".join(dict.fromkeys([*shown, "grad_early/<param>", "grad_late/<param>", *extra]))
    raise UsageError(
        f"unknown --sort column {key!r}; valid columns: {listed}, or a config key "
        "(prefix - for descending)"
    )


STATUS_ORDER = ENDED_STATUSES  # the order a status summary lists them in


def _status_summary(records: Iterable[RunRecord]) -> str:
    counts = Counter(r.status for r in records)
    order = sorted(counts, key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER else 9, s))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def build_table(
    records: Sequence[RunRecord],
    group_by: Sequence[str] | None = None,
    sort: str | None = None,
) -> ComparisonTable:
    """Rows per run, or per group when a group holds several runs (seeds).

    ``group_by``: config keys (dotted; "loss" is the loss name) that define a group; the loss is
    always one of them. Default: the loss plus every config key that differs between the runs
    other than the seed. ``sort``: a column key, "-key" for descending.
    """
    if not records:
        raise UsageError("no runs to compare")
    thresholds = sorted({t for r in records for t in r.thresholds})
    layers = _layers(records)
    differ = [k for k in differing_keys(records) if k != "loss.name"]
    if group_by is None:
        keys = ["loss"] + [k for k in differ if k != "seed"]
    else:
        keys = ["loss"] + [k for k in group_by if k not in ("loss", "loss.name")]

    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(tuple(_same(config_value(r, k)) for k in keys), []).append(r)
    aggregated = any(len(g) > 1 for g in groups.values())
    metric_cols = _metric_columns(thresholds, layers)

    rows: list[Row] = []
    if aggregated:
        config_keys = keys[1:]
        columns = [Column("loss", "loss", "text")]
        columns += [Column(k, k, "config") for k in config_keys]
        columns += [Column("n", "n", "int"), Column("status", "status", "text")]
        columns += metric_cols
        for members in groups.values():
            members.sort(key=lambda r: (r.seed is None, r.seed or 0))
            first = members[0]
            values: dict[str, Any] = {"loss": first.loss, "n": len(members)}
            values.update({k: config_value(first, k) for k in config_keys})
            values["status"] = _status_summary(members)
            per_run = [run_metrics(r, thresholds, layers) for r in members]
            for c in metric_cols:
                values[c.key] = Agg(tuple(m[c.key] for m in per_run))
            label = " ".join(
                [first.loss] + [f"{k}={_show(config_value(first, k))}" for k in config_keys]
            )
            rows.append(Row(label, list(members), values))
    else:
        config_keys = differ
        columns = [Column("run", "run", "text"), Column("loss", "loss", "text")]
        columns += [Column(k, k, "config") for k in config_keys]
        columns += [Column("status", "status", "text")]
        columns += metric_cols
        for r in records:
            values = {"run": r.run_id, "loss": r.loss, "status": r.status}
            values.update({k: config_value(r, k) for k in config_keys})
            values.update(run_metrics(r, thresholds, layers))
            extra = [f"{k}={_show(config_value(r, k))}" for k in keys[1:]]
            rows.append(Row(" ".join([r.loss, *extra]), [r], values))

    table = ComparisonTable(columns, rows, aggregated, keys, thresholds, config_keys)
    if sort:
        sort_rows(table, sort)
    return table


def sort_rows(table: ComparisonTable, sort: str) -> None:
    """Sort in place by a column ("-col": descending); rows without a value go last."""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    valid = [c.key for c in table.columns]
    if key not in valid:
        # Config keys equal for every run are valid too (hidden; sorting by them changes nothing).
        flat_keys = {k for row in table.rows for r in row.records for k in flatten(r.config)}
        check_sort_key(sort, table.thresholds, [*valid, *sorted(flat_keys)])

    def value(row: Row) -> Any:
        v = row.values.get(key, config_value(row.records[0], key))
        return v.mean if isinstance(v, Agg) else v

    present = [r for r in table.rows if value(r) is not None]
    absent = [r for r in table.rows if value(r) is None]

    def order(row: Row):
        v = value(row)
        return (0, v, "") if isinstance(v, (int, float)) else (1, 0, _show(v))

    table.rows = sorted(present, key=order, reverse=descending) + absent


# ---------------------------------------------------------------------------------------------
# Paired differences


def paired_differences(
    table: ComparisonTable, reference: str, confidence: float = 0.95
) -> list[PairedDiff]:
    """Each group against the reference loss's group, per threshold, paired by seed.

    The reference group is the one with the same non-loss group values; if there is none and the
    reference loss has exactly one group (e.g. a per-loss lr override), that one.
    """
    ref_rows = [r for r in table.rows if r.records[0].loss == reference]
    out: list[PairedDiff] = []
    for row in table.rows:
        loss = row.records[0].loss
        if loss == reference:
            continue
        context = [_same(config_value(row.records[0], k)) for k in table.group_by[1:]]
        ref = [
            rr for rr in ref_rows
            if [_same(config_value(rr.records[0], k)) for k in table.group_by[1:]] == context
        ]
        if not ref and len(ref_rows) == 1:
            ref = ref_rows
        if len(ref) != 1:
            continue
        ref_row = ref[0]
        by_seed = {r.seed: r for r in row.records if r.seed is not None}
        ref_by_seed = {r.seed: r for r in ref_row.records if r.seed is not None}
        seeds = sorted(set(by_seed) & set(ref_by_seed))
        for t in table.thresholds:
            diffs: list[float | None] = []
            miss = ref_miss = 0
            for s in seeds:
                a = (by_seed[s].convergence(t) or {}).get("step")
                b = (ref_by_seed[s].convergence(t) or {}).get("step")
                miss += a is None
                ref_miss += b is None
                diffs.append(None if a is None or b is None else float(a) - float(b))
            interval = None
            if seeds and not miss and not ref_miss:
                interval = paired_interval([d for d in diffs if d is not None], confidence)
            out.append(PairedDiff(row.label, ref_row.label, t, seeds, diffs, miss, ref_miss,
                                  interval))
    return out


# ---------------------------------------------------------------------------------------------
# Formatting


def _fmt(v: float, kind: str) -> str:
    if kind in ("int", "step"):
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    if kind == "acc":
        return f"{v:.4f}"
    if kind == "seconds":
        return f"{v:.1f}"
    if kind == "norm":
        return f"{v:.3g}"
    return str(v)


def cell_text(table: ComparisonTable, row: Row, col: Column, counts: bool = True) -> str:
    """A value as the rich and markdown tables show it (``counts``: add "(m/n reached)")."""
    v = row.values.get(col.key)
    if col.kind in ("text", "config"):
        return NONE_SHOWN if v is None else _show(v)
    if col.kind == "int":
        return str(v)
    missing = NOT_REACHED if col.kind == "threshold" else NONE_SHOWN
    if col.key.startswith("seconds_to_"):
        kind = "seconds"
    else:
        kind = "step" if col.key.startswith("steps_to_") else col.kind
    if not isinstance(v, Agg):
        return missing if v is None else _fmt(v, kind)
    if v.n == 0:
        return missing
    text = _fmt(v.mean, kind)
    if v.std is not None:
        text += f" ± {_fmt(v.std, 'seconds' if kind == 'step' else kind)}"
    if col.key == "diverged_at":
        return f"{v.n}/{v.of} diverged, step {text}"
    if v.n < v.of and counts:
        text += f" ({v.n}/{v.of} reached)" if col.kind == "threshold" else f" ({v.n}/{v.of})"
    return text


def interval_text(d: PairedDiff) -> tuple[str, str]:
    """(mean difference, interval) as shown; no numbers when a pair did not reach the threshold."""
    if d.interval is None:
        return NONE_SHOWN, NONE_SHOWN
    mean = f"{d.interval.mean:+.1f}"
    if d.interval.lo is None:
        return mean, "n=1"
    return mean, f"[{d.interval.lo:+.1f}, {d.interval.hi:+.1f}]"


def _paired_headers(diffs: Sequence[PairedDiff]) -> list[str]:
    vs = ["vs"] if len({d.reference for d in diffs}) > 1 else []
    return ["loss", *vs, "threshold", "n", "mean diff (steps)", "95% interval", "verdict"]


def paired_cells(d: PairedDiff, with_vs: bool) -> list[str]:
    mean, ci = interval_text(d)
    vs = [d.reference] if with_vs else []
    return [d.label, *vs, threshold_key(d.threshold), str(d.n), mean, ci, d.verdict]


# The shown tables: raw columns combined into compact cells (a cell is a list of lines).


@dataclass(frozen=True)
class Shown:
    header: tuple[str, ...]  # header lines
    cell: Any  # Callable[[Row], list[str]]
    numeric: bool = True


def _label_columns(table: ComparisonTable) -> list[Shown]:
    cols = [Shown(("loss",), lambda r: [str(r.values["loss"])], numeric=False)]
    for k in table.config_keys:
        cols.append(Shown((k,), lambda r, k=k: [_show(r.values.get(k))], numeric=False))
    if table.aggregated:
        cols.append(Shown(("n",), lambda r: [str(r.values["n"])]))
    return cols


def shown_tables(table: ComparisonTable) -> list[tuple[str, list[Shown]]]:
    """(title, columns) of the two shown tables: accuracy and convergence; gradients."""

    def text(key: str):
        return lambda r: [cell_text(table, r, table.column(key))]

    def reach(t: float):
        def cell(r: Row) -> list[str]:
            steps = cell_text(table, r, table.column(f"steps_to_{threshold_key(t)}"))
            if steps == NOT_REACHED:
                return [steps]
            seconds = cell_text(table, r, table.column(f"seconds_to_{threshold_key(t)}"), counts=False)
            return [steps, seconds + " s"]
        return cell

    def early_late(early: str, late: str):
        return lambda r: [cell_text(table, r, table.column(early)),
                          "→ " + cell_text(table, r, table.column(late))]

    label = _label_columns(table)
    accuracy = [
        *label,
        Shown(("status",), lambda r: str(r.values["status"]).split(", "), numeric=False),
        Shown(("final", "val acc"), text("final_val_acc")),
        Shown(("best", "val acc"), text("best_val_acc")),
        Shown(("test", "acc"), text("test_acc")),
        *(Shown((f"to {threshold_key(t)}", "steps, s"), reach(t)) for t in table.thresholds),
    ]
    grads = [
        *label,
        *(Shown((f"grad {c.key.removeprefix('grad_early/').removesuffix('.weight')}",
                 "early → late"),
                early_late(c.key, c.key.replace("grad_early/", "grad_late/", 1)))
          for c in table.columns if c.key.startswith("grad_early/")),
        Shown(("dL/dz", "early → late"), early_late("logit_grad_early", "logit_grad_late")),
        Shown(("diverged", "at step"), text("diverged_at")),
    ]
    return [("accuracy and convergence", accuracy), ("gradients", grads)]


def to_rich(table: ComparisonTable, title: str = "comparison") -> list:
    """The shown tables as rich Tables (multi-line cells keep them narrow)."""
    from rich.table import Table

    caption = "mean ± sample std over seeds; n runs per row" if table.aggregated else None
    out = []
    for name, cols in shown_tables(table):
        t = Table(title=f"{title}: {name}", caption=caption, show_lines=True)
        for c in cols:
            t.add_column("\n".join(c.header), justify="right" if c.numeric else "left")
        for row in table.rows:
            t.add_row(*("\n".join(c.cell(row)) for c in cols))
        out.append(t)
    return out


def paired_to_rich(diffs: Sequence[PairedDiff], reference: str):
    from rich.table import Table

    headers = _paired_headers(diffs)
    out = Table(
        title=f"steps to threshold, paired by seed: loss - {reference}",
        caption="95% Student-t interval over seeds; not significant when it contains 0",
    )
    for h in headers:
        out.add_column(h, justify="left" if h in ("loss", "vs", "verdict") else "right")
    for d in diffs:
        out.add_row(*paired_cells(d, "vs" in headers))
    return out


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_markdown(table: ComparisonTable, diffs: Sequence[PairedDiff] = (),
                reference: str | None = None) -> str:
    """The shown tables and the paired differences as GitHub Markdown (lines joined by <br>)."""
    parts = []
    for name, cols in shown_tables(table):
        parts.append(f"**{name}**\n\n" + _md_table(
            [" ".join(c.header) for c in cols],
            (["<br>".join(c.cell(row)) for c in cols] for row in table.rows),
        ))
    text = "\n".join(parts)
    if table.aggregated:
        text += "\nmean ± sample std over seeds; n runs per row.\n"
    if diffs:
        headers = _paired_headers(diffs)
        text += (f"\n**steps to threshold, paired by seed: loss - {reference}** "
                 "(95% Student-t interval over seeds; not significant when it contains 0)\n\n")
        text += _md_table(headers, (paired_cells(d, "vs" in headers) for d in diffs))
    return text


def _raw(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def csv_fields(table: ComparisonTable) -> list[str]:
    fields: list[str] = []
    for c in table.columns:
        if table.aggregated and c.kind not in ("text", "config", "int"):
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
            out[c.key] = _show(v)
        else:
            out[c.key] = _raw(v)
    out["runs"] = ";".join(str(r.path) for r in row.records)
    return out


def to_csv(table: ComparisonTable) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_fields(table), lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        # csv writes None as an empty cell and floats by repr, which parses back exactly.
        writer.writerow(raw_row(table, row))
    return buf.getvalue()


def paired_json(d: PairedDiff) -> dict[str, Any]:
    iv = d.interval
    return {
        "loss": d.label, "reference": d.reference, "threshold": d.threshold,
        "n": d.n, "seeds": d.seeds, "diffs": d.diffs,
        "mean": iv.mean if iv else None, "sd": iv.sd if iv else None,
        "lo": iv.lo if iv else None, "hi": iv.hi if iv else None,
        "significant": iv.significant if iv else None,
        "not_reached": {"loss": d.not_reached, "reference": d.ref_not_reached},
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
    fields = ["loss", "reference", "threshold", "n", "mean", "sd", "lo", "hi", "significant",
              "verdict"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for d in diffs:
        writer.writerow(paired_json(d))
    return buf.getvalue()
