"""Cell text shared by the rich and Markdown tables, and the two shown tables' layout.

The shown tables are compact: raw columns combine into multi-line cells (steps to a threshold over
the seconds it took; a gradient norm early over late), as each metric's registry entry says
(``table``, ``shown``, ``second``), so a new metric appears here without editing this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ce_lab.compare.build import Agg, Column, ComparisonTable, Row, show
from ce_lab.compare.paired import PairedDiff
from ce_lab.metrics import NONE_SHOWN, NOT_REACHED, threshold_key

# The shown tables: registry ``table`` id -> title, and whether the run status is a column.
SHOWN_TABLES = {"accuracy": ("accuracy and convergence", True), "gradients": ("gradients", False),
                "calibration": ("calibration (test set, p = softmax(z))", False)}


def _fmt(v: float, kind: str) -> str:
    if kind in ("int", "step"):
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    if kind in ("acc", "score"):
        return f"{v:.4f}"
    if kind == "seconds":
        return f"{v:.1f}"
    if kind == "norm":
        return f"{v:.3g}"
    return str(v)


def cell_text(row: Row, col: Column, counts: bool = True) -> str:
    """A value as the rich and markdown tables show it (``counts``: add "(m/n reached)")."""
    v = row.values.get(col.key)
    if col.metric is None:
        if col.kind == "int":
            return str(v)
        return NONE_SHOWN if v is None else show(v)
    metric = col.metric.metric
    missing = metric.missing
    if not isinstance(v, Agg):
        return missing if v is None else _fmt(v, col.kind)
    if v.n == 0:
        return missing
    text = _fmt(v.mean, col.kind)
    if v.std is not None:
        text += f" ± {_fmt(v.std, 'seconds' if col.kind == 'step' else col.kind)}"
    if metric.group_text is not None:
        return metric.group_text.format(n=v.n, of=v.of, value=text)
    if v.n < v.of and counts:
        text += f" ({v.n}/{v.of} reached)" if missing == NOT_REACHED else f" ({v.n}/{v.of})"
    return text


@dataclass(frozen=True)
class Shown:
    header: tuple[str, ...]  # header lines
    cell: Callable[[Row], list[str]]  # a cell is a list of lines
    numeric: bool = True


def _label_columns(table: ComparisonTable) -> list[Shown]:
    cols = [Shown(("loss",), lambda r: [str(r.values["loss"])], numeric=False)]
    for k in table.config_keys:
        cols.append(Shown((k,), lambda r, k=k: [show(r.values.get(k))], numeric=False))
    if table.aggregated:
        cols.append(Shown(("n",), lambda r: [str(r.values["n"])]))
    return cols


def _metric_cell(table: ComparisonTable, col: Column) -> Callable[[Row], list[str]]:
    assert col.metric is not None
    second = col.metric.metric.second
    second_col = table.column(col.metric.second_key) if second is not None else None

    def cell(r: Row) -> list[str]:
        first = cell_text(r, col)
        if second is None or second_col is None or first == NOT_REACHED:
            return [first]
        return [first, second.text.format(cell_text(r, second_col, counts=second.counts))]
    return cell


def _status_lines(r: Row) -> list[str]:
    """The status, and beside it what summary.json flagged (a run that completed at chance)."""
    lines = str(r.values["status"]).split(", ")
    flags = r.values.get("flags")
    return [*lines, f"flagged: {flags}"] if flags else lines


def shown_tables(table: ComparisonTable) -> list[tuple[str, list[Shown]]]:
    """(title, columns) of the shown tables: accuracy and convergence; gradients; calibration."""
    label = _label_columns(table)
    status = Shown(("status",), _status_lines, numeric=False)
    out = []
    for table_id, (title, with_status) in SHOWN_TABLES.items():
        cols = [*label, *([status] if with_status else [])]
        cols += [Shown(c.metric.shown, _metric_cell(table, c))
                 for c in table.metric_columns if c.metric.metric.table == table_id]
        out.append((title, cols))
    return out


# Paired differences


def interval_text(d: PairedDiff) -> tuple[str, str]:
    """(mean difference, interval) as shown; no numbers when a pair did not reach the threshold."""
    if d.interval is None:
        return NONE_SHOWN, NONE_SHOWN
    mean = f"{d.interval.mean:+.1f}"
    if d.interval.lo is None:
        return mean, "n=1"
    return mean, f"[{d.interval.lo:+.1f}, {d.interval.hi:+.1f}]"


PAIRED_TITLE = "steps to threshold, paired by seed"  # the one paired metric today: steps_to_{t}
PAIRED_NOTE = "95% Student-t interval over seeds; not significant when it contains 0"


def paired_headers(diffs: Sequence[PairedDiff]) -> list[str]:
    vs = ["vs"] if len({d.reference for d in diffs}) > 1 else []
    return ["loss", *vs, "threshold", "n", "mean diff (steps)", "95% interval", "verdict"]


def paired_cells(d: PairedDiff, with_vs: bool) -> list[str]:
    mean, ci = interval_text(d)
    vs = [d.reference] if with_vs else []
    return [d.label, *vs, threshold_key(d.threshold), str(d.n), mean, ci, d.verdict]
