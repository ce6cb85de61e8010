"""Choosing each loss's learning rate on validation (ce_lab/comparison/tuning.py), and what is
written about it: tuning.csv, the sensitivity plot, report.md's Tuning section, comparison.json.

Run folders come from tests/run_factory.py, so every score is known in advance.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from ce_lab.comparison.compare import write_comparison
from ce_lab.comparison.tuning import (
    Criterion,
    NoValidMember,
    check_swept,
    chosen_records,
    select,
)
from ce_lab.errors import UsageError
from ce_lab.runs.record import load_run
from ce_lab.summary import val_acc_auc
from tests.run_factory import make_run


def run(out: Path, loss: str, lr: float, seed: int = 5, **kw):
    return load_run(make_run(out, loss, seed, overrides={"optim.lr": lr}, **kw))


def flag(record, *flags: str):
    """The summary's ``flags`` as branch noise writes them."""
    path = record.path / "summary.json"
    data = json.loads(path.read_text())
    data["flags"] = list(flags)
    path.write_text(json.dumps(data))
    return load_run(record.path)


def test_val_acc_auc_is_the_trapezoid_mean_over_the_examples_spanned(tmp_path):
    # (0.5 + 0.7) / 2 * 100 + (0.7 + 0.9) / 2 * 300 = 60 + 240 over a span of 400.
    assert val_acc_auc([100, 200, 500], [0.5, 0.7, 0.9]) == pytest.approx(300 / 400, abs=1e-15)
    assert val_acc_auc([64], [0.8]) == 0.8  # one evaluation: its accuracy
    assert val_acc_auc([], []) is None
    assert val_acc_auc([1, 2], [0.5, math.nan]) is None
    # Selection reads summary.json's val_acc_auc, and the same function over eval.csv for runs
    # written before the key existed.
    from ce_lab.comparison.tuning import SCORERS

    record = run(tmp_path, "ce", 0.1)
    assert SCORERS[Criterion.auc](record) == record.summary["val_acc_auc"] == val_acc_auc(
        record.evals["examples"], record.evals["val_acc"])
    path = record.path / "summary.json"
    data = json.loads(path.read_text())
    del data["val_acc_auc"]
    path.write_text(json.dumps(data))
    old = load_run(record.path)
    assert SCORERS[Criterion.auc](old) == record.summary["val_acc_auc"]


def test_selection_reads_validation_only_and_picks_the_best_mean(tmp_path):
    # lr 1 has the best test accuracy but the worse validation: validation decides.
    recs = [run(tmp_path, "ce", 0.1, final_val_acc=0.97, test_acc=0.50),
            run(tmp_path, "ce", 1.0, final_val_acc=0.90, test_acc=0.99)]
    t = select(recs, criterion=Criterion.final_val_acc)
    assert t.chosen() == {"ce": 0.1}
    cell = t.cells[0]
    assert cell.scores == {0.1: 0.97, 1.0: 0.90} and cell.grid == [0.1, 1.0]
    # Over two seeds the score is the mean: 0.3 wins on the mean though not on seed 6.
    recs = [run(tmp_path, "mse", 0.3, 5, final_val_acc=0.94),
            run(tmp_path, "mse", 0.3, 6, final_val_acc=0.90),
            run(tmp_path, "mse", 3.0, 5, final_val_acc=0.85),
            run(tmp_path, "mse", 3.0, 6, final_val_acc=0.95)]
    t = select(recs, criterion=Criterion.final_val_acc)
    assert t.chosen() == {"mse": 0.3} and t.seeds == [5, 6]
    assert t.cells[0].scores == {0.3: math.fsum([0.94, 0.90]) / 2, 3.0: math.fsum([0.85, 0.95]) / 2}


def test_auc_rewards_the_rate_that_learns_faster(tmp_path):
    # Same final accuracy; lr 1 reaches 0.9 at step 100, lr 0.1 only at 500: a larger area.
    slow = run(tmp_path, "hinge", 0.1, reach={0.9: 500}, final_val_acc=0.96)
    fast = run(tmp_path, "hinge", 1.0, reach={0.9: 100}, final_val_acc=0.96)
    t = select([slow, fast])  # auc is the default
    assert t.criterion is Criterion.auc and t.chosen() == {"hinge": 1.0}
    expected = val_acc_auc(fast.evals["examples"], fast.evals["val_acc"])
    assert t.cells[0].scores[1.0] == expected


def test_an_exact_tie_goes_to_the_smaller_rate(tmp_path):
    recs = [run(tmp_path, "ce", lr, final_val_acc=0.95, reach={0.9: 200}) for lr in (3.0, 0.3, 1.0)]
    for criterion in Criterion:
        assert select(recs, criterion=criterion).chosen() == {"ce": 0.3}


def test_diverged_and_stalled_members_are_excluded(tmp_path):
    recs = [run(tmp_path, "nll-manual", 0.1, final_val_acc=0.90),
            # Diverged late, with a high last evaluation before it: still excluded.
            run(tmp_path, "nll-manual", 1.0, final_val_acc=0.99, status="diverged",
                diverged_at=550),
            flag(run(tmp_path, "nll-manual", 3.0, final_val_acc=0.98), "stalled"),
            flag(run(tmp_path, "nll-manual", 0.3, final_val_acc=0.93), "chance-not-a-stall")]
    t = select(recs, criterion=Criterion.final_val_acc)
    cell = t.cells[0]
    assert t.chosen() == {"nll-manual": 0.3}
    assert cell.scores[1.0] is None and cell.scores[3.0] is None
    assert cell.excluded == {1.0: "seed 5 diverged at step 550", 3.0: "seed 5 stalled"}
    # A rate where one tuning seed diverged does not count even if the other seed did well.
    two = [run(tmp_path, "ce", 0.1, 1, final_val_acc=0.90), run(tmp_path, "ce", 0.1, 2,
                                                               final_val_acc=0.90),
           run(tmp_path, "ce", 1.0, 1, final_val_acc=0.99),
           run(tmp_path, "ce", 1.0, 2, status="diverged", diverged_at=100)]
    assert select(two, criterion=Criterion.final_val_acc).chosen() == {"ce": 0.1}


def test_no_valid_member_is_one_line_naming_the_loss(tmp_path):
    recs = [run(tmp_path, "ce", 0.1), run(tmp_path, "mse", 10.0, status="diverged",
                                          diverged_at=50)]
    with pytest.raises(NoValidMember, match=r"^mse: no learning rate counts for selection "
                       r"\(10: seed 5 diverged at step 50\)$") as e:
        select(recs)
    assert e.value.exit_code == 1


def test_edge_of_grid_warns_and_inner_choice_does_not(tmp_path):
    recs = [run(tmp_path, "mse", lr, final_val_acc=acc)
            for lr, acc in ((0.1, 0.80), (1.0, 0.90), (10.0, 0.95))]
    recs += [run(tmp_path, "ce", lr, final_val_acc=acc)
             for lr, acc in ((0.1, 0.90), (1.0, 0.95), (10.0, 0.10))]
    t = select(recs, criterion=Criterion.final_val_acc)
    assert [c.at_edge for c in t.cells] == [True, False]
    assert t.warnings() == ["best lr at the edge of the grid: widen --lr-grid "
                            "(mse: 10 of 0.1..10)"]


def test_other_swept_keys_choose_separately_and_unswept_keys_are_refused(tmp_path):
    recs = [load_run(make_run(tmp_path, "ce", 0, final_val_acc=acc,
                              overrides={"optim.lr": lr, "optim.momentum": m}))
            for lr, m, acc in ((0.1, 0.0, 0.90), (1.0, 0.0, 0.95), (0.1, 0.9, 0.97),
                               (1.0, 0.9, 0.20))]
    t = select(recs, criterion=Criterion.final_val_acc)
    assert t.chosen() == {"ce optim.momentum=0.0": 1.0, "ce optim.momentum=0.9": 0.1}
    picked = chosen_records(recs, t)
    assert sorted((r.config["optim"]["lr"], r.config["optim"]["momentum"]) for r in picked) == [
        (0.1, 0.9), (1.0, 0.0)]
    with pytest.raises(UsageError, match="did not sweep it .*optim.weight_decay=0.0"):
        check_swept(recs, "optim.weight_decay")
    with pytest.raises(UsageError, match="not a config key"):
        check_swept(recs, "optim.nope")


def test_comparison_files_record_the_tuning(tmp_path):
    out = tmp_path / "runs"
    tune = [run(out, "ce", lr, 7, final_val_acc=acc, test_acc=0.5)
            for lr, acc in ((0.1, 0.95), (1.0, 0.90))]
    tune += [run(out, "mse", lr, 7, final_val_acc=acc) for lr, acc in ((0.1, 0.80), (1.0, 0.93))]
    tune.append(run(out, "mse", 10.0, 7, status="diverged", diverged_at=100))
    t = select(tune, criterion=Criterion.final_val_acc)
    t.eval_seeds = [0]
    evaluated = [run(out, "ce", 0.1, 0), run(out, "mse", 1.0, 0)]
    comp = tmp_path / "compare-x"
    comp.mkdir()
    result = write_comparison(evaluated, comp, tuning=t)

    with (comp / "tuning.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["loss", "lr", "seed", "status", "excluded", "val_acc_auc",
                             "final_val_acc", "chosen", "run"]
    assert [(r["loss"], float(r["lr"]), r["status"], r["chosen"]) for r in rows] == [
        ("ce", 0.1, "completed", "True"), ("ce", 1.0, "completed", "False"),
        ("mse", 0.1, "completed", "False"), ("mse", 1.0, "completed", "True"),
        ("mse", 10.0, "diverged", "False")]
    assert float(rows[0]["final_val_acc"]) == 0.95 and rows[4]["excluded"] == (
        "diverged at step 100")
    assert all((comp / r["run"]).resolve() in {x.path.resolve() for x in tune} for r in rows)
    assert "test" not in ",".join(rows[0])  # no test number in the tuning file

    tuned = json.loads((comp / "comparison.json").read_text())["tuned"]
    assert tuned["mse"]["grid"] == [0.1, 1.0, 10.0] and tuned["mse"]["chosen"] == 1.0
    assert tuned["mse"]["criterion"] == "final-val-acc"
    assert tuned["mse"]["scores"] == {"0.1": 0.80, "1": 0.93, "10": None}
    assert tuned["mse"]["excluded"] == {"10": "seed 7 diverged at step 100"}
    assert tuned["ce"]["at_edge"] is True and tuned["ce"]["eval_seeds"] == [0]

    report = (comp / "report.md").read_text()
    assert report.index("## Tuning") < report.index("## Results")
    section = report[report.index("## Tuning"):report.index("## Results")]
    assert "the test set was never used for selection" in section
    assert "| mse | 0.8000 | **0.9300** | seed 7 diverged at step 100 | 1 |" in section
    assert "| ce | **0.9500** | 0.9000 |  | 0.1 (edge of grid) |" in section
    assert "best lr at the edge of the grid: widen --lr-grid (ce: 0.1 of 0.1..1)" in section
    assert "![lr_sensitivity](lr_sensitivity.png)" in section
    assert report.count("lr_sensitivity.png") == 1  # not again under Plots
    assert (comp / "lr_sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.plots[0] == comp / "lr_sensitivity.png"


def test_sensitivity_plot_marks_excluded_points_and_circles_the_choice(tmp_path):
    from ce_lab.render import tuning as render

    recs = [run(tmp_path, "ce", 0.1, final_val_acc=0.9),
            run(tmp_path, "ce", 1.0, status="diverged", diverged_at=50)]
    t = select(recs, criterion=Criterion.final_val_acc)
    drawn = []

    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((list(args[0]), list(args[1]), kwargs.get("marker"),
                      kwargs.get("markerfacecolor")))
        return original(self, *args, **kwargs)

    matplotlib.axes.Axes.plot = spy
    try:
        assert render.plot_sensitivity(t, tmp_path / "s.png") == tmp_path / "s.png"
    finally:
        matplotlib.axes.Axes.plot = original
    line, cross, circle = drawn
    assert line[:2] == ([0.1], [0.9])  # the valid rates only
    assert cross[0] == [1.0] and cross[2] == "x"  # the diverged rate, marked
    assert circle[:2] == ([0.1], [0.9]) and circle[3] == "none"  # the choice, circled
