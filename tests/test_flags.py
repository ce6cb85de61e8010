"""summary.json's flags (stalled, chance) on constructed CSVs and on real tiny runs started
confidently wrong with model.output_gain; init gains; the saturated split; flags in the tables."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from ce_lab.config import with_overrides
from ce_lab.errors import ConfigError
from ce_lab.nn.mlp import build_model
from ce_lab.summary import CHANCE_MARGIN, STALL_GRAD_NORM, run_flags
from ce_lab.training import train, train_paired
from tests.helpers import compare_markdown
from tests.run_factory import make_run


def metric_rows(grad_totals):
    return [{"step": str(10 * (i + 1)), "grad_norm/total": repr(g)}
            for i, g in enumerate(grad_totals)]


@pytest.mark.parametrize("tail,flagged", [
    ([1e-9] * 10, True),  # the last 10% of 100 rows: 10 rows, all below the threshold
    ([1e-9] * 9, False),  # one of the last ten above it
    ([0.0] * 10, True),  # exactly zero gradients
    ([math.nan] * 10, False),  # non-finite is divergence, not a stall
])
def test_stalled_needs_the_whole_last_tenth_below_the_threshold(tail, flagged):
    grads = [0.5] * (100 - len(tail)) + tail
    assert ("stalled" in run_flags(metric_rows(grads), 0.9)) is flagged


def test_stalled_needs_gradient_columns_and_takes_at_least_one_row():
    assert run_flags([{"step": "10", "loss": "0.1"}], 0.9) == []  # log.grad_stats off: never
    assert run_flags(metric_rows([0.3, STALL_GRAD_NORM / 2]), 0.9) == ["stalled"]
    assert run_flags([], 0.9) == []


@pytest.mark.parametrize("acc,flagged", [
    (0.1, True), (0.095, True), (0.1 + CHANCE_MARGIN, True), (0.1 - CHANCE_MARGIN, True),
    (0.13, False), (0.07, False), (0.9, False), (None, False), (math.nan, False)])
def test_chance_is_the_final_validation_accuracy_near_one_in_ten(acc, flagged):
    assert ("chance" in run_flags([], acc)) is flagged


@pytest.mark.parametrize("n_classes,acc,flagged", [
    (2, 0.5, True), (2, 0.1, False), (3, 0.34, True), (3, 0.1, False), (20, 0.05, True)])
def test_chance_is_one_over_the_number_of_classes(n_classes, acc, flagged):
    assert ("chance" in run_flags([], acc, n_classes)) is flagged


# --- real runs ---------------------------------------------------------------------------------

def test_gains_scale_the_initial_weights_and_one_is_bit_identical():
    base = build_model(1, [16, 8], "relu", "default", 3)
    same = build_model(1, [16, 8], "relu", "default", 3, init_gain=1.0, output_gain=1.0)
    scaled = build_model(2, [16, 8], "relu", "default", 3, init_gain=2.0, output_gain=10.0)
    for (name, a), b, c in zip(base.named_parameters(), same.parameters(), scaled.parameters()):
        assert torch.equal(a, b), name
        factor = 20.0 if name.startswith("fc3.") else 2.0
        for member in c:  # every member starts from the same scaled weights
            torch.testing.assert_close(member, a[0] * factor, rtol=0, atol=0)


@pytest.mark.parametrize("key", ["model.init_gain", "model.output_gain"])
@pytest.mark.parametrize("value", [0, -1.0, math.inf])
def test_gains_must_be_positive_and_finite(tiny_config, key, value):
    with pytest.raises(ConfigError, match=key):
        with_overrides(tiny_config(), {key: value})


def _summary(out):
    return json.loads((out.run_dir / "summary.json").read_text())


def test_from_a_confidently_wrong_start_ce_learns_and_mse_ends_at_chance(tiny_config):
    # init_gain 10 on both layers: logits ~100x, sigmoid outputs at 0 or 1, most on the wrong
    # side; mse's gradient there is sigmoid' ~ e^-|z| while ce's d loss / d z stays p - y.
    cfg = tiny_config(**{"model.init_gain": 10.0, "train.epochs": 10})
    ce, mse = train_paired([with_overrides(cfg, {"loss.name": n}) for n in ("ce", "mse")])
    s_ce, s_mse = _summary(ce), _summary(mse)
    assert s_ce["status"] == s_mse["status"] == "completed"
    assert s_ce["flags"] == [] and s_ce["final"]["val_acc"] > 0.5
    assert "chance" in s_mse["flags"]
    with open(mse.run_dir / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    wrong, right = float(last["saturated_wrong_frac"]), float(last["saturated_right_frac"])
    assert wrong > 0.05  # outputs stuck on the wrong side
    assert wrong + right == pytest.approx(float(last["saturated_frac"]), abs=1e-6)


def test_a_saturated_start_with_zero_gradients_is_flagged_stalled(tiny_config):
    # output_gain 1000: |z| in the hundreds, sigmoid' underflows to exactly 0 in float32.
    out = train(tiny_config(**{"model.output_gain": 1000.0, "loss.name": "mse"}))
    s = _summary(out)
    assert s["status"] == "completed" and s["flags"] == ["stalled", "chance"]
    assert s["grad_summary"]["late"]["total"] < STALL_GRAD_NORM


def test_flags_of_the_wrong_type_are_a_corrupt_summary(tmp_path):
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.record import load_run

    run = make_run(tmp_path / "runs", "ce", 0)
    summary = json.loads((run / "summary.json").read_text())
    summary["flags"] = "stalled"
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunFolderError, match="flags is not a list of strings"):
        load_run(run)


def test_groups_count_their_flags_and_old_runs_have_none(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "mse", 0, flags=["stalled"])
    make_run(runs, "mse", 1)
    old = make_run(runs, "ce", 0)
    summary = json.loads((old / "summary.json").read_text())
    summary.pop("flags", None)  # a run written before flags existed (make_run omits it by default)
    (old / "summary.json").write_text(json.dumps(summary))
    make_run(runs, "ce", 1)
    md = compare_markdown(last=4, out_dir=runs)  # as ``ce-lab compare --last 4 --format markdown``
    mse_row = next(line for line in md.splitlines() if line.startswith("| mse"))
    assert "2 completed<br>flagged: 1 stalled" in mse_row
    ce_row = next(line for line in md.splitlines() if line.startswith("| ce"))
    assert "flagged" not in ce_row
