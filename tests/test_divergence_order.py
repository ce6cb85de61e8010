"""Divergence is reported where it was born, in the order of the computation (loss, d loss / d
logits, then the layers from the output down), and the diverged step has its metrics.csv row even
when it was not a logged step."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest
import torch

from ce_lab.losses import LOSSES
from ce_lab.training import train
from ce_lab.training.stack import Stack

BAD_STEP = 7  # not a multiple of log_every=5: not a logged step


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_watch_follows_the_backward_order(tiny_config):
    cfg = tiny_config(**{"model.hidden": [8, 6]})
    stack = Stack([cfg], torch.device("cpu"), 10, 784, 10)
    assert stack.watch_names == [
        "logit_grad_norm", "grad_norm/fc3.weight", "grad_norm/fc3.bias", "grad_norm/fc2.weight",
        "grad_norm/fc2.bias", "grad_norm/fc1.weight", "grad_norm/fc1.bias"]


def _poison(monkeypatch, name: str, at_call: int, where: str) -> None:
    """Loss ``name`` gives a NaN at its ``at_call``-th training call: in d loss / d logits
    (the loss stays finite) or in the loss itself."""
    spec = LOSSES[name]
    calls = {"n": 0}

    def grad(logits, targets, cfg):
        loss, g = spec.grad(logits, targets, cfg)
        calls["n"] += 1
        if calls["n"] == at_call:
            g = g.clone()
            g[..., 0, 0] = math.nan
            if where == "loss":
                loss = loss + math.nan
        return loss, g

    monkeypatch.setitem(LOSSES, name, replace(spec, grad=grad))


@pytest.mark.parametrize("where,quantity", [("logits", "logit_grad_norm"), ("loss", "loss")])
def test_a_nan_is_reported_where_it_was_born_and_its_step_has_a_row(tiny_config, monkeypatch,
                                                                    where, quantity):
    _poison(monkeypatch, "ce", BAD_STEP, where)
    out = train(tiny_config(**{"loss.name": "ce"}))
    s = json.loads((out.run_dir / "summary.json").read_text())
    assert s["status"] == "diverged" and s["diverged_at"] == BAD_STEP
    # Every gradient below the logits is NaN too; column order would have said fc1.weight.
    assert s["diverged_quantity"] == quantity
    table = rows(out.run_dir / "metrics.csv")
    assert [int(r["step"]) for r in table] == [5, BAD_STEP]  # the logged step 5, then step 7
    row = table[-1]
    assert int(row["epoch"]) == 1 and int(row["examples"]) == BAD_STEP * 64
    assert float(row["lr"]) == 0.1
    assert math.isnan(float(row["logit_grad_norm"]))
    assert all(math.isnan(float(row[c])) for c in row if c.startswith("grad_norm/"))
    loss = float(row["loss"])
    assert math.isnan(loss) if where == "loss" else math.isfinite(loss) and loss > 0
    # Statistics a non-logged step does not compute are empty cells, not invented numbers.
    assert row["acc"] == "" and row["wall_s"] == ""
    assert all(row[c] == "" for c in row if c.startswith("update_ratio/"))


def test_the_diverged_row_is_read_back_by_compare(tiny_config, monkeypatch, cli, tmp_path):
    from ce_lab.cli.app import app
    from ce_lab.runs.record import load_run

    _poison(monkeypatch, "ce", BAD_STEP, "logits")
    out = train(tiny_config(**{"loss.name": "ce"}))
    rec = load_run(out.run_dir)
    assert rec.metrics["step"] == [5.0, float(BAD_STEP)]
    assert math.isnan(rec.metrics["acc"][-1])  # an empty cell reads as NaN, as pandas reads it
    result = cli.invoke(app, ["compare", str(out.run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "diverged" in result.stdout


def test_a_logged_diverged_step_keeps_its_full_row(tiny_config, monkeypatch):
    _poison(monkeypatch, "ce", 10, "logits")
    out = train(tiny_config(**{"loss.name": "ce"}))
    row = rows(out.run_dir / "metrics.csv")[-1]
    assert int(row["step"]) == 10 and row["acc"] != "" and row["wall_s"] != ""
    assert json.loads((out.run_dir / "summary.json").read_text())["diverged_quantity"] == (
        "logit_grad_norm")
