"""Paired statistics over every paired metric: the definitions in summary.py and the verdicts
(resolution-limited, not informative, diverged, stalled, not measured), from compare_on_disk as
``ce-lab compare`` prints them. tests/cli/test_compare.py recomputes every interval of a real
comparison from the run files with scipy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from ce_lab import metrics
from ce_lab.comparison.paired import holm, paired_interval
from ce_lab.metrics import SummaryMetric
from ce_lab.summary import early_late_rows, val_acc_auc
from tests.helpers import compare_json, compare_markdown
from tests.run_factory import make_run

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


# --- verdicts ----------------------------------------------------------------------------------


def _paired(out: Path, *runs: Path) -> dict[tuple[str, str], dict]:
    """The paired records of the named runs, or of group "g" under ``out``."""
    data = compare_json(*runs) if runs else compare_json(group="g", out_dir=out)
    return {(p["loss"], p["metric"]): p for p in data["paired"]}


def test_quantised_steps_are_resolution_limited_and_two_seeds_not_informative(tmp_path):
    out = tmp_path / "runs"
    # Five seeds; steps to 0.90: mse - ce = 50, 50, 100, 50, 100 (eval every 50): the t interval
    # [35.9, 104.1] excludes 0, but by less than the resolution of 50 steps.
    # Steps to 0.95: every seed differs by exactly 300: quantised agreement, not a finding.
    for seed, d in enumerate((50, 50, 100, 50, 100)):
        make_run(out, "ce", seed, reach={0.9: 100, 0.95: 200}, group="g")
        make_run(out, "mse", seed, reach={0.9: 100 + d, 0.95: 500}, group="g",
                 final_val_acc=0.90 + 0.001 * seed)
    p = _paired(out)
    near = p[("mse", "steps_to_0.90")]
    assert near["excludes_zero"] is True and 0 < near["lo"] < near["resolution"] == 50
    assert near["resolution_limited"] is True and near["significant"] is False
    assert near["verdict"] == "resolution-limited"
    same = p[("mse", "steps_to_0.95")]
    assert same["lo"] == same["hi"] == 300 and same["verdict"] == "resolution-limited"
    acc = p[("mse", "final_val_acc")]  # not quantised: an ordinary, significant difference
    assert acc["resolution"] is None and acc["verdict"] == "significant" and acc["significant"]

    two = _paired(out, *[r for r in sorted(out.glob("2026*"))
                              if json.loads((r / "summary.json").read_text())["seed"] < 2])
    assert two[("mse", "final_val_acc")]["verdict"] == "2 seeds: interval not informative"
    assert two[("mse", "final_val_acc")]["lo"] is not None  # still computed
    assert two[("mse", "steps_to_0.95")]["verdict"] == (
        "resolution-limited; 2 seeds: interval not informative")


def test_diverged_and_stalled_members_are_named_everywhere(tmp_path):
    out = tmp_path / "runs"
    for seed in range(3):
        make_run(out, "ce", seed, reach={0.9: 100}, group="g")
        make_run(out, "mse", seed, reach={0.9: None}, group="g",
                 flags=["stalled"] if seed == 1 else [])
        make_run(out, "hinge", seed, reach={0.9: 200 if seed else None}, group="g",
                 diverged_at=150 if seed == 0 else None,
                 status="diverged" if seed == 0 else "completed")
    p = _paired(out)
    assert p[("mse", "steps_to_0.90")]["verdict"] == (
        "mse not reached in 2/3 seeds; mse stalled in 1/3 seeds")
    assert p[("mse", "test_acc")]["verdict"] == "mse stalled in 1/3 seeds"
    assert p[("hinge", "val_acc_auc")]["verdict"] == (
        "hinge diverged at step 150 (loss) in 1/3 seeds")
    md = compare_markdown(group="g", out_dir=out)
    row = next(line for line in md.splitlines() if line.startswith("| hinge |"))
    assert "200 ± 0.0 (2/3 reached; diverged at step 150 (loss) (1/3))" in row
    row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    assert "not reached (2/3), stalled (1/3)" in row

    # One run per loss: the cell itself says it.
    single = [r for loss in ("ce", "hinge") for r in out.glob(f"*-{loss}-*")
              if json.loads((r / "summary.json").read_text())["seed"] == 0]
    md = compare_markdown(*single)
    assert "| diverged at step 150 (loss) |" in md.split("**gradients**")[0]


def test_no_validation_split_is_not_measured(tmp_path):
    out = tmp_path / "runs"
    for seed in range(3):
        for loss, acc in (("ce", 0.95), ("mse", 0.90 + 0.01 * seed)):
            make_run(out, loss, seed, reach={0.9: None}, group="g", test_acc=acc,
                     overrides={"data.val_size": 0})
    p = _paired(out)
    for key in ("final_val_acc", "best_val_acc", "val_acc_auc", "steps_to_0.90"):
        assert p[("mse", key)]["verdict"] == "not measured (no validation split)"
    assert p[("mse", "test_acc")]["verdict"] == "significant"  # the test set is still there
    md = compare_markdown(group="g", out_dir=out)
    row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    assert row.count("not measured") == 4 and "not reached" not in row


def test_old_run_folders_with_epoch_gradient_keys_still_compare(tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", grad_early=0.7, grad_late=0.07, old_grad_keys=True)
    new = make_run(out, "mse", grad_early=0.3, grad_late=0.03)
    summary = json.loads((old / "summary.json").read_text())
    del summary["val_acc_auc"]  # runs written before it lack the key
    (old / "summary.json").write_text(json.dumps(summary))
    data = compare_json(old, new)
    ce, mse = data["rows"]
    assert (ce["grad_early/fc1.weight"], ce["grad_late/fc1.weight"]) == (0.7, 0.07)
    assert (mse["grad_early/fc1.weight"], mse["grad_late/fc1.weight"]) == (0.3, 0.03)
    assert (ce["logit_grad_early"], ce["logit_grad_late"]) == (0.9, 0.1)
    assert ce["val_acc_auc"] is None and mse["val_acc_auc"] is not None


def test_another_modules_metric_gets_paired_by_setting_paired(tmp_path):
    added = metrics.register(SummaryMetric(
        "wall_seconds", "wall s", "seconds", "seconds the run took", ("wall_seconds",),
        higher_is_better=False, paired=True, table=None))
    try:
        out = tmp_path / "runs"
        for seed in range(3):
            make_run(out, "ce", seed, steps=600, group="g")
            make_run(out, "mse", seed, steps=800 + 100 * seed, group="g")
        p = _paired(out)[("mse", "wall_seconds")]
    finally:
        metrics.unregister(added.key)
    assert p["diffs"] == pytest.approx([2.0, 3.0, 4.0])  # steps * 0.01 in run_factory
    lo, hi = stats.t.interval(0.95, 2, loc=3.0, scale=1.0 / math.sqrt(3))
    assert (p["lo"], p["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert p["param"] is None and p["threshold"] is None and p["excludes_zero"] is True
    # A registered metric joins the Holm family like any other (its raw p is 0.035).
    assert p["p"] == pytest.approx(stats.ttest_1samp([2.0, 3.0, 4.0], 0.0).pvalue, rel=1e-12)
    assert p["holm_family"] >= 1 and p["p_holm"] >= p["p"]
    assert p["verdict"] == ("significant" if p["p_holm"] < 0.05 else "not significant after Holm")


# --- multiple comparisons: Holm ------------------------------------------------------------------


def test_holm_matches_a_hand_computed_example():
    # m = 4, sorted 0.005 0.01 0.03 0.04, times 4 3 2 1: 0.02 0.03 0.06 0.04; running maximum
    # 0.02 0.03 0.06 0.06 (the 0.04 row may not be adjusted below the 0.03 row before it).
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # Capped at 1, and still non-decreasing in the order of the raw p-values.
    assert holm([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03], abs=1e-15)
    assert holm([0.4, 0.7, 0.9]) == [1.0, 1.0, 1.0]
    assert holm([0.02]) == [0.02] and holm([]) == []
    raw = [0.001, 0.2, 0.004, 0.03, 0.5, 0.011]
    adjusted = holm(raw)
    by_raw = [a for _, a in sorted(zip(raw, adjusted))]
    assert by_raw == sorted(by_raw) and all(a >= r for a, r in zip(adjusted, raw))


def test_raw_p_is_the_paired_t_test():
    diffs = [12.0, 7.5, 20.0, 3.25]
    assert paired_interval(diffs).p == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue,
                                                     rel=1e-12)
    assert paired_interval([5.0]).p is None  # one pair: no test
    # every difference equal: no t statistic (scipy gives NaN), so no p and no Holm row
    assert paired_interval([2.0, 2.0]).p is None and paired_interval([0.0, 0.0]).p is None
    # p < 0.05 exactly when the 95% interval excludes 0
    for d in ([1.0, 2.0, 3.5], [1.0, -2.0, 3.5], [0.1, 0.12, 0.09, 0.11]):
        iv = paired_interval(d)
        assert (iv.p < 0.05) == iv.significant


def test_significant_refers_to_the_holm_adjusted_p_and_the_report_says_so(tmp_path):
    out = tmp_path / "runs"
    # Four seeds: mse's final val acc is clearly lower (p ~ 5e-9, kept by Holm); its best val acc
    # higher by 0.002, 0.003, 0.004, 0.001 (p = 0.030: the interval excludes 0, but Holm over the
    # three rows with a p doubles it to 0.061); its test acc differs by +0.001, -0.002, +0.004,
    # +0.003 (p = 0.34). The other rows have equal differences in every seed: no p.
    for seed, (b, t) in enumerate(((0.002, 0.001), (0.003, -0.002), (0.004, 0.004),
                                   (0.001, 0.003))):
        make_run(out, "ce", seed, group="g", final_val_acc=0.95, best_val_acc=0.96,
                 test_acc=0.95)
        make_run(out, "mse", seed, group="g", final_val_acc=0.90 - 0.0001 * seed,
                 best_val_acc=0.96 + b, test_acc=0.95 + t)
    p = _paired(out)
    kept, lost = p[("mse", "final_val_acc")], p[("mse", "best_val_acc")]
    flat = p[("mse", "test_acc")]
    assert kept["holm_family"] == lost["holm_family"] == flat["holm_family"] == 3
    assert kept["p_holm"] == pytest.approx(3 * kept["p"], rel=1e-12)
    assert kept["p_holm"] < 0.05 and kept["significant"] is True and kept["verdict"] == "significant"
    assert lost["p"] == pytest.approx(0.0305, abs=5e-4) and lost["excludes_zero"] is True
    assert lost["p_holm"] == pytest.approx(2 * lost["p"], rel=1e-12)
    assert lost["significant"] is False and lost["verdict"] == "not significant after Holm"
    assert flat["p_holm"] == pytest.approx(max(flat["p"], lost["p_holm"]), rel=1e-12)
    assert flat["verdict"] == "not significant"
    md = compare_markdown(group="g", out_dir=out)
    assert "| p | p Holm |" in md
    assert f"Holm across all {kept['holm_family']} rows with a p here" in md
    assert "with 4 seeds the t interval leans on the per-seed differences being normally " \
        "distributed" in md
