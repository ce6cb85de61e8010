"""``ce-lab compare`` with no runs named: trains the losses paired by seed, then compares them;
label noise shared by a stack, recorded in meta.json and the report, one plot panel per level."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from ce_lab.cli.app import app
from ce_lab.config import with_overrides
from ce_lab.data.noise import changed_count
from ce_lab.runs.record import load_run
from ce_lab.training import train_paired
from tests.helpers import runner, tiny_args
from tests.mnist_fixture import TINY_TRAIN, TINY_VAL_SIZE


def test_compare_trains_losses_paired_by_seed(tiny_mnist, tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--losses", "ce,nll-manual", "--seeds", "0,1",
                                 "--format", "json", *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 0, result.stderr
    table = json.loads(result.stdout)
    comp = next(out.glob("compare-*"))
    listed = json.loads((comp / "comparison.json").read_text())
    assert listed["group"] == comp.name and len(listed["runs"]) == 4
    runs = [load_run(comp / r) for r in listed["runs"]]
    assert {r.meta["group"] for r in runs} == {comp.name}
    assert sorted((r.loss, r.seed) for r in runs) == [
        ("ce", 0), ("ce", 1), ("nll-manual", 0), ("nll-manual", 1)]
    # Same weights and batches: ce and log(softmax)+nll are the same function, so paired runs
    # log the same losses; different seeds do not.
    by = {(r.loss, r.seed): r for r in runs}
    for seed in (0, 1):
        a, b = by[("ce", seed)].metrics["loss"], by[("nll-manual", seed)].metrics["loss"]
        assert len(a) == len(b) == 4
        assert all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b, strict=True))
    assert by[("ce", 0)].metrics["loss"] != by[("ce", 1)].metrics["loss"]

    assert table["aggregated"] and [r["n"] for r in table["rows"]] == [2, 2]
    assert [r["loss"] for r in table["rows"]] == ["ce", "nll-manual"]
    assert {p["loss"] for p in table["paired"]} == {"nll-manual"}
    assert all(p["n"] == 2 for p in table["paired"])
    assert sorted(p.name for p in comp.glob("*.png")) == [
        "grad_norms.png", "logit_grad.png", "loss.png", "reliability.png", "val_acc.png"]
    assert "![reliability](reliability.png)" in (comp / "report.md").read_text()
    # the calibration columns, per group over its seeds
    for row in table["rows"]:
        eces = [r.summary["final"]["test_ece"] for r in runs if r.loss == row["loss"]]
        assert row["test_ece"]["mean"] == pytest.approx(sum(eces) / 2)
        assert 0 < row["test_nll"]["mean"] and 0 < row["test_brier"]["mean"] < 2

    # The group id finds the same runs again, with the same numbers.
    again = runner.invoke(app, ["compare", "--group", comp.name, "--out-dir", str(out),
                                "--format", "json", "--no-plots"])
    assert again.exit_code == 0, again.stderr
    def numbers(rows):
        return [{k: v for k, v in r.items() if k != "runs"} for r in rows]

    assert numbers(json.loads(again.stdout)["rows"]) == numbers(table["rows"])


def test_per_loss_override_reaches_only_that_loss(tiny_mnist, tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--losses", "ce,mse", "--set-loss",
                                 "mse:optim.lr=0.5", "--no-plots", *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 0, result.stderr
    lrs = {}
    for run in out.glob("*-*-*-*"):
        if run.name.startswith("compare-"):
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        lrs[cfg["loss"]["name"]] = cfg["optim"]["lr"]
    assert lrs == {"ce": 0.1, "mse": 0.5}
    assert "optim.lr" in result.stdout  # the differing key is a column


def test_bad_per_loss_override_exits_2(tmp_path):
    result = runner.invoke(app, ["compare", "--losses", "ce,mse", "--set-loss", "hinge:optim.lr=1"])
    assert result.exit_code == 2 and "not among the compared losses" in result.stderr
    result = runner.invoke(app, ["compare", "--set-loss", "mse:optim.lrr=1"])
    assert result.exit_code == 2 and "optim.lrr" in result.stderr


def test_a_stack_shares_one_corruption_recorded_in_meta_and_the_report(tiny_config, cli,
                                                                         tmp_path):
    from ce_lab.cli.app import app

    cfg = with_overrides(tiny_config(), {"data.label_noise": 0.25, "train.epochs": 1})
    outs = train_paired([with_overrides(cfg, {"loss.name": n}) for n in ("ce", "mse")])
    n = TINY_TRAIN - TINY_VAL_SIZE
    metas = [json.loads((o.run_dir / "meta.json").read_text()) for o in outs]
    want = {"fraction": 0.25, "kind": "symmetric", "changed": changed_count(0.25, n),
            "n_train": n}
    assert [m["label_noise"] for m in metas] == [want, want]
    result = cli.invoke(app, ["compare", *(str(o.run_dir) for o in outs), "--no-plots",
                              "--output", str(tmp_path / "t.md"), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    report = next((tmp_path / "runs").glob("compare-*/report.md")).read_text()
    assert f"{want['changed']}/{n} training labels changed (symmetric)" in report
    assert "data.label_noise=0.25" in report


def test_a_comparison_over_noise_levels_plots_one_panel_per_level(tmp_path, cli):
    from ce_lab.cli.app import app
    from tests.run_factory import make_run

    out = tmp_path / "runs"
    for noise in (0.0, 0.4):
        for loss in ("ce", "mse"):
            for seed in (0, 1):
                make_run(out, loss, seed, overrides={"data.label_noise": noise})
    result = cli.invoke(app, ["compare", "--last", "8", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    comp = next(out.glob("compare-*"))
    png = (comp / "val_acc_by_setting.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "](val_acc_by_setting.png)" in (comp / "report.md").read_text()
    from ce_lab.comparison.build import build_table
    from ce_lab.comparison.compare import setting_panels
    from ce_lab.runs.record import load_run

    table = build_table([load_run(p) for p in sorted(out.glob("2026*"))])
    panels = setting_panels(table)
    assert [(t, sorted(loss for loss, _ in g)) for t, g in panels] == [
        ("label_noise=0.0", ["ce", "mse"]), ("label_noise=0.4", ["ce", "mse"])]
    assert all(len(runs) == 2 for _, g in panels for _, runs in g)  # two seeds per line
