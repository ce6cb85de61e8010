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
    assert p["param"] is None and p["threshold"] is None and p["verdict"] == "significant"
