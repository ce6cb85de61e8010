"""The metric registry: every number a run logs or a comparison shows, defined once.

Why: a metric used to be named in four places (the training loop's CSV header, summary.json, the
comparison's value function, its column list and its shown tables), so adding one meant editing all
of them in step. Here each metric is one frozen record saying when it is computed, how it is
summarised, and how it is shown; the CSV headers, the comparison columns, the sort keys and the
shown tables are all derived from these lists. Torch-free: the run-folder and comparison code
import it without loading torch.

Two kinds of entry:
- ``LoggedMetric``: a column of metrics.csv (a row every ``log.log_every`` steps) or eval.csv (a row
  every ``log.eval_every`` steps and at each epoch end), with the conditions under which it exists.
- ``SummaryMetric``: one value per run, read from summary.json, that the comparison tables show.
  A metric may be parameterised (``param``): by accuracy threshold, or by weight tensor (layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ce_lab.runs.folder import threshold_key  # the one spelling of a threshold: 0.9 -> "0.90"
from ce_lab.runs.read import GRAD_WINDOWS, grad_value, grad_window
from ce_lab.step_stats import (
    accuracy,
    grad_total,
    saturated_frac,
    saturated_side,
    update_ratio,
)


class When(str, Enum):
    """When a value is computed."""

    STEP = "step"  # at every optimizer step (on the device; e.g. the divergence watch)
    LOG = "log"  # on a logged step: one metrics.csv row
    EVAL = "eval"  # on an evaluation: one eval.csv row
    END = "end"  # once, when the run ends: summary.json


# ---------------------------------------------------------------------------------------------
# Logged metrics: the CSV columns


@dataclass(frozen=True)
class LoggedMetric:
    """One column (or, with ``per_param``, one column per parameter tensor) of the run's CSVs."""

    name: str  # the column; with per_param a template, "{param}" -> "fc1.weight"
    when: tuple[When, ...]  # LOG: metrics.csv, EVAL: eval.csv (step/epoch/... are in both)
    description: str
    per_param: bool = False  # one column per parameter tensor, in model order
    grad_stats: bool = False  # exists only with log.grad_stats on
    squashes: bool = False  # exists only for losses that squash logits through a sigmoid
    # How a logged step computes it from the step (``ce_lab.training.stack.StepView``): an (M,)
    # tensor, or with per_param one per parameter tensor. None: the loop writes it (step, epoch,
    # examples, wall_s, lr) or an evaluation does (val_loss, val_acc).
    compute: Callable[[Any], Any] | None = None
    after_update: bool = False  # computed after the update: it reads the weights before and after
    # Every run writes it, but runs written before it existed lack it: readers must not require it
    added_later: bool = False

    def exists(self, grad_stats: bool, squashes: bool) -> bool:
        """Whether a run with these settings writes this column."""
        return (grad_stats or not self.grad_stats) and (squashes or not self.squashes)

    def columns(self, param_names: Sequence[str] = ()) -> list[str]:
        if self.per_param:
            return [self.name.format(param=p) for p in param_names]
        return [self.name]

    @property
    def prefix(self) -> str:
        """The column name up to its parameter: "grad_norm/" for "grad_norm/{param}"."""
        return self.name.split("{", 1)[0]


_BOTH = (When.LOG, When.EVAL)


LOGGED_METRICS: tuple[LoggedMetric, ...] = (
    LoggedMetric("step", _BOTH, "optimizer steps done (from 1)"),
    LoggedMetric("epoch", _BOTH, "the epoch of that step (from 1)"),
    LoggedMetric("examples", _BOTH, "training examples seen"),
    LoggedMetric("wall_s", _BOTH, "seconds since the run started (the only column that differs "
                 "between identical runs)"),
    LoggedMetric("lr", (When.LOG,), "learning rate used for this step"),
    LoggedMetric("loss", (When.LOG,), "loss of this step's batch", compute=lambda s: s.losses),
    LoggedMetric("acc", (When.LOG,), "accuracy of this step's batch", compute=accuracy),
    LoggedMetric("grad_norm/{param}", (When.LOG,), "L2 norm of the gradient of each parameter "
                 "tensor", per_param=True, grad_stats=True, compute=lambda s: s.grad_norms),
    LoggedMetric("grad_norm/total", (When.LOG,), "L2 norm of the whole gradient",
                 grad_stats=True, compute=grad_total),
    LoggedMetric("logit_grad_norm", (When.LOG,), "mean over the batch of the norm of the "
                 "gradient of each example's own loss with respect to its logits",
                 grad_stats=True, compute=lambda s: s.logit_grad_norm),
    LoggedMetric("update_ratio/{param}", (When.LOG,), "||dw|| / ||w|| of this step's update, "
                 "per parameter tensor", per_param=True, grad_stats=True, compute=update_ratio,
                 after_update=True),
    LoggedMetric("saturated_frac", (When.LOG,), "fraction of sigmoid outputs below 0.01 or above "
                 "0.99", grad_stats=True, squashes=True, compute=saturated_frac),
    # saturated_frac = wrong + right: whether a saturated output is stuck on the wrong side
    LoggedMetric("saturated_wrong_frac", (When.LOG,), "fraction of sigmoid outputs saturated on "
                 "the wrong side: the target's below 0.01 or a non-target's above 0.99",
                 grad_stats=True, squashes=True, compute=lambda s: saturated_side(s, True),
                 added_later=True),
    LoggedMetric("saturated_right_frac", (When.LOG,), "fraction of sigmoid outputs saturated on "
                 "the right side: the target's above 0.99 or a non-target's below 0.01",
                 grad_stats=True, squashes=True, compute=lambda s: saturated_side(s, False),
                 added_later=True),
    LoggedMetric("val_loss", (When.EVAL,), "loss on the validation split"),
    LoggedMetric("val_acc", (When.EVAL,), "accuracy on the validation split"),
    # Calibration of p = softmax(z) for every loss (ce_lab/calibration.py), on the validation split
    LoggedMetric("val_ece", (When.EVAL,), "expected calibration error on the validation split: "
                 "15 equal-width bins of the max softmax probability", added_later=True),
    LoggedMetric("val_nll", (When.EVAL,), "mean -log softmax(z)_y on the validation split",
                 added_later=True),
    LoggedMetric("val_brier", (When.EVAL,), "Brier score on the validation split: mean over "
                 "examples of sum_j (softmax(z)_j - onehot_j)^2", added_later=True),
)


def logged_metric(name: str) -> LoggedMetric:
    """The entry for a column name or template ("val_acc", "grad_norm/{param}")."""
    return next(m for m in LOGGED_METRICS if m.name == name)


def metrics_header(param_names: Sequence[str], grad_stats: bool, squashes: bool) -> list[str]:
    """metrics.csv's header for a run: parameter tensors in model order, and its settings."""
    return [c for m in LOGGED_METRICS if When.LOG in m.when and m.exists(grad_stats, squashes)
            for c in m.columns(param_names)]


def required_columns(when: When) -> list[str]:
    """Columns every metrics.csv (LOG) or eval.csv (EVAL) has, whatever the settings."""
    return [m.name for m in LOGGED_METRICS
            if when in m.when and not (m.per_param or m.grad_stats or m.squashes or m.added_later)]


EVAL_HEADER: list[str] = [c for m in LOGGED_METRICS if When.EVAL in m.when for c in m.columns()]
EVAL_ADDED_LATER: list[str] = [m.name for m in LOGGED_METRICS if When.EVAL in m.when and m.added_later]
LOG_ADDED_LATER: list[str] = [m.name for m in LOGGED_METRICS if When.LOG in m.when and m.added_later]


# ---------------------------------------------------------------------------------------------
# Summary metrics: what the comparison shows


@dataclass(frozen=True)
class Param:
    """What a parameterised metric is expanded over, and how a value fills its templates."""

    name: str
    values: Callable[[Sequence[Mapping[str, Any]]], list]  # from the runs' summaries
    fields: Callable[[Any], dict[str, str]]  # value -> template fields
    placeholder: str  # in --sort's list of valid columns when the values are not known yet


def _thresholds(summaries: Sequence[Mapping[str, Any]]) -> list[float]:
    return sorted({float(t) for s in summaries for t in s.get("thresholds") or []})


def _layers(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Weight tensors with gradient summaries (one per layer), in model order."""
    names: list[str] = []
    for s in summaries:
        for key in GRAD_WINDOWS.values():
            for name in grad_window(s, key) or {}:
                if name.endswith(".weight") and name not in names:
                    names.append(name)
    return names


THRESHOLD = Param("threshold", _thresholds, lambda t: {"t": threshold_key(t)}, "<threshold>")
LAYER = Param("layer", _layers,
              lambda name: {"layer": name, "short": name.removesuffix(".weight")}, "<param>")


@dataclass(frozen=True)
class SecondLine:
    """A companion metric shown under this one in the same cell of a shown table."""

    key: str  # template of the companion's key
    text: str = "{}"  # how its cell text is wrapped, e.g. "{} s", "→ {}"
    counts: bool = True  # add "(m/n)" when some runs of a group lack it


@dataclass(frozen=True)
class SummaryMetric:
    """One number per run, from summary.json, and how the comparison shows it.

    ``key``, ``header``, ``path``, ``shown`` and ``second`` are templates filled per parameter
    value: "{t}" is a threshold ("0.90"); "{layer}" a weight tensor ("fc1.weight"), "{short}" its
    layer ("fc1").
    """

    key: str  # csv header, json key and --sort name
    header: str  # its name as a column
    kind: str  # prints as acc (0.9612) | step (400) | seconds (4.0) | norm (0.05) | score (0.0213)
    description: str
    path: tuple[str, ...] = ()  # where it lands in summary.json
    # Instead of a path: (summary, parameter value or None) -> value, for a derived number.
    value: Callable[[Mapping[str, Any], Any], Any] | None = None
    param: Param | None = None
    when: When = When.END
    higher_is_better: bool | None = None  # None: neither (a norm, a step count of an event)
    sortable: bool = True
    paired: bool = False  # gets a difference against the reference loss, paired by seed
    needs_val: bool = False  # measured on the validation split: "not measured" without one
    # Config key whose value is the quantisation step of this metric (steps to a threshold are
    # known only at evaluations): paired differences within it are "resolution-limited".
    resolution: str | None = None
    table: str | None = "accuracy"  # shown table it is a column of; None: not a column there
    shown: tuple[str, ...] = ()  # its header lines there (default: the header)
    second: SecondLine | None = None
    group_text: str | None = None  # a group's cell instead of "mean (m/n)": {n}, {of}, {value}
    importance: int = 1  # a narrow table drops 0 first, 3 last (render/fit.py): thresholds, dL/dz

    def fields_for(self, value: Any = None) -> dict[str, str]:
        """The template fields for one parameter value ({} without a parameter)."""
        return self.param.fields(value) if self.param is not None else {}

    def read(self, summary: Mapping[str, Any], value: Any = None) -> Any:
        """The raw value in a summary (None where it is absent)."""
        if self.value is not None:
            return self.value(summary, value)
        fields = self.fields_for(value)
        node: Any = summary
        for part in self.path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(part.format(**fields))
        return node

    @property
    def missing(self) -> str:
        """What a shown table says where a run that trained normally has no value."""
        return NOT_REACHED if self.param is THRESHOLD else NONE_SHOWN


NOT_REACHED = "not reached"
NOT_MEASURED = "not measured"  # a validation metric of a run without a validation split
NONE_SHOWN = "—"

_SUMMARY: list[SummaryMetric] = [
    SummaryMetric("final_val_acc", "final val acc", "acc", "validation accuracy at the last "
                  "evaluation", ("final", "val_acc"), higher_is_better=True, paired=True,
                  needs_val=True, shown=("final", "val acc"), importance=1),
    SummaryMetric("best_val_acc", "best val acc", "acc", "highest validation accuracy of any "
                  "evaluation", ("best_val_acc",), higher_is_better=True, paired=True,
                  needs_val=True, shown=("best", "val acc"), importance=0),
    SummaryMetric("val_acc_auc", "val acc AUC", "acc", "area under validation accuracy against "
                  "examples seen (trapezoid rule over the evaluations, first to last), divided by "
                  "the examples spanned: the mean validation accuracy over training",
                  ("val_acc_auc",), higher_is_better=True, paired=True, needs_val=True,
                  shown=("val acc", "AUC"), importance=2),
    SummaryMetric("test_acc", "test acc", "acc", "accuracy on the test images (completed runs)",
                  ("final", "test_acc"), higher_is_better=True, paired=True, importance=2,
                  shown=("test", "acc")),
    SummaryMetric("steps_to_{t}", "steps to {t}", "step", "steps until validation accuracy first "
                  "reached the threshold (known at evaluations only: every log.eval_every steps "
                  "and at each epoch end)", ("convergence", "{t}", "step"), param=THRESHOLD,
                  higher_is_better=False, paired=True, needs_val=True,
                  resolution="log.eval_every", shown=("to {t}", "steps, s"),
                  second=SecondLine("seconds_to_{t}", "{} s", counts=False), importance=3),
    SummaryMetric("seconds_to_{t}", "s to {t}", "seconds", "seconds until validation accuracy "
                  "first reached the threshold", ("convergence", "{t}", "seconds"),
                  param=THRESHOLD, higher_is_better=False, needs_val=True, table=None),
    SummaryMetric("grad_early/{layer}", "grad {short} early", "norm", "mean gradient norm of the "
                  "weight tensor over the first 10% of logged steps (at least one row; the first "
                  "epoch in runs written before)", param=LAYER, table="gradients",
                  value=lambda s, layer: grad_value(s, "early", layer),
                  shown=("grad {short}", "early → late"), second=SecondLine("grad_late/{layer}", "→ {}")),
    SummaryMetric("grad_late/{layer}", "grad {short} late", "norm", "mean gradient norm of the "
                  "weight tensor over the last 10% of logged steps (at least one row; the last "
                  "epoch in runs written before)", param=LAYER, table=None,
                  value=lambda s, layer: grad_value(s, "late", layer)),
    SummaryMetric("logit_grad_early", "dL/dz early", "norm", "mean logit_grad_norm over the first "
                  "10% of logged steps (the first epoch in runs written before)",
                  value=lambda s, _: grad_value(s, "early"), table="gradients", importance=3,
                  shown=("dL/dz", "early → late"), second=SecondLine("logit_grad_late", "→ {}")),
    SummaryMetric("logit_grad_late", "dL/dz late", "norm", "mean logit_grad_norm over the last "
                  "10% of logged steps (the last epoch in runs written before)",
                  value=lambda s, _: grad_value(s, "late"), table=None),
    # Calibration on the test set (completed runs), p = softmax(z) for every loss
    SummaryMetric("test_ece", "test ECE", "score", "expected calibration error on the test images "
                  "(15 equal-width bins of the max softmax probability)", ("final", "test_ece"), importance=2,
                  higher_is_better=False, paired=True, table="calibration", shown=("test", "ECE")),
    SummaryMetric("test_nll", "test NLL", "score", "mean -log softmax(z)_y on the test images",
                  ("final", "test_nll"), higher_is_better=False, paired=True, table="calibration",
                  shown=("test", "NLL")),
    SummaryMetric("test_brier", "test Brier", "score", "Brier score on the test images: mean of "
                  "sum_j (softmax(z)_j - onehot_j)^2", ("final", "test_brier"),
                  higher_is_better=False, table="calibration", shown=("test", "Brier"), importance=0),
    SummaryMetric("diverged_at", "diverged at", "step", "the step the loss or a gradient went "
                  "non-finite", ("diverged_at",), table="gradients", shown=("diverged", "at step"),
                  group_text="{n}/{of} diverged, step {value}", importance=2),
]


def summary_metrics() -> tuple[SummaryMetric, ...]:
    """The registered summary metrics, in column order."""
    return tuple(_SUMMARY)


def summary_metric(key: str) -> SummaryMetric:
    """The entry with this key (template) — "test_acc", "steps_to_{t}"."""
    return next(m for m in _SUMMARY if m.key == key)


def register(metric: SummaryMetric) -> SummaryMetric:
    """Add a summary metric after the others; it shows up in every comparison table."""
    if any(m.key == metric.key for m in _SUMMARY):
        raise ValueError(f"metric {metric.key!r} is already registered")
    _SUMMARY.append(metric)
    return metric


def unregister(key: str) -> None:
    _SUMMARY.remove(summary_metric(key))


@dataclass(frozen=True)
class Expanded:
    """One registered metric for one parameter value: one column of a comparison."""

    metric: SummaryMetric
    value: Any = None  # the parameter's value (a threshold, a tensor name), None if none

    @property
    def fields(self) -> dict[str, str]:
        return self.metric.fields_for(self.value)

    @property
    def key(self) -> str:
        return self.metric.key.format(**self.fields)

    @property
    def header(self) -> str:
        return self.metric.header.format(**self.fields)

    @property
    def shown(self) -> tuple[str, ...]:
        return tuple(h.format(**self.fields) for h in self.metric.shown) or (self.header,)

    @property
    def second_key(self) -> str | None:
        s = self.metric.second
        return s.key.format(**self.fields) if s is not None else None

    def read(self, summary: Mapping[str, Any]) -> Any:
        return self.metric.read(summary, self.value)


def expand(values: Mapping[str, Iterable[Any]]) -> list[Expanded]:
    """Every registered metric for every value of its parameter (``values``: by param name;
    a param not given expands to nothing). Consecutive metrics over the same parameter are
    interleaved per value, so steps and seconds to 0.90 come before those to 0.95."""
    out: list[Expanded] = []
    metrics = list(_SUMMARY)
    i = 0
    while i < len(metrics):
        param = metrics[i].param
        if param is None:
            out.append(Expanded(metrics[i]))
            i += 1
            continue
        j = i
        while j < len(metrics) and metrics[j].param is param:
            j += 1
        for v in values.get(param.name, ()):
            out += [Expanded(m, v) for m in metrics[i:j]]
        i = j
    return out


def param_values(summaries: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Each parameter's values over these runs: {"threshold": [0.9, ...], "layer": [...]}."""
    params = {m.param.name: m.param for m in _SUMMARY if m.param is not None}
    return {name: p.values(summaries) for name, p in params.items()}


class _Placeholders(dict):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def __missing__(self, key: str) -> str:
        return self.text


def sort_patterns(known: Iterable[str]) -> list[tuple[str, str]]:
    """(pattern, key prefix) of the sortable parameterised metrics whose parameter values are not
    ``known`` before the runs are read: [("grad_early/<param>", "grad_early/"), ...]."""
    known = set(known)
    return [(m.key.format_map(_Placeholders(m.param.placeholder)), m.key.split("{", 1)[0])
            for m in _SUMMARY if m.param is not None and m.sortable and m.param.name not in known]
