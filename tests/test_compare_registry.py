"""A metric registered once appears in every comparison format, with no other edit."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ce_lab import metrics
from ce_lab.cli.app import app
from ce_lab.metrics import THRESHOLD, SummaryMetric
from tests.helpers import runner
from tests.run_factory import make_run


@pytest.fixture
def registered():
    """Two dummy metrics: a plain one (wall seconds) and one per threshold (examples to it)."""
    added = [
        metrics.register(SummaryMetric(
            "wall_seconds", "wall s", "seconds", "seconds the run took", ("wall_seconds",),
            higher_is_better=False, shown=("wall", "s"))),
        metrics.register(SummaryMetric(
            "examples_to_{t}", "examples to {t}", "step", "examples seen until the threshold",
            ("convergence", "{t}", "examples"), param=THRESHOLD, table="gradients")),
    ]
    try:
        yield added
    finally:
        for m in added:
            metrics.unregister(m.key)
    assert "wall_seconds" not in [m.key for m in metrics.summary_metrics()]


@pytest.fixture
def runs(tmp_path):
    out = tmp_path / "runs"
    return [make_run(out, "ce", steps=600, reach={0.9: 100, 0.95: None}),
            make_run(out, "mse", steps=400, reach={0.9: 200, 0.95: None})]


def invoke(runs, *args):
    result = runner.invoke(app, ["compare", *map(str, runs), "--no-plots", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_registered_metric_appears_in_csv_json_markdown_and_rich(registered, runs):
    batch = 64  # the default train.batch_size that run_factory's examples use
    data = json.loads(invoke(runs, "--format", "json"))
    assert data["columns"][-3:] == ["wall_seconds", "examples_to_0.90", "examples_to_0.95"]
    ce, mse = data["rows"]
    assert (ce["wall_seconds"], mse["wall_seconds"]) == (6.0, 4.0)  # steps * 0.01
    assert (ce["examples_to_0.90"], mse["examples_to_0.90"]) == (100 * batch, 200 * batch)
    assert ce["examples_to_0.95"] is None

    rows = list(csv.DictReader(io.StringIO(invoke(runs, "--format", "csv"))))
    assert [r["wall_seconds"] for r in rows] == ["6.0", "4.0"]
    assert [r["examples_to_0.95"] for r in rows] == ["", ""]

    md = invoke(runs, "--format", "markdown")
    accuracy, gradients = md.split("**gradients**")
    assert "| wall s |" in accuracy and "| 6.0 |" in accuracy
    assert "examples to 0.90" in gradients and "| 6400 | not reached |" in gradients

    table = invoke(runs)
    assert "wall" in table and "examples to 0.90" in table

    sorted_rows = json.loads(invoke(runs, "--sort", "wall_seconds", "--format", "json"))["rows"]
    assert [r["loss"] for r in sorted_rows] == ["mse", "ce"]


def test_unregistered_metric_is_gone(runs):
    data = json.loads(invoke(runs, "--format", "json"))
    assert "wall_seconds" not in data["columns"]
    assert data["columns"][-1] == "diverged_at"
