"""The metric registry: the CSV headers it derives, and the consistency of its entries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ce_lab import metrics
from ce_lab.metrics import EVAL_HEADER, When, metrics_header, threshold_key
from ce_lab.render.cells import SHOWN_TABLES
from tests import conftest

PARAMS = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
BASE = ["step", "epoch", "examples", "wall_s", "lr", "loss", "acc"]
# The documented column order (docs/files.md, "metrics.csv").
GRADS = ([f"grad_norm/{p}" for p in PARAMS] + ["grad_norm/total", "logit_grad_norm"]
         + [f"update_ratio/{p}" for p in PARAMS])


@pytest.mark.parametrize(("grad_stats", "squashes", "expected"), [
    (False, False, BASE),
    (False, True, BASE),  # saturated_frac is a gradient statistic: off with grad_stats off
    (True, False, BASE + GRADS),
    (True, True, BASE + GRADS + ["saturated_frac", "saturated_wrong_frac",
                                 "saturated_right_frac"]),
])
def test_metrics_header_in_documented_order(grad_stats, squashes, expected):
    assert metrics_header(PARAMS, grad_stats, squashes) == expected


def test_eval_header_and_required_columns_match_the_reader():
    from ce_lab.runs.record import EVAL_REQUIRED, METRICS_REQUIRED

    assert EVAL_HEADER == ["step", "epoch", "examples", "wall_s", "val_loss", "val_acc",
                           "val_ece", "val_nll", "val_brier"]
    assert list(METRICS_REQUIRED) == ["step", "epoch", "examples", "wall_s", "lr", "loss", "acc"]
    # the calibration columns came later: a run written before them is still read
    assert list(EVAL_REQUIRED) == EVAL_HEADER[:6]


def test_every_logged_metric_is_described_and_the_step_computes_the_statistics():
    written_by_the_loop = {"step", "epoch", "examples", "wall_s", "lr", "val_loss", "val_acc",
                           "val_ece", "val_nll", "val_brier"}  # the last three by an evaluation
    for m in metrics.LOGGED_METRICS:
        assert m.description and m.when
        assert set(m.when) <= {When.LOG, When.EVAL}
        assert (m.compute is None) == (m.name in written_by_the_loop), m.name


def test_threshold_key_is_two_decimals():
    assert [threshold_key(t) for t in (0.9, 0.95, 0.999, 1.0)] == ["0.90", "0.95", "1.00", "1.00"]


def test_summary_entries_are_consistent():
    registered = metrics.summary_metrics()
    keys = [m.key for m in registered]
    assert len(keys) == len(set(keys))
    for m in registered:
        assert m.kind in ("acc", "step", "seconds", "norm", "score") and m.when is When.END
        assert m.table is None or m.table in SHOWN_TABLES
        assert (m.path == ()) != (m.value is None)  # exactly one way to read it
        if m.second is not None:  # the companion is registered, over the same parameter
            companion = metrics.summary_metric(m.second.key)
            assert companion.param is m.param and companion.table is None


def test_expand_interleaves_parameter_values_and_reads_summaries():
    cols = metrics.expand({"threshold": [0.9, 0.95], "layer": ["fc1.weight"]})
    keys = [c.key for c in cols]
    assert keys[:4] == ["final_val_acc", "best_val_acc", "val_acc_auc", "test_acc"]
    assert keys[4:8] == ["steps_to_0.90", "seconds_to_0.90", "steps_to_0.95", "seconds_to_0.95"]
    assert keys[8:10] == ["grad_early/fc1.weight", "grad_late/fc1.weight"]
    summary = {"convergence": {"0.90": {"step": 100, "seconds": 1.5}, "0.95": None},
               "grad_summary": None, "final": {"val_acc": 0.9}}
    by_key = {c.key: c.read(summary) for c in cols}
    assert by_key["steps_to_0.90"] == 100 and by_key["seconds_to_0.90"] == 1.5
    assert by_key["steps_to_0.95"] is None and by_key["grad_early/fc1.weight"] is None
    assert by_key["final_val_acc"] == 0.9 and by_key["test_acc"] is None


def test_a_metric_can_be_a_function_of_the_summary():
    per_epoch = metrics.SummaryMetric(
        "steps_per_{t}", "steps per {t}", "step", "a derived number", param=metrics.THRESHOLD,
        value=lambda s, t: s["steps"] * t)
    assert metrics.Expanded(per_epoch, 0.5).read({"steps": 10}) == 5
    assert per_epoch.fields_for(0.5) == {"t": "0.50"}


def test_register_refuses_a_duplicate_key():
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(metrics.summary_metric("test_acc"))


def test_registry_and_comparison_table_do_not_import_torch():
    code = ("import sys, ce_lab.metrics, ce_lab.summary, ce_lab.comparison.build, "
            "ce_lab.comparison.paired, ce_lab.render.data; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_training_loop_writes_the_registrys_headers():
    from ce_lab.training import members

    assert members.metric_header is metrics_header and members.EVAL_HEADER is EVAL_HEADER


def test_a_logged_metric_is_one_definition(cfg, data, monkeypatch):  # noqa: F811
    """A new metrics.csv column: one LoggedMetric with its compute function, nothing else."""
    import csv

    import torch

    from ce_lab.config import with_overrides
    from ce_lab.metrics import LoggedMetric
    from ce_lab.training import train, train_paired

    largest = LoggedMetric("logit_max", (When.LOG,), "largest logit of the batch",
                           compute=lambda s: s.logits.amax((-1, -2)))
    monkeypatch.setattr(metrics, "LOGGED_METRICS", (*metrics.LOGGED_METRICS, largest))
    cfg = with_overrides(cfg, {"train.max_steps": 10, "train.epochs": 0})
    lone = train(cfg, data=data)
    fused = train_paired([cfg, with_overrides(cfg, {"loss.name": "mse"})], data=data)
    rows = list(csv.DictReader((lone.run_dir / "metrics.csv").open()))
    assert list(rows[0])[-1] == "logit_max" and len(rows) == 2
    got = [r["logit_max"] for r in csv.DictReader((fused[0].run_dir / "metrics.csv").open())]
    if conftest.stack_trains_exactly([cfg, with_overrides(cfg, {"loss.name": "mse"})], data):
        assert got == [r["logit_max"] for r in rows]
    else:
        assert [float(v) for v in got] == pytest.approx([float(r["logit_max"]) for r in rows], rel=1e-5)
    assert all(torch.isfinite(torch.tensor(float(r["logit_max"]))) for r in rows)


def test_saturated_outputs_split_into_wrong_and_right_sides():
    import torch

    from ce_lab.training.stack import StepView

    # sigmoid(10) > 0.99, sigmoid(-10) < 0.01, sigmoid(0) = 0.5; targets 0 and 2, three classes.
    logits = torch.tensor([[[10.0, -10.0, 10.0],  # target right, non-target right, non-target wrong
                            [-10.0, 0.0, -10.0]]])  # non-target right, unsaturated, target wrong
    view = StepView(logits, torch.tensor([0, 2]), torch.zeros(1), torch.zeros_like(logits), [],
                    members=1, logit_grad_norm=torch.zeros(1))
    wrong = metrics.logged_metric("saturated_wrong_frac").compute(view)
    right = metrics.logged_metric("saturated_right_frac").compute(view)
    total = metrics.logged_metric("saturated_frac").compute(view)
    assert (wrong * 6).tolist() == [2.0] and (right * 6).tolist() == [3.0]
    assert (total * 6).tolist() == [5.0]
