"""Choosing each loss's learning rate (or any swept config key) on the validation split.

The rule, written once and used by ``compare --tune-lr`` and ``compare --best-of KEY``:

- a member counts only if it completed and its summary's ``flags`` hold no "stalled": a diverged,
  failed or interrupted member, or one that stalled, says the rate is unusable, not that it scores
  low;
- a value of the key counts only if every tuning seed has a member that counts at it, and its
  score is the mean of the criterion over those seeds;
- the value with the highest score wins; an exact tie goes to the smaller value (a smaller rate is
  the safer choice, further from divergence);
- only validation numbers are read (eval.csv and the summary's final validation accuracy): the
  test split never enters the choice.

A chosen value that is the smallest or the largest value tried is "at the edge": the best may lie
outside the grid, and the caller says so.

Torch-free: it reads run records only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ce_lab.comparison.build import config_value, result_keys, show
from ce_lab.config import same
from ce_lab.errors import CeLabError, ParamError, UsageError
from ce_lab.runs.folder import Status
from ce_lab.runs.record import RunRecord
from ce_lab.summary import val_acc_auc

LR_KEY = "optim.lr"
STALLED = "stalled"  # the flag branch noise writes into summary.json "flags"


class Criterion(str, Enum):
    """What a member is scored by; every one reads the validation split only."""

    auc = "auc"
    final_val_acc = "final-val-acc"

    __str__ = str.__str__

    @property
    def column(self) -> str:
        """Its column in tuning.csv and its key in comparison.json."""
        return _COLUMNS[self]

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_COLUMNS = {Criterion.auc: "val_acc_auc", Criterion.final_val_acc: "final_val_acc"}
_DESCRIPTIONS = {
    Criterion.auc: "area under the validation-accuracy curve against examples seen, divided by "
                   "the examples it spans: the mean validation accuracy over training",
    Criterion.final_val_acc: "validation accuracy at the last evaluation",
}
DEFAULT_CRITERION = Criterion.auc


def _auc(r: RunRecord) -> float | None:
    """summary.json's val_acc_auc; for runs written before it existed, the same function over
    their eval.csv."""
    if "val_acc_auc" in r.summary:
        v = r.summary["val_acc_auc"]
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
    return val_acc_auc(r.evals.get("examples", []), r.evals.get("val_acc", []))


def _final_val_acc(r: RunRecord) -> float | None:
    v = (r.summary.get("final") or {}).get("val_acc")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


SCORERS: dict[Criterion, Callable[[RunRecord], float | None]] = {
    Criterion.auc: _auc,
    Criterion.final_val_acc: _final_val_acc,
}


class NoValidMember(CeLabError):
    """A loss has no value of the key at which every tuning seed counts: a runtime outcome."""

    exit_code = 1


@dataclass(frozen=True)
class TuningPoint:
    """One member of the tuning: a run at one value of the key, with its validation scores."""

    cell: str  # the loss (plus any other setting that tells groups apart)
    value: float  # the key's value (the learning rate)
    seed: int | None
    status: str
    excluded: str | None  # why it does not count (diverged, stalled, ...); None: it counts
    scores: dict[str, float | None]  # by criterion column
    run: str


@dataclass
class TunedCell:
    """The choice for one loss: the grid, each value's score, and the winner."""

    cell: str
    loss: str
    grid: list[float]
    criterion: Criterion
    seeds: list[int]
    scores: dict[float, float | None]  # mean score per value; None where the value is excluded
    excluded: dict[float, str]  # why a value does not count
    chosen: float
    context: dict[str, Any] = field(default_factory=dict)  # other settings of this cell

    @property
    def at_edge(self) -> bool:
        return len(self.grid) > 1 and self.chosen in (min(self.grid), max(self.grid))

    @property
    def chosen_score(self) -> float | None:
        return self.scores.get(self.chosen)


@dataclass
class Tuning:
    """The outcome of a selection: each loss's choice and every member scored."""

    key: str
    criterion: Criterion
    cells: list[TunedCell]
    points: list[TuningPoint]
    seeds: list[int]  # seeds the selection read
    eval_seeds: list[int] | None = None  # seeds the comparison reads (None: the same runs)
    widen: str = "--lr-grid"  # what the edge-of-grid warning tells the user to widen
    context_keys: list[str] = field(default_factory=list)  # settings that split a loss's cells

    def chosen(self) -> dict[str, float]:
        return {c.cell: c.chosen for c in self.cells}

    def warnings(self) -> list[str]:
        """One line per loss whose choice is at the edge of its grid."""
        return [f"best {key_name(self.key)} at the edge of the grid: widen {self.widen} "
                f"({c.cell}: {fmt_value(c.chosen)} of {fmt_value(min(c.grid))}.."
                f"{fmt_value(max(c.grid))})"
                for c in self.cells if c.at_edge]


def key_name(key: str) -> str:
    """"lr" for optim.lr, else the dotted key."""
    return "lr" if key == LR_KEY else key


def fmt_value(v: float) -> str:
    return f"{v:g}"


def shared_rate_line(rates: Iterable[Any]) -> str | None:
    """The one line an untuned comparison says (console and report.md) when every loss shares
    one learning rate, which is most of the gap between losses; None when the rates differ."""
    distinct = {fmt_value(r) if _numeric(r) is not None else None for r in rates}
    if len(distinct) != 1 or None in distinct:  # differing, or not a number (older runs lack it)
        return None
    return (f"every loss shares lr {distinct.pop()}, which suits some losses more than others; to "
            "compare each at its own tuned rate: ce-lab compare --tune-lr")


def exclusion(r: RunRecord) -> str | None:
    """Why a member does not count for selection, or None when it does."""
    if r.status != Status.COMPLETED:
        if r.status == Status.DIVERGED:
            at = r.summary.get("diverged_at")
            return f"diverged at step {at}" if at is not None else "diverged"
        return str(r.status)
    if STALLED in (r.summary.get("flags") or []):
        return STALLED
    return None


def _numeric(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def cell_of(r: RunRecord, context_keys: Sequence[str] = ()) -> str:
    """The loss, plus the settings that tell its groups apart ("mse optim.momentum=0.9")."""
    return " ".join([r.loss] + [f"{k}={show(config_value(r, k))}" for k in context_keys])


def value_of(r: RunRecord, key: str) -> float:
    value = _numeric(config_value(r, key))
    if value is None:
        raise UsageError(f"{r.path}: {key} is {config_value(r, key)!r}, not a number")
    return value


def tuning_points(records: Sequence[RunRecord], key: str,
                  context_keys: Sequence[str] = ()) -> list[TuningPoint]:
    """Each run as a point: its cell (the loss and ``context_keys``), value, status and scores."""
    return [TuningPoint(cell_of(r, context_keys), value_of(r, key), r.seed, r.status,
                        exclusion(r), {c.column: SCORERS[c](r) for c in Criterion}, str(r.path))
            for r in records]


def select(records: Sequence[RunRecord], key: str = LR_KEY,
           criterion: Criterion = DEFAULT_CRITERION, *, widen: str = "--lr-grid",
           context_keys: Sequence[str] | None = None) -> Tuning:
    """Each loss's best value of ``key`` on validation (the rule in the module docstring).

    ``context_keys``: settings besides the loss whose combinations choose separately (a batch
    that swept momentum too); None: every key that differs between the runs but the seed and
    ``key``. NoValidMember when a cell has no value that counts.
    """
    if not records:
        raise UsageError("no runs to choose from")
    if context_keys is None:
        context_keys = [k for k in result_keys(records)
                        if k not in ("loss.name", "seed", key)]
    points = tuning_points(records, key, context_keys)
    by_cell: dict[str, list[tuple[TuningPoint, RunRecord]]] = {}
    for p, r in zip(points, records):
        by_cell.setdefault(p.cell, []).append((p, r))
    seeds = sorted({p.seed for p in points if p.seed is not None})
    cells = [_choose(cell, members, criterion, context_keys) for cell, members in by_cell.items()]
    return Tuning(key, criterion, cells, points, seeds, widen=widen,
                  context_keys=list(context_keys))


def _choose(cell: str, members: list[tuple[TuningPoint, RunRecord]], criterion: Criterion,
            context_keys: Sequence[str]) -> TunedCell:
    first = members[0][1]
    grid = sorted({p.value for p, _ in members})
    seeds = sorted({p.seed for p, _ in members if p.seed is not None})
    scores: dict[float, float | None] = {}
    excluded: dict[float, str] = {}
    for v in grid:
        at = [p for p, _ in members if p.value == v]
        bad = [p for p in at if p.excluded is not None]
        values = [p.scores[criterion.column] for p in at]
        missing = bool(seeds) and {p.seed for p in at} != set(seeds)
        if bad:
            excluded[v] = "; ".join(f"seed {p.seed} {p.excluded}" for p in bad)
        elif missing:
            excluded[v] = "not run on every tuning seed"
        elif any(s is None for s in values):
            excluded[v] = f"no {criterion.column} (no validation evaluation)"
        if v in excluded:
            scores[v] = None
        else:
            scores[v] = math.fsum(values) / len(values)  # type: ignore[arg-type]
    valid = [(s, v) for v, s in scores.items() if s is not None]
    if not valid:
        reasons = ", ".join(f"{fmt_value(v)}: {excluded[v]}" for v in grid)
        raise NoValidMember(f"{cell}: no learning rate counts for selection ({reasons})")
    # Highest score; an exact tie goes to the smaller value.
    chosen = min(valid, key=lambda sv: (-sv[0], sv[1]))[1]
    context = {k: config_value(first, k) for k in context_keys}
    return TunedCell(cell, first.loss, grid, criterion, seeds, scores, excluded, chosen, context)


def check_swept(records: Sequence[RunRecord], key: str) -> None:
    """ParamError unless ``key`` is a config key that takes several values among ``records``."""
    values = [config_value(r, key) for r in records]
    if all(v is None for v in values):
        raise ParamError(f"«best_of» {key}: not a config key of these runs (e.g. optim.lr)")
    distinct = {same(v) for v in values}
    if len(distinct) < 2:
        raise ParamError(f"«best_of» {key}: the runs did not sweep it (every run has "
                         f"{key}={show(values[0])}); name a key the batch's grid varies")


def chosen_records(records: Sequence[RunRecord], tuning: Tuning) -> list[RunRecord]:
    """The runs at each cell's chosen value (all their seeds, tuning seeds or others)."""
    chosen = tuning.chosen()
    return [r for r in records
            if chosen.get(cell_of(r, tuning.context_keys)) == value_of(r, tuning.key)]


def to_json(tuning: Tuning) -> dict[str, Any]:
    """comparison.json's ``tuned``: per loss, the grid, the criterion, the chosen value, scores."""
    out: dict[str, Any] = {}
    for c in tuning.cells:
        out[c.cell] = {
            "loss": c.loss,
            "key": tuning.key,
            "grid": c.grid,
            "criterion": c.criterion.value,
            "criterion_column": c.criterion.column,
            "chosen": c.chosen,
            "chosen_score": c.chosen_score,
            "scores": {fmt_value(v): s for v, s in c.scores.items()},
            "excluded": {fmt_value(v): why for v, why in c.excluded.items()},
            "at_edge": c.at_edge,
            "tuning_seeds": c.seeds,
            "eval_seeds": tuning.eval_seeds,
            "context": c.context,
        }
    return out
