"""Comparing runs on disk (ce_lab.lab.compare_on_disk, ce_lab.comparison): table content, paired
statistics, reading run folders. tests/cli/test_compare.py drives ``ce-lab compare`` itself."""

from __future__ import annotations

import math
import statistics

import pytest

from ce_lab.comparison.build import Agg
from ce_lab.comparison.paired import paired_interval
from ce_lab.runs.record import RunFolderError, load_run
from tests.helpers import compare_json, compare_result, seeded_runs, three_loss_runs
from tests.run_factory import make_run

# --- paired differences over seeds --------------------------------------------------------------


def test_stats_against_independent_computation():
    diffs = [12.0, 7.5, 20.0, 3.25]
    iv = paired_interval(diffs)
    from scipy.stats import t  # the reference: scipy's own interval

    lo, hi = t.interval(0.95, len(diffs) - 1, loc=statistics.mean(diffs),
                        scale=statistics.stdev(diffs) / math.sqrt(len(diffs)))
    assert (iv.lo, iv.hi) == (pytest.approx(lo), pytest.approx(hi))
    one = paired_interval([5.0])
    assert one.lo is None and one.significant is None
    agg = Agg((1.0, None, 4.0, 2.5))
    assert (agg.n, agg.of) == (3, 4)
    assert agg.std == pytest.approx(statistics.stdev([1.0, 4.0, 2.5]))


# --- choosing runs, skipping bad folders --------------------------------------------------------


def test_load_run_reasons(tmp_path):
    run = make_run(tmp_path, "ce")
    record = load_run(run)
    assert record.loss == "ce" and record.seed == 0
    assert record.metrics["step"][:2] == [10.0, 20.0]
    diverged = load_run(make_run(tmp_path, "nll-manual", diverged_at=300, status="diverged"))
    assert math.isnan(diverged.metrics["loss"][-1])
    assert math.isinf(diverged.metrics["grad_norm/fc1.weight"][-1])
    (run / "metrics.csv").write_text("step,epoch\n1,1\n")
    with pytest.raises(RunFolderError, match="lacks column"):
        load_run(run)


# --- table content, from compare_on_disk as ``ce-lab compare --format json`` prints it -----------


def test_one_row_per_run_with_known_numbers(tmp_path):
    three_losses = three_loss_runs(tmp_path / "runs")
    data = compare_json(*three_losses.values())
    rows = {row["label"]: row for row in data["rows"]}
    assert list(rows) == ["ce", "mse", "hinge"]
    ce, mse, hinge = rows["ce"], rows["mse"], rows["hinge"]
    assert ce["steps_to_0.90"] == 100 and ce["steps_to_0.95"] == 300
    assert ce["seconds_to_0.90"] == pytest.approx(1.0)
    assert mse["steps_to_0.90"] == 400
    assert mse["steps_to_0.95"] is None and mse["seconds_to_0.95"] is None
    assert hinge["steps_to_0.97"] is None
    assert (ce["final_val_acc"], ce["best_val_acc"], ce["test_acc"]) == (0.9612, 0.9634, 0.9587)
    assert ce["grad_early/fc1.weight"] == 0.8 and ce["grad_late/fc2.weight"] == 0.02
    assert ce["logit_grad_early"] == 0.9 and ce["diverged_at"] is None
    assert all(r["status"] == "completed" for r in rows.values())


def test_config_columns_only_where_runs_differ(tmp_path):
    out = tmp_path / "runs"
    paths = [make_run(out, "ce", overrides={"optim.lr": 0.1}),
             make_run(out, "ce", overrides={"optim.lr": 0.5}),
             make_run(out, "mse", overrides={"optim.lr": 0.5})]
    data = compare_json(*paths)
    assert "optim.lr" in data["columns"]
    assert not any(c.startswith(("optim.momentum", "model.", "out_dir", "seed"))
                   for c in data["columns"])
    assert [r["optim.lr"] for r in data["rows"]] == [0.1, 0.5, 0.5]
    assert [r["label"] for r in data["rows"]] == ["ce optim.lr=0.1", "ce optim.lr=0.5",
                                                  "mse optim.lr=0.5"]


def test_seeds_aggregate_by_loss_and_lr(tmp_path):
    """Several seeds: one row per (loss, differing key) with mean, sample std and n."""
    out = tmp_path / "runs"
    paths = []
    for lr, steps in ((0.1, [100, 200, 150]), (0.5, [50, 50, 80])):
        for seed, s in enumerate(steps):
            paths.append(make_run(out, "ce", seed, reach={0.9: s, 0.95: None},
                                  overrides={"optim.lr": lr}))
    data = compare_json(*paths)
    assert data["aggregated"] and data["group_by"] == ["loss", "optim.lr"]
    assert "seed" not in data["columns"]
    rows = {r["label"]: r for r in data["rows"]}
    cell = rows["ce optim.lr=0.1"]["steps_to_0.90"]
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(150)
    assert cell["std"] == pytest.approx(statistics.stdev([100, 200, 150]))
    assert rows["ce optim.lr=0.5"]["n"] == 3
    assert rows["ce optim.lr=0.5"]["steps_to_0.95"]["n"] == 0  # never reached: no mean
    assert rows["ce optim.lr=0.5"]["steps_to_0.95"]["mean"] is None


# --- paired differences over seeds (ce_lab.comparison.paired) ------------------------------------

T975_DF2 = 4.302653  # Student-t 0.975 quantile, 2 degrees of freedom (statistical tables)


def independent_interval(diffs):
    n = len(diffs)
    half = T975_DF2 * statistics.stdev(diffs) / math.sqrt(n)
    return statistics.mean(diffs) - half, statistics.mean(diffs) + half


def test_paired_difference_interval_matches_t_reference(tmp_path):
    data = compare_json(group="g3", out_dir=seeded_runs(tmp_path / "runs"))
    assert data["reference"] == "ce"
    paired = {(p["loss"], p["threshold"]): p for p in data["paired"]}
    mse = paired[("mse", 0.9)]
    lo, hi = independent_interval([300, 300, 400])
    assert mse["n"] == 3 and mse["seeds"] == [0, 1, 2] and mse["diffs"] == [300, 300, 400]
    assert mse["mean"] == pytest.approx(1000 / 3)
    assert (mse["lo"], mse["hi"]) == (pytest.approx(lo, abs=1e-3), pytest.approx(hi, abs=1e-3))
    # p = 0.0099 by scipy's paired t test; the comparison tests every paired row with a p at once:
    # Holm over all of them, recomputed here.
    from scipy.stats import ttest_1samp

    assert mse["p"] == pytest.approx(ttest_1samp([300, 300, 400], 0.0).pvalue, rel=1e-12)
    tested = sorted(p["p"] for p in data["paired"] if p["p"] is not None)
    m = len(tested)
    steps = [min(1.0, (m - k) * q) for k, q in enumerate(tested)]
    holm_of = {q: max(steps[:k + 1]) for k, q in enumerate(tested)}
    assert all(p["holm_family"] == m and p["p_holm"] == pytest.approx(holm_of[p["p"]])
               for p in data["paired"] if p["p"] is not None)
    assert mse["excludes_zero"] is True and 0.0099 < mse["p_holm"] < 0.05
    assert mse["significant"] is True and mse["verdict"] == "significant"

    nll = paired[("nll-manual", 0.9)]
    lo, hi = independent_interval([50, -50, 50])
    assert (nll["lo"], nll["hi"]) == (pytest.approx(lo, abs=1e-3), pytest.approx(hi, abs=1e-3))
    assert nll["lo"] < 0 < nll["hi"] and nll["verdict"] == "not significant"
    assert nll["resolution"] == 50 and nll["resolution_limited"] is False

    # A diverged member is left out of every paired difference, and the verdict says so.
    for key in ("steps_to_0.90", "final_val_acc", "test_acc", "val_acc_auc"):
        hinge = next(p for p in data["paired"] if p["loss"] == "hinge" and p["metric"] == key)
        assert hinge["diffs"][2] is None and hinge["lo"] is None
        assert hinge["verdict"] == "hinge diverged at step 580 (loss) in 1/3 seeds"
        assert hinge["missing"] == {"loss": {"2": "diverged at step 580 (loss)"}, "reference": {}}

    # mse misses 0.95 in two seeds: a count, never a number.
    missed = paired[("mse", 0.95)]
    assert missed["mean"] is None and missed["lo"] is None and missed["hi"] is None
    assert missed["verdict"] == "mse not reached in 2/3 seeds"
    assert missed["not_reached"] == {"loss": 2, "reference": 0}


# --- what report.md says about the setting -------------------------------------------------------


def test_report_of_an_untuned_comparison_says_every_loss_shared_one_rate(tmp_path):
    from ce_lab.cli.compare_tuning import shared_lr_line
    from ce_lab.config import RunConfig

    out = tmp_path / "runs"
    shared = [make_run(out, loss, seed, overrides={"optim.lr": 0.25})
              for loss in ("ce", "mse") for seed in (0, 1)]
    report = compare_result(*shared).files["report.md"].read_text()
    line = ("every loss shares lr 0.25, which suits some losses more than others; to compare "
            "each at its own tuned rate: ce-lab compare --tune-lr")
    assert f"- learning rate: {line}\n" in report
    # the console's note after a training compare is the same sentence (one definition)
    cfg = RunConfig.model_validate({"optim": {"lr": 0.25}})
    assert shared_lr_line({0: [cfg, cfg]}) == line
    mixed = [make_run(out, "mse", s, overrides={"optim.lr": 0.5}, name=f"mse-b{s}")
             for s in (0, 1)]
    report = compare_result(shared[0], shared[1], *mixed).files["report.md"].read_text()
    assert "every loss shares lr" not in report


def test_one_seed_gives_one_line_and_no_paired_csv(tmp_path):
    out = tmp_path / "runs"
    runs = [make_run(out, loss, 0) for loss in ("ce", "mse")]
    result = compare_result(*runs)
    assert [d.n for d in result.diffs] and all(d.n == 1 for d in result.diffs)  # data kept
    assert "paired.csv" not in result.files and not (result.comp_dir / "paired.csv").exists()
    report = result.files["report.md"].read_text()
    assert ("no paired differences shown: an interval over seeds needs at least two seeds, and "
            "these runs pair one.\n") in report
    assert "paired differences by seed" not in report and "| n |" not in report.split("Results")[1]
