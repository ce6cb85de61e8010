"""ce-lab compare with no runs named: trains the losses paired by seed, then compares them."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from ce_lab.cli.app import app
from ce_lab.runs.record import load_run
from tests.helpers import runner, tiny_args


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
