"""The comparison table as data: one row per run, or per group of seeds, with raw values.

Which metric columns exist, how a run's value is read and which names --sort accepts all come from
the metric registry (ce_lab/metrics.py); this module only groups runs and aggregates over seeds.
Raw values are never rounded, so renderings parse back to what the runs wrote. A threshold a run
never reached has no number: None here (the renderers say "not reached").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ce_lab import metrics as registry
from ce_lab.config import NON_RESULT_KEYS, differing_keys, flatten, same
from ce_lab.config_keys import shown
from ce_lab.errors import ParamError, UsageError
from ce_lab.metrics import Expanded
from ce_lab.runs.record import RunRecord

STATUS_ORDER = ("completed", "diverged", "interrupted", "failed")
LABEL_KEYS = ["run", "loss", "seed", "n", "status", "flags"]  # sortable columns, not metrics


@dataclass(frozen=True)
class Agg:
    """One metric over the runs of a group: ``values`` holds None where a run has no value."""

    values: tuple[float | None, ...]

    @property
    def present(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def n(self) -> int:
        """Runs with a value."""
        return len(self.present)

    @property
    def of(self) -> int:
        """Runs in the group."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        vals = self.present
        return math.fsum(vals) / len(vals) if vals else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None below two values."""
        vals = self.present
        if len(vals) < 2:
            return None
        m = math.fsum(vals) / len(vals)
        return math.sqrt(math.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1))


@dataclass(frozen=True)
class Column:
    key: str  # csv header, json key and --sort name
    header: str  # its name as a column
    kind: str  # text | config | int, or a metric's kind (acc | step | seconds | norm)
    metric: Expanded | None = None  # the registry entry behind a metric column


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
    params: dict[str, list] = field(default_factory=dict)  # each metric parameter's values

    def column(self, key: str) -> Column:
        # A dict, not a scan: every metric cell asks for its companion column, so a scan made a
        # table of thousands of columns (one per threshold) quadratic.
        index = self.__dict__.get("_by_key")
        if index is None or index[0] != len(self.columns):
            by_key: dict[str, Column] = {}
            for c in self.columns:
                by_key.setdefault(c.key, c)  # the first of a key, as the scan found it
            index = self.__dict__["_by_key"] = (len(self.columns), by_key)
        return index[1][key]

    @property
    def metric_columns(self) -> list[Column]:
        return [c for c in self.columns if c.metric is not None]


# ---------------------------------------------------------------------------------------------
# Config keys


def result_keys(records: Sequence[RunRecord]) -> list[str]:
    """The dotted config keys that differ between the runs and may change a result."""
    return differing_keys([r.config for r in records], ignore=NON_RESULT_KEYS)


def config_value(record: RunRecord, key: str) -> Any:
    if key == "loss":
        return record.loss
    return flatten(record.config).get(key)


show = shown  # a config value as text: lists as [a, b]


# ---------------------------------------------------------------------------------------------
# Metric values


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


def metric_columns(params: dict[str, list]) -> list[Column]:
    """One column per registered metric and parameter value, in registry order."""
    return [Column(e.key, e.header, e.metric.kind, e) for e in registry.expand(params)]


def run_metrics(r: RunRecord, columns: Sequence[Column]) -> dict[str, float | None]:
    """The numbers of one run, keyed by column (None: not available / not reached)."""
    return {c.key: _num(c.metric.read(r.summary)) for c in columns if c.metric is not None}


def static_sort_keys(thresholds: Sequence[float]) -> list[str]:
    """Column names valid whatever the runs turn out to be (for checking --sort early)."""
    return LABEL_KEYS + [c.key for c in metric_columns({"threshold": list(thresholds)})
                         if c.metric is not None and c.metric.metric.sortable]


def check_sort_key(sort: str, thresholds: Sequence[float], extra: Sequence[str] = ()) -> None:
    """ParamError (exit 2) listing the valid columns unless ``sort`` names one."""
    from ce_lab.config import RunConfig, to_dict

    key = sort.removeprefix("-")
    shown = static_sort_keys(thresholds)
    patterns = registry.sort_patterns(["threshold"])
    valid = {*shown, *extra, *flatten(to_dict(RunConfig()))}
    if key in valid or key.startswith(tuple(prefix for _, prefix in patterns)):
        return
    listed = ", ".join(dict.fromkeys([*shown, *(p for p, _ in patterns), *extra]))
    raise ParamError(
        f"unknown «sort» column {key!r}; valid columns: {listed}, or a config key "
        "(prefix - for descending)"
    )


# ---------------------------------------------------------------------------------------------
# Building


def _status_summary(records: Iterable[RunRecord]) -> str:
    counts = Counter(r.status for r in records)
    order = sorted(counts, key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER else 9, s))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def _flag_summary(records: Iterable[RunRecord]) -> str:
    """summary.json's flags over a group: "1 stalled, 2 chance"; "" when no run has one."""
    counts = Counter(f for r in records for f in dict.fromkeys(r.flags))
    return ", ".join(f"{counts[f]} {f}" for f in sorted(counts))


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
    params = registry.param_values([r.summary for r in records])
    thresholds = params.get("threshold", [])
    differ = [k for k in result_keys(records) if k != "loss.name"]
    if group_by is None:
        keys = ["loss"] + [k for k in differ if k != "seed"]
    else:
        keys = ["loss"] + [k for k in group_by if k not in ("loss", "loss.name")]

    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(tuple(same(config_value(r, k)) for k in keys), []).append(r)
    aggregated = any(len(g) > 1 for g in groups.values())
    for members in groups.values():
        check_one_run_per_seed(members)
    metric_cols = metric_columns(params)

    rows: list[Row] = []
    if aggregated:
        config_keys = keys[1:]
        columns = [Column("loss", "loss", "text")]
        columns += [Column(k, k, "config") for k in config_keys]
        columns += [Column("n", "n", "int"), Column("status", "status", "text"),
                    Column("flags", "flags", "text")]
        columns += metric_cols
        for members in groups.values():
            members.sort(key=lambda r: (r.seed is None, r.seed or 0))
            first = members[0]
            values: dict[str, Any] = {"loss": first.loss, "n": len(members)}
            values.update({k: config_value(first, k) for k in config_keys})
            values["status"] = _status_summary(members)
            values["flags"] = _flag_summary(members)
            per_run = [run_metrics(r, metric_cols) for r in members]
            for c in metric_cols:
                values[c.key] = Agg(tuple(m[c.key] for m in per_run))
            label = " ".join(
                [first.loss] + [f"{k}={show(config_value(first, k))}" for k in config_keys]
            )
            rows.append(Row(label, list(members), values))
    else:
        config_keys = differ
        columns = [Column("run", "run", "text"), Column("loss", "loss", "text")]
        columns += [Column(k, k, "config") for k in config_keys]
        columns += [Column("status", "status", "text"), Column("flags", "flags", "text")]
        columns += metric_cols
        for r in records:
            values = {"run": r.run_id, "loss": r.loss, "status": r.status,
                      "flags": ", ".join(r.flags)}
            values.update({k: config_value(r, k) for k in config_keys})
            values.update(run_metrics(r, metric_cols))
            extra = [f"{k}={show(config_value(r, k))}" for k in keys[1:]]
            rows.append(Row(" ".join([r.loss, *extra]), [r], values))

    table = ComparisonTable(columns, rows, aggregated, keys, thresholds, config_keys,
                            params=params)
    if sort:
        sort_rows(table, sort)
    return table


def check_one_run_per_seed(members: Sequence[RunRecord]) -> None:
    """A cell (one loss and config) holds each seed once: paired differences and means over seeds
    would otherwise keep one of the two silently. UsageError (exit 2) naming both runs."""
    seen: dict[Any, RunRecord] = {}
    for r in members:
        if r.seed in seen:
            raise UsageError(
                f"runs {seen[r.seed].path} and {r.path} have the same loss ({r.loss}), config "
                f"and seed ({r.seed}): a comparison holds each seed once per loss and config; "
                "name only one of them")
        seen[r.seed] = r


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
        return (0, v, "") if isinstance(v, (int, float)) else (1, 0, show(v))

    table.rows = sorted(present, key=order, reverse=descending) + absent
