"""Divergence is reported where it was born, in the order of the computation (loss, d loss / d
logits, then the layers from the output down), and the diverged step has its metrics.csv row even
when it was not a logged step."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from ce_lab.training import train
from ce_lab.training.stack import Stack
from tests.helpers import BAD_STEP, poison_loss


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_watch_follows_the_backward_order(tiny_config):
    cfg = tiny_config(**{"model.hidden": [8, 6]})
    stack = Stack([cfg], torch.device("cpu"), 10, 784, 10)
    assert stack.watch_names == [
        "logit_grad_norm", "grad_norm/fc3.weight", "grad_norm/fc3.bias", "grad_norm/fc2.weight",
        "grad_norm/fc2.bias", "grad_norm/fc1.weight", "grad_norm/fc1.bias"]


@pytest.mark.parametrize("where,quantity", [("logits", "logit_grad_norm"), ("loss", "loss")])
def test_a_nan_is_reported_where_it_was_born_and_its_step_has_a_row(tiny_config, monkeypatch,
                                                                    where, quantity):
    poison_loss(monkeypatch, "ce", BAD_STEP, where)
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


def test_a_logged_diverged_step_keeps_its_full_row(tiny_config, monkeypatch):
    poison_loss(monkeypatch, "ce", 10, "logits")
    out = train(tiny_config(**{"loss.name": "ce"}))
    row = rows(out.run_dir / "metrics.csv")[-1]
    assert int(row["step"]) == 10 and row["acc"] != "" and row["wall_s"] != ""
    assert json.loads((out.run_dir / "summary.json").read_text())["diverged_quantity"] == (
        "logit_grad_norm")
