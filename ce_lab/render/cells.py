"""Cell text shared by the rich and Markdown tables, and the two shown tables' layout.

The shown tables are compact: raw columns combine into multi-line cells (steps to a threshold over
the seconds it took; a gradient norm early over late), as each metric's registry entry says
(``table``, ``shown``, ``second``), so a new metric appears here without editing this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ce_lab.comparison.build import Agg, Column, ComparisonTable, Row, config_value, show
from ce_lab.comparison.missing import count_reasons, missing_reason
from ce_lab.comparison.paired import MIN_INFORMATIVE, PAIRED_CONFIDENCE, PairedDiff
from ce_lab.metrics import NONE_SHOWN, NOT_REACHED, SummaryMetric
from ce_lab.runs.record import RunRecord
from ce_lab.shown import printable

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
    """A value as the rich and markdown tables show it (``counts``: add "(m/n reached)").

    A missing value says why (``ce_lab/comparison/missing.py``): "not reached", "not measured",
    "diverged at step k (quantity)", "stalled", or "—".
    """
    v = row.values.get(col.key)
    if col.metric is None:
        if col.kind == "int":
            return str(v)
        return NONE_SHOWN if v is None else show(v)
    metric = col.metric.metric
    if not isinstance(v, Agg):
        return missing_reason(row.records[0], metric) if v is None else _fmt(v, col.kind)
    reasons = [missing_reason(r, metric) for r, x in zip(row.records, v.values) if x is None]
    if v.n == 0:
        return count_reasons(reasons, v.of)
    text = _fmt(v.mean, col.kind)
    if v.std is not None:
        text += f" ± {_fmt(v.std, 'seconds' if col.kind == 'step' else col.kind)}"
    if metric.group_text is not None:
        return metric.group_text.format(n=v.n, of=v.of, value=text)
    if v.n < v.of and counts:
        plain = metric.missing
        note = f"{v.n}/{v.of} reached" if plain == NOT_REACHED else f"{v.n}/{v.of}"
        other = [r for r in reasons if r != plain]
        text += f" ({note}; {count_reasons(other, v.of)})" if other else f" ({note})"
    return text


def has_value(row: Row, col: Column) -> bool:
    v = row.values.get(col.key)
    return v.n > 0 if isinstance(v, Agg) else v is not None


def resolution_text(records: Sequence[RunRecord], metric: SummaryMetric) -> str | None:
    """"±200 steps" for a quantised metric when the runs share its resolution; "±log.eval_every"
    when they differ (then it is a column of the table); None for an unquantised metric."""
    key = metric.resolution
    if key is None:
        return None
    values = {show(config_value(r, key)) for r in records}
    return f"±{values.pop()}{_unit(metric)}" if len(values) == 1 else f"±{key}"


def _unit(metric: SummaryMetric) -> str:
    return " steps" if metric.kind == "step" else ""


@dataclass(frozen=True)
class Shown:
    header: tuple[str, ...]  # header lines
    cell: Callable[[Row], list[str]]  # a cell is a list of lines
    numeric: bool = True
    importance: int = 2  # which a narrow terminal drops first (the metric registry's; fit.py)


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
        if second is None or second_col is None or not has_value(r, col):
            return [first]
        return [first, second.text.format(cell_text(r, second_col, counts=second.counts))]
    return cell


def _header(col: Column, records: Sequence[RunRecord]) -> tuple[str, ...]:
    """The registry's header lines, and the resolution of a quantised metric under them."""
    assert col.metric is not None
    res = resolution_text(records, col.metric.metric)
    return col.metric.shown + ((f"({res})",) if res is not None else ())
def _status_lines(r: Row) -> list[str]:
    """The status, and beside it what summary.json flagged (a run that completed at chance)."""
    lines = str(r.values["status"]).split(", ")
    flags = r.values.get("flags")
    return [*lines, f"flagged: {flags}"] if flags else lines


def shown_tables(table: ComparisonTable) -> list[tuple[str, list[Shown]]]:
    """(title, columns) of the shown tables: accuracy and convergence; gradients; calibration."""
    label = _label_columns(table)
    records = [r for row in table.rows for r in row.records]
    status = Shown(("status",), _status_lines, numeric=False, importance=3)
    out = []
    for table_id, (title, with_status) in SHOWN_TABLES.items():
        cols = [*label, *([status] if with_status else [])]
        cols += [Shown(_header(c, records), _metric_cell(table, c),
                       importance=c.metric.metric.importance)
                 for c in table.metric_columns if c.metric.metric.table == table_id]
        out.append((title, [_printable(c) for c in cols]))
    return out


def _printable(col: Shown) -> Shown:
    """``col`` showing no control character: labels, config values and reasons come from run
    folders, where a planted escape sequence must not reach the terminal."""
    return replace(col, header=tuple(printable(h) for h in col.header),
                   cell=lambda r, cell=col.cell: [printable(line) for line in cell(r)])


# Paired differences


def _diff(v: float, kind: str) -> str:
    """A signed difference in the metric's kind; a kind registered later prints 4 significant
    digits."""
    return {"acc": f"{v:+.4f}", "score": f"{v:+.4f}", "norm": f"{v:+.3g}", "step": f"{v:+.1f}",
            "seconds": f"{v:+.1f}"}.get(kind, f"{v:+.4g}")


def interval_text(d: PairedDiff) -> tuple[str, str]:
    """(mean difference, interval) as shown; no numbers when a pair has no difference."""
    if d.interval is None:
        return NONE_SHOWN, NONE_SHOWN
    kind = d.metric.metric.kind
    mean = _diff(d.interval.mean, kind)
    if d.interval.lo is None or d.interval.hi is None:
        return mean, "n=1"
    return mean, f"[{_diff(d.interval.lo, kind)}, {_diff(d.interval.hi, kind)}]"


def diff_resolution(d: PairedDiff) -> str:
    if d.resolution is None:
        return NONE_SHOWN
    return f"±{d.resolution:g}{_unit(d.metric.metric)}"


PAIRED_TITLE = "paired differences by seed"


def paired_note(diffs: Sequence[PairedDiff]) -> str:
    """What the paired table's numbers mean: the interval, the Holm correction and its family,
    the normality the t interval leans on with few seeds, the resolution of step counts."""
    family = max((d.family for d in diffs), default=0)
    few = min((d.n for d in diffs if d.p is not None), default=0)
    across = (f"Holm across all {family} rows with a p here: every loss, metric and setting of "
              "this comparison" if family else "no row has a p here")
    text = ("95% Student-t interval over seeds (unadjusted) and its two-sided p; significant when "
            f"the Holm-adjusted p ({across}) is below {1 - PAIRED_CONFIDENCE:g}, since so "
            "many correlated tests at once would find some raw interval excluding 0 by chance; below "
            f"{MIN_INFORMATIVE} seeds not informative")
    if 0 < few < NORMAL_ENOUGH:
        text += (f"; with {few} seeds the t interval leans on the per-seed differences being "
                 "normally distributed, which so few seeds cannot check")
    return text + (". Steps to a threshold are known only at evaluations (every log.eval_every "
                   "steps and at each epoch end): resolution-limited when all seeds differ by "
                   "the same step count or the interval clears 0 by less than the resolution")


NORMAL_ENOUGH = 5  # below this many seeds, the note says the t interval leans on normality
ONE_SEED = ("no paired differences shown: an interval over seeds needs at least two seeds, and "
            "these runs pair one")


def shows_paired(diffs: Sequence[PairedDiff]) -> bool:
    """Whether there is a paired table to show: some pair of groups shares at least two seeds.
    With one seed every row would say n=1 and no interval; one line (ONE_SEED) says why instead,
    and paired.csv is not written."""
    return any(d.n >= 2 for d in diffs)


def p_text(p: float | None) -> str:
    if p is None:
        return NONE_SHOWN
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# Which paired columns a narrow terminal drops first (0 first): the resolution, the raw p, n; the
# verdict goes last, after everything but vs and metric, which name the row with the loss.
PAIRED_IMPORTANCE = {"vs": 9, "metric": 9, "n": 1, "mean diff": 3, "95% interval": 2, "p": 1,
                     "p Holm": 2, "resolution": 0, "verdict": 4}


def paired_headers(diffs: Sequence[PairedDiff]) -> list[str]:
    vs = ["vs"] if len({d.reference for d in diffs}) > 1 else []
    return ["loss", *vs, "metric", "n", "mean diff", "95% interval", "p", "p Holm", "resolution",
            "verdict"]


def paired_cells(d: PairedDiff, with_vs: bool) -> list[str]:
    mean, ci = interval_text(d)
    vs = [d.reference] if with_vs else []
    return [printable(c) for c in [d.label, *vs, d.metric.header, str(d.n), mean, ci,
                                   p_text(d.p), p_text(d.p_holm), diff_resolution(d), d.verdict]]
