"""ce-lab compare --tune-lr (tune on validation, then compare) and --best-of KEY (a batch that
swept the key), end to end on the tiny MNIST; and every misuse as one line with exit 2."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from ce_lab.runs.record import load_run
from ce_lab.summary import val_acc_auc
from tests.helpers import runner, tiny_args, tiny_base, write_batch
from tests.run_factory import make_run


def only(pattern: str, where: Path) -> Path:
    found = list(where.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_tune_lr_chooses_on_validation_then_compares_on_other_seeds(tiny_mnist, tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--tune-lr", "--losses", "ce,mse", "--lr-grid",
                                 "0.03,0.3,3", "--seeds", "0", *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 0, result.stderr
    comp = only("compare-*", out)
    # Tuning: both losses x three rates on seed 1 (the smallest seed not among --seeds), fused.
    tuning_runs = [load_run(p) for p in (comp / "tuning").iterdir()]
    assert sorted((r.loss, r.config["optim"]["lr"], r.seed) for r in tuning_runs) == [
        (loss, lr, 1) for loss in ("ce", "mse") for lr in (0.03, 0.3, 3.0)]
    assert {r.meta["group"] for r in tuning_runs} == {f"{comp.name}-tuning"}
    assert all(len(r.meta["fused_with"]) == 5 for r in tuning_runs)  # one stack of six

    # The choice, recomputed here from the tuning runs' own eval.csv: highest AUC, validation.
    expected = {}
    for loss in ("ce", "mse"):
        scored = [(val_acc_auc(r.evals["examples"], r.evals["val_acc"]), r.config["optim"]["lr"])
                  for r in tuning_runs if r.loss == loss and r.status == "completed"]
        expected[loss] = min(scored, key=lambda s: (-s[0], s[1]))[1]
    tuned = json.loads((comp / "comparison.json").read_text())["tuned"]
    assert {loss: v["chosen"] for loss, v in tuned.items()} == expected
    assert all(v["tuning_seeds"] == [1] and v["eval_seeds"] == [0] for v in tuned.values())
    assert f"tuned lr (by auc on validation, seed(s) 1): ce {expected['ce']:g}, mse " \
        f"{expected['mse']:g}" in result.stderr

    # Evaluation: each loss at its chosen rate on seed 0, in the comparison, paired against ce.
    listed = json.loads((comp / "comparison.json").read_text())["runs"]
    evaluated = [load_run(comp / r) for r in listed]
    assert sorted((r.loss, r.config["optim"]["lr"], r.seed) for r in evaluated) == sorted(
        (loss, lr, 0) for loss, lr in expected.items())
    assert {r.meta["group"] for r in evaluated} == {comp.name}
    with (comp / "tuning.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["seed"] for r in rows} == {"1"}
    for row in rows:
        run = load_run(comp / row["run"])
        assert math.isclose(float(row["val_acc_auc"]),
                            val_acc_auc(run.evals["examples"], run.evals["val_acc"]))
        assert float(row["final_val_acc"]) == run.summary["final"]["val_acc"]
    report = (comp / "report.md").read_text()
    assert report.index("## Tuning") < report.index("## Results")
    assert "which the choice never saw" in report and "never used for selection" in report
    # One evaluation seed: no paired table and no paired.csv, one line saying why instead.
    assert (comp / "lr_sensitivity.png").is_file() and not (comp / "paired.csv").exists()
    assert "an interval over seeds needs at least two seeds" in report
    assert "every loss shares lr" not in result.stderr and "every loss shares lr" not in report


def test_untuned_compare_says_every_loss_shares_one_rate(tiny_mnist, tmp_path):
    result = runner.invoke(app, ["compare", "--losses", "ce,hinge", "--no-plots",
                                 *tiny_args(tiny_mnist, tmp_path / "runs")])
    assert result.exit_code == 0, result.stderr
    assert ("note: every loss shares lr 0.1, which suits some losses more than others; to "
            "compare each at its own tuned rate: ce-lab compare --tune-lr") in result.stderr


def test_tune_lr_with_no_rate_that_counts_exits_1_and_keeps_tuning_csv(tiny_mnist, tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--tune-lr", "--losses", "nll-manual", "--lr-grid",
                                 "1e6", "--no-plots", *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 1, result.stderr
    assert "nll-manual: no learning rate counts for selection (1e+06: seed 1 diverged at step" \
        in result.stderr
    rows = list(csv.DictReader((only("compare-*", out) / "tuning.csv").open()))
    assert [(r["loss"], r["status"]) for r in rows] == [("nll-manual", "diverged")]


@pytest.mark.parametrize(("args", "message"), [
    (["--lr-grid", "0.1,1"], "--lr-grid only applies with --tune-lr"),
    (["--select", "auc"], "--select only apply with --tune-lr or --best-of"),
    (["--tune-seeds", "3"], "--tune-seeds only apply with --tune-lr or --best-of"),
    (["--tune-lr", "--lr", "0.5"], "--tune-lr chooses each loss's rate from --lr-grid"),
    (["--tune-lr", "--set", "optim.lr=0.5"], "--tune-lr chooses each loss's rate"),
    (["--tune-lr", "--lr-grid", "0.1,x"], "--lr-grid expects comma-separated numbers"),
    (["--tune-lr", "--lr-grid", "0.1,-1"], "--lr-grid expects positive learning rates"),
    (["--tune-lr", "--lr-grid", "0.1,0.1"], "--lr-grid names a rate twice"),
    (["--tune-lr", "--seeds", "0,1", "--tune-seeds", "1,2"],
     "--tune-seeds and --seeds share seed(s) 1"),
    (["--tune-lr", "--set-loss", "ce:optim.lr=0.5"], "--set-loss ce:optim.lr conflicts"),
    (["--best-of", "optim.lr"], "--best-of chooses among runs on disk"),
    (["--tune-lr", "--group", "g"], "--tune-lr trains; with runs on disk use --best-of"),
])
def test_misuse_is_one_line_and_exit_2(args, message, tmp_path, tiny_mnist):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--losses", "ce", *args,
                                 *(tiny_args(tiny_mnist, out) if "--group" not in args else [])])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.glob("compare-*"))  # nothing half-made


def test_best_of_a_real_batch_compares_each_loss_at_its_best_rate(tiny_mnist, tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "lr", "base": tiny_base(tiny_mnist, max_steps=10),
        "grid": {"loss.name": ["ce", "mse"], "optim.lr": [0.05, 0.5, 5.0]}, "seeds": [0]})
    assert runner.invoke(app, ["batch", str(f), "--no-plots"]).exit_code == 0
    batch = only("batch-*", Path("runs")).name

    result = runner.invoke(app, ["compare", "--group", batch, "--best-of", "optim.lr",
                                 "--select", "final-val-acc", "--format", "json", "--no-plots"])
    assert result.exit_code == 0, result.stderr
    comp = max(Path("runs").glob("compare-*"))
    tuned = json.loads((comp / "comparison.json").read_text())["tuned"]
    runs = [load_run(p) for p in Path("runs").iterdir() if (p / "summary.json").exists()]
    for loss in ("ce", "mse"):
        means = {}
        for lr in (0.05, 0.5, 5.0):
            group = [r for r in runs if r.loss == loss and r.config["optim"]["lr"] == lr]
            if all(r.status == "completed" for r in group):
                means[lr] = group[0].summary["final"]["val_acc"]
        assert tuned[loss]["chosen"] == min(means, key=lambda lr: (-means[lr], lr))
        assert tuned[loss]["eval_seeds"] is None  # chosen and compared on the same runs
    table = json.loads(result.stdout)
    assert [(r["loss"], r["optim.lr"]) for r in table["rows"]] == [
        (loss, tuned[loss]["chosen"]) for loss in ("ce", "mse")]
    report = (comp / "report.md").read_text()
    assert "validation numbers are optimistic" in report
    assert len(list(csv.DictReader((comp / "tuning.csv").open()))) == 6

    # A key the batch did not sweep, or a key that is not one: one line, exit 2, no folder.
    before = set(Path("runs").glob("compare-*"))
    for key, message in (("optim.momentum", "the runs did not sweep it (every run has "
                                            "optim.momentum=0.0)"),
                         ("optim.nope", "not a config key of these runs")):
        bad = runner.invoke(app, ["compare", "--group", batch, "--best-of", key])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr
    assert set(Path("runs").glob("compare-*")) == before


def test_best_of_with_tune_seeds_chooses_on_them_and_compares_the_others(tmp_path):
    # Seed 0 prefers lr 1, seed 1 prefers 0.1: choosing on seed 0 compares seed 1's lr-1 run.
    for seed, accs in ((0, (0.90, 0.95)), (1, (0.97, 0.91))):
        for lr, acc in zip((0.1, 1.0), accs):
            make_run(Path("runs"), "ce", seed, overrides={"optim.lr": lr}, final_val_acc=acc,
                     group="batch-s")
    result = runner.invoke(app, ["compare", "--group", "batch-s", "--best-of", "optim.lr",
                                 "--tune-seeds", "0", "--select", "final-val-acc", "--no-plots",
                                 "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    picked = [load_run(p) for r in rows for p in r["runs"]]
    assert [(r.seed, r.config["optim"]["lr"]) for r in picked] == [(1, 1.0)]
    comp = only("compare-*", Path("runs"))
    assert json.loads((comp / "comparison.json").read_text())["tuned"]["ce"]["eval_seeds"] == [1]
    assert "which the choice never saw" in (comp / "report.md").read_text()
    for seeds, message in (("5", "no run has such a seed"), ("0,1", "none is left to compare")):
        bad = runner.invoke(app, ["compare", "--group", "batch-s", "--best-of", "optim.lr",
                                  "--tune-seeds", seeds])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr


def test_best_of_a_loss_without_a_valid_member_exits_1(tmp_path):
    for lr in (1e5, 1e6):
        make_run(Path("runs"), "nll-manual", 0, overrides={"optim.lr": lr}, status="diverged",
                 diverged_at=50, group="batch-boom")
    make_run(Path("runs"), "ce", 0, overrides={"optim.lr": 0.1}, group="batch-boom")
    result = runner.invoke(app, ["compare", "--group", "batch-boom", "--best-of", "optim.lr"])
    assert result.exit_code == 1
    assert "nll-manual: no learning rate counts for selection (100000: seed 0 diverged at step " \
        "50, 1e+06: seed 0 diverged at step 50)" in result.stderr
    assert not list(Path("runs").glob("compare-*"))  # no half-made comparison


def test_tuning_options_are_in_help(cli):
    result = cli.invoke(app, ["compare", "--help"])
    for opt in ("--tune-lr", "--lr-grid", "--select", "--tune-seeds", "--best-of"):
        assert opt in result.stdout


def test_ctrl_c_while_tuning_exits_130_and_compares_nothing(tiny_mnist, tmp_path, monkeypatch):
    from ce_lab.lab import stacks

    def interrupted(configs_by_seed, group, root, **kw):
        return [], True  # as train_or_resume returns after a Ctrl-C in the tuning stack

    monkeypatch.setattr(stacks, "train_or_resume", interrupted)
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--tune-lr", "--losses", "ce", "--lr-grid", "0.1",
                                 *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 130
    comp = only("compare-*", out)
    assert result.stderr.strip().splitlines()[-1] == \
        f"interrupted; continue with: ce-lab compare --resume {comp}"
    assert not (comp / "report.md").exists()
