"""Paired statistics over every paired metric: recomputed from the run files with scipy, and the
verdicts (resolution-limited, not informative, diverged, stalled, not measured)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ce_lab import metrics
from ce_lab.cli.app import app
from ce_lab.metrics import SummaryMetric
from ce_lab.runs.read import read_csv_rows
from ce_lab.summary import early_late_rows, val_acc_auc
from tests.float64_refs import numpy_calibration
from tests.run_factory import make_run

THRESHOLDS = (0.3, 0.5)
PAIRED_KEYS = ["final_val_acc", "best_val_acc", "val_acc_auc", "test_acc",
               *(f"steps_to_{t:.2f}" for t in THRESHOLDS), "test_ece", "test_nll"]


def compare(cli, *args: str):
    result = cli.invoke(app, ["compare", *args])
    assert result.exit_code == 0, result.stderr
    return result


# --- the definitions in summary.py ---------------------------------------------------------------


def test_auc_is_the_trapezoid_mean_and_windows_are_tenths():
    # (100, .5) (200, .7) (400, .9): 100 * .6 + 200 * .8 = 220 over 300 examples.
    assert val_acc_auc([100, 200, 400], [0.5, 0.7, 0.9]) == pytest.approx(220 / 300)
    assert val_acc_auc([100], [0.8]) == 0.8  # one evaluation: its accuracy
    assert val_acc_auc([], []) is None
    assert val_acc_auc([100, 200], [0.5, math.nan]) is None  # never a made-up number
    for n, k in ((1, 1), (5, 1), (10, 1), (11, 2), (30, 3), (31, 4)):
        rows = [{"step": str(i)} for i in range(n)]
        early, late = early_late_rows(rows)
        assert (len(early), len(late)) == (k, k) and early[0] is rows[0] and late[-1] is rows[-1]


# --- every interval, recomputed from the per-run files --------------------------------------------


def _independent_values(run: Path) -> dict[str, float | None]:
    """Each paired metric of one run, from its eval.csv and summary.json, without ce-lab's code."""
    evals = read_csv_rows(run / "eval.csv")
    xs = np.array([float(e["examples"]) for e in evals])
    acc = np.array([float(e["val_acc"]) for e in evals])
    final = json.loads((run / "summary.json").read_text())["final"]
    out: dict[str, float | None] = {
        "final_val_acc": float(acc[-1]), "best_val_acc": float(acc.max()),
        "val_acc_auc": float(np.trapezoid(acc, xs) / (xs[-1] - xs[0])),
        "test_acc": final["test_acc"],
    }
    # calibration: summary.json's numbers, which the test logits recompute by hand
    with np.load(run / "test_logits.npz") as npz:
        by_hand = numpy_calibration(npz["logits"], npz["labels"])
    for name in ("ece", "nll"):
        assert final[f"test_{name}"] == pytest.approx(by_hand[name], rel=1e-5, abs=1e-7)
        out[f"test_{name}"] = final[f"test_{name}"]
    for t in THRESHOLDS:
        hit = next((int(e["step"]) for e in evals if float(e["val_acc"]) >= t), None)
        out[f"steps_to_{t:.2f}"] = hit
    return out


def test_every_paired_interval_recomputed_from_run_files_with_scipy(cli, tiny_sets, tmp_path):
    out = tmp_path / "runs"
    sets = tiny_sets(f"log.thresholds=[{THRESHOLDS[0]}, {THRESHOLDS[1]}]")
    compare(cli, "--losses", "ce,mse", "--seeds", "0,1,2", "--max-steps", "30",
            "--no-plots", "--out-dir", str(out), *[a for s in sets for a in ("--set", s)])
    comp = next(out.glob("compare-*"))
    listed = json.loads((comp / "comparison.json").read_text())
    runs = {}
    for rel in listed["runs"]:
        s = json.loads((comp / rel / "summary.json").read_text())
        runs[(s["loss"], s["seed"])] = _independent_values(comp / rel)
    paired = {p["metric"]: p for p in listed["paired"]}
    assert list(paired) == PAIRED_KEYS and all(p["loss"] == "mse" for p in paired.values())
    csv_rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(
        (comp / "paired.csv").read_text()))}
    md = (comp / "table.md").read_text()

    checked = 0
    for key, p in paired.items():
        a = [runs[("mse", s)][key] for s in (0, 1, 2)]
        b = [runs[("ce", s)][key] for s in (0, 1, 2)]
        assert p["seeds"] == [0, 1, 2] and p["n"] == 3 and p["informative"] is True
        if None in a or None in b:  # a threshold not reached: a count, never a number
            assert p["lo"] is None and "not reached" in p["verdict"]
            continue
        diffs = [x - y for x, y in zip(a, b)]
        assert p["diffs"] == pytest.approx(diffs, rel=1e-12, abs=1e-15)
        sd = float(np.std(diffs, ddof=1))
        if sd == 0:  # scipy gives nan for a zero spread; the interval is the point
            assert p["lo"] == p["hi"] == pytest.approx(diffs[0])
        else:
            test = stats.ttest_rel(a, b)
            lo, hi = test.confidence_interval(0.95)
            assert (p["lo"], p["hi"]) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
            assert p["excludes_zero"] is bool(test.pvalue < 0.05)
            checked += 1
        assert p["mean"] == pytest.approx(float(np.mean(diffs)), rel=1e-12, abs=1e-15)
        # paired.csv writes the same floats by repr: equal to the digit.
        row = csv_rows[key]
        assert (float(row["lo"]), float(row["hi"]), float(row["mean"])) == (
            p["lo"], p["hi"], p["mean"])
        # table.md prints the rounded digits of the same numbers.
        fmt = "{:+.1f}" if key.startswith("steps_to_") else "{:+.4f}"
        assert f"[{fmt.format(p['lo'])}, {fmt.format(p['hi'])}]" in md
        if key.startswith("steps_to_"):
            assert p["resolution"] == 10 and row["resolution"] == "10.0"
    assert checked >= 3  # the accuracy metrics at least: real spreads, real intervals
    report = (comp / "report.md").read_text()
    assert "log.eval_every=10" in report  # the shared settings
    assert "Resolution of steps to a threshold: ±10 steps" in report
    assert "every log.eval_every = 10 steps and at each epoch end" in report


# --- verdicts ----------------------------------------------------------------------------------


def _paired(cli, out: Path, *runs: Path) -> dict[tuple[str, str], dict]:
    """The paired records of the named runs, or of group "g" under ``out``."""
    which = [*map(str, runs)] if runs else ["--group", "g", "--out-dir", str(out)]
    data = json.loads(compare(cli, *which, "--format", "json", "--no-plots").stdout)
    return {(p["loss"], p["metric"]): p for p in data["paired"]}


def test_quantised_steps_are_resolution_limited_and_two_seeds_not_informative(cli, tmp_path):
    out = tmp_path / "runs"
    # Five seeds; steps to 0.90: mse - ce = 50, 50, 100, 50, 100 (eval every 50): the t interval
    # [35.9, 104.1] excludes 0, but by less than the resolution of 50 steps.
    # Steps to 0.95: every seed differs by exactly 300: quantised agreement, not a finding.
    for seed, d in enumerate((50, 50, 100, 50, 100)):
        make_run(out, "ce", seed, reach={0.9: 100, 0.95: 200}, group="g")
        make_run(out, "mse", seed, reach={0.9: 100 + d, 0.95: 500}, group="g",
                 final_val_acc=0.90 + 0.001 * seed)
    p = _paired(cli, out)
    near = p[("mse", "steps_to_0.90")]
    assert near["excludes_zero"] is True and 0 < near["lo"] < near["resolution"] == 50
    assert near["resolution_limited"] is True and near["significant"] is False
    assert near["verdict"] == "resolution-limited"
    same = p[("mse", "steps_to_0.95")]
    assert same["lo"] == same["hi"] == 300 and same["verdict"] == "resolution-limited"
    acc = p[("mse", "final_val_acc")]  # not quantised: an ordinary, significant difference
    assert acc["resolution"] is None and acc["verdict"] == "significant" and acc["significant"]

    two = _paired(cli, out, *[r for r in sorted(out.glob("2026*"))
                              if json.loads((r / "summary.json").read_text())["seed"] < 2])
    assert two[("mse", "final_val_acc")]["verdict"] == "2 seeds: interval not informative"
    assert two[("mse", "final_val_acc")]["lo"] is not None  # still computed
    assert two[("mse", "steps_to_0.95")]["verdict"] == (
        "resolution-limited; 2 seeds: interval not informative")


def test_diverged_and_stalled_members_are_named_everywhere(cli, tmp_path):
    out = tmp_path / "runs"
    for seed in range(3):
        make_run(out, "ce", seed, reach={0.9: 100}, group="g")
        make_run(out, "mse", seed, reach={0.9: None}, group="g",
                 flags=["stalled"] if seed == 1 else [])
        make_run(out, "hinge", seed, reach={0.9: 200 if seed else None}, group="g",
                 diverged_at=150 if seed == 0 else None,
                 status="diverged" if seed == 0 else "completed")
    p = _paired(cli, out)
    assert p[("mse", "steps_to_0.90")]["verdict"] == (
        "mse not reached in 2/3 seeds; mse stalled in 1/3 seeds")
    assert p[("mse", "test_acc")]["verdict"] == "mse stalled in 1/3 seeds"
    assert p[("hinge", "val_acc_auc")]["verdict"] == (
        "hinge diverged at step 150 (loss) in 1/3 seeds")
    md = compare(cli, "--group", "g", "--out-dir", str(out), "--format", "markdown",
                 "--no-plots").stdout
    row = next(line for line in md.splitlines() if line.startswith("| hinge |"))
    assert "200 ± 0.0 (2/3 reached; diverged at step 150 (loss) (1/3))" in row
    row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    assert "not reached (2/3), stalled (1/3)" in row

    # One run per loss: the cell itself says it.
    single = [r for loss in ("ce", "hinge") for r in out.glob(f"*-{loss}-*")
              if json.loads((r / "summary.json").read_text())["seed"] == 0]
    md = compare(cli, *map(str, single), "--format", "markdown", "--no-plots").stdout
    assert "| diverged at step 150 (loss) |" in md.split("**gradients**")[0]


def test_no_validation_split_is_not_measured(cli, tmp_path):
    out = tmp_path / "runs"
    for seed in range(3):
        for loss, acc in (("ce", 0.95), ("mse", 0.90 + 0.01 * seed)):
            make_run(out, loss, seed, reach={0.9: None}, group="g", test_acc=acc,
                     overrides={"data.val_size": 0})
    p = _paired(cli, out)
    for key in ("final_val_acc", "best_val_acc", "val_acc_auc", "steps_to_0.90"):
        assert p[("mse", key)]["verdict"] == "not measured (no validation split)"
    assert p[("mse", "test_acc")]["verdict"] == "significant"  # the test set is still there
    md = compare(cli, "--group", "g", "--out-dir", str(out), "--format", "markdown",
                 "--no-plots").stdout
    row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    assert row.count("not measured") == 4 and "not reached" not in row


def test_old_run_folders_with_epoch_gradient_keys_still_compare(cli, tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", grad_early=0.7, grad_late=0.07, old_grad_keys=True)
    new = make_run(out, "mse", grad_early=0.3, grad_late=0.03)
    summary = json.loads((old / "summary.json").read_text())
    del summary["val_acc_auc"]  # runs written before it lack the key
    (old / "summary.json").write_text(json.dumps(summary))
    data = json.loads(compare(cli, str(old), str(new), "--format", "json", "--no-plots").stdout)
    ce, mse = data["rows"]
    assert (ce["grad_early/fc1.weight"], ce["grad_late/fc1.weight"]) == (0.7, 0.07)
    assert (mse["grad_early/fc1.weight"], mse["grad_late/fc1.weight"]) == (0.3, 0.03)
    assert (ce["logit_grad_early"], ce["logit_grad_late"]) == (0.9, 0.1)
    assert ce["val_acc_auc"] is None and mse["val_acc_auc"] is not None


def test_another_modules_metric_gets_paired_by_setting_paired(cli, tmp_path):
    added = metrics.register(SummaryMetric(
        "wall_seconds", "wall s", "seconds", "seconds the run took", ("wall_seconds",),
        higher_is_better=False, paired=True, table=None))
    try:
        out = tmp_path / "runs"
        for seed in range(3):
            make_run(out, "ce", seed, steps=600, group="g")
            make_run(out, "mse", seed, steps=800 + 100 * seed, group="g")
        p = _paired(cli, out)[("mse", "wall_seconds")]
    finally:
        metrics.unregister(added.key)
    assert p["diffs"] == pytest.approx([2.0, 3.0, 4.0])  # steps * 0.01 in run_factory
    lo, hi = stats.t.interval(0.95, 2, loc=3.0, scale=1.0 / math.sqrt(3))
    assert (p["lo"], p["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert p["param"] is None and p["threshold"] is None and p["verdict"] == "significant"
