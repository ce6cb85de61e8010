"""Calibration (ECE, NLL, Brier) against numpy written here from the definitions, and what a run
writes: eval.csv's val_* columns, summary.json's final test_* values, RUN/test_logits.npz."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from ce_lab.config import with_overrides
from ce_lab.metrics import EVAL_HEADER
from ce_lab.training import train, train_paired
from tests import conftest
from tests.float64_refs import numpy_calibration
from tests.helpers import OLD_EVAL_HEADER, rows


def test_chunk_sums_and_finish_against_numpy():
    from ce_lab.calibration import chunk_sums, finish

    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 500, 10, generator=gen) * torch.tensor([0.3, 2.0, 8.0]).view(3, 1, 1)
    y = torch.randint(0, 10, (500,), generator=gen)
    # two chunks added in float64, as an evaluation does
    sums = (chunk_sums(logits[:, :200], y[:200]).double()
            + chunk_sums(logits[:, 200:], y[200:]).double())
    values, tables = finish(sums, 500)
    for k in range(3):
        want = numpy_calibration(logits[k].numpy(), y.numpy())
        for name in ("ece", "nll", "brier"):
            assert values[k][name] == pytest.approx(want[name], rel=1e-5, abs=1e-7), (k, name)
        assert sum(tables[k].count) == 500 and len(tables[k].count) == 15
    # near-uniform logits (scale 0.3): every confidence below 4/15, the last bins empty
    assert tables[0].count[4:] == [0] * 11 and tables[0].confidence[14] is None


def test_hand_computed_ece():
    from ce_lab.calibration import bin_index, chunk_sums, finish

    # two examples: confidences e^2/(e^2+1) = 0.881 (bin 13 from 0, correct) and 0.5 (bin 7, wrong)
    logits = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]])
    y = torch.tensor([0, 1])  # a tie predicts class 0: wrong
    values, tables = finish(chunk_sums(logits, y).double(), 2)
    c = np.exp(2) / (np.exp(2) + 1)
    assert values[0]["ece"] == pytest.approx(((1 - c) + 0.5) / 2, rel=1e-6)
    assert values[0]["nll"] == pytest.approx((-np.log(c) - np.log(0.5)) / 2, rel=1e-6)
    assert values[0]["brier"] == pytest.approx((2 * (1 - c) ** 2 + 2 * 0.25) / 2, rel=1e-6)
    assert tables[0].count[13] == 1 and tables[0].count[7] == 1 and tables[0].accuracy[7] == 0.0
    # bin edges: (m-1)/15 < conf <= m/15
    assert bin_index(torch.tensor([1 / 15, 1 / 15 + 1e-6, 1.0, 0.5])).tolist() == [0, 1, 14, 7]


def test_a_run_writes_calibration_and_test_logits_that_recompute_by_hand(cfg, data):  # noqa: F811
    outcome = train(cfg, data=data)
    d = outcome.run_dir
    header = next(csv.reader(open(d / "eval.csv")))
    assert header == EVAL_HEADER == [*OLD_EVAL_HEADER, "val_ece", "val_nll", "val_brier"]
    evals = rows(d / "eval.csv")
    for r in evals:
        assert 0 <= float(r["val_ece"]) <= 1 and float(r["val_nll"]) > 0
        assert 0 <= float(r["val_brier"]) <= 2
    summary = json.loads((d / "summary.json").read_text())
    final = summary["final"]
    assert final["val_ece"] == float(evals[-1]["val_ece"])
    # ce's val_loss is the NLL under softmax: two computations of one number
    assert final["val_nll"] == pytest.approx(final["val_loss"], rel=1e-5)

    with np.load(d / "test_logits.npz") as npz:
        assert set(npz.files) == {"logits", "labels"}
        logits, labels = npz["logits"], npz["labels"]
    assert logits.dtype == np.float32 and logits.shape == (data.test_x.shape[0], 10)
    assert labels.dtype == np.int64 and np.array_equal(labels, data.test_y.cpu().numpy())
    assert (logits.argmax(1) == labels).mean() == pytest.approx(final["test_acc"], abs=1e-12)
    want = numpy_calibration(logits, labels)
    for name in ("ece", "nll", "brier"):
        assert final[f"test_{name}"] == pytest.approx(want[name], rel=1e-5, abs=1e-7), name
    rel = summary["test_reliability"]
    assert rel["bins"] == 15 and sum(rel["count"]) == len(labels)


def test_the_logits_of_a_fused_member_are_its_lone_runs(cfg, data):  # noqa: F811
    cfgs = [with_overrides(cfg, {"loss.name": n}) for n in ("ce", "mse", "focal")]
    fused = train_paired(cfgs, data=data)
    exact = conftest.stack_trains_exactly(cfgs, data)  # else the weights differ in the last bits
    for c, out in zip(cfgs, fused):
        alone = train(c, data=data)
        a, b = np.load(out.run_dir / "test_logits.npz"), np.load(alone.run_dir / "test_logits.npz")
        if exact:
            assert np.array_equal(a["logits"], b["logits"])
            cols = ("val_ece", "val_nll", "val_brier")
            got = [[r[k] for k in cols] for r in rows(out.run_dir / "eval.csv")]
            assert got == [[r[k] for k in cols] for r in rows(alone.run_dir / "eval.csv")]
            assert out.summary["final"] == alone.summary["final"]
        else:  # float32 rounding, grown over the run
            np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-3, atol=1e-4)


def test_a_run_that_does_not_complete_saves_no_test_logits(cfg, data):  # noqa: F811
    out = train(with_overrides(cfg, {"loss.name": "nll-manual", "optim.lr": 200.0}), data=data)
    assert out.status == "diverged"
    assert not (out.run_dir / "test_logits.npz").exists()
    final = out.summary["final"]
    assert final["test_ece"] is None and final["test_nll"] is None and final["test_brier"] is None
    assert out.summary["test_reliability"] is None


def test_the_rule_names_sparsemax_only_where_a_sparsemax_run_is_shown():
    from ce_lab.calibration import RULE, rule

    assert rule(["ce", "mse", "gce"]) == RULE  # every earlier comparison's report, unchanged
    assert rule(iter(["ce", "sparsemax", "sparsemax"])) == RULE.replace(
        "every loss;", "every loss (sparsemax: sparsemax(z));")
