"""Regression tests from a review of train / compare / batch (edge cases users hit)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ce_lab.config import resolve_config, with_overrides
from ce_lab.data.loader import load_mnist
from ce_lab.progress import Reporter
from ce_lab.runs.record import select_runs
from ce_lab.training import resume, train, train_paired
from tests.helpers import InterruptAt, InterruptOnce, dense_sets
from tests.run_factory import make_run


@pytest.fixture
def cfg(tiny_mnist, tmp_path):
    return resolve_config(None, dense_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}"))


@pytest.fixture(scope="module")
def data(tiny_mnist):
    base = resolve_config(None, dense_sets(tiny_mnist))
    return load_mnist(base.data, base.seed, base.device)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


def test_resume_from_an_epoch_end_continues_with_the_next_epochs_batch_order(cfg, data):
    # 1000 training images / 64 = 16 steps an epoch: interrupting at step 16 leaves a checkpoint
    # at an epoch boundary, so the resumed run must draw epoch 2's order, not epoch 1's again.
    cfg = with_overrides(cfg, {"train.epochs": 3})
    full = train(cfg, data=data)
    cut = train(cfg, data=data, reporter=InterruptAt(16))
    assert cut.status == "interrupted"
    done = resume(cut.run_dir, data=data)
    assert done.status == "completed"
    for name in ("metrics.csv", "eval.csv"):
        assert rows(done.run_dir / name) == rows(full.run_dir / name)


def test_ctrl_c_stops_a_sequential_comparison_instead_of_training_the_next_config(cfg, data):
    cfgs = [with_overrides(cfg, {"loss.name": "ce"}),
            with_overrides(cfg, {"loss.name": "mse", "model.hidden": [24]})]  # not fusable
    outcomes = train_paired(cfgs, data=data, reporter=InterruptOnce(8))
    assert [o.status for o in outcomes] == ["interrupted"]


def test_divergence_found_on_a_later_logged_step_reports_examples_of_the_diverged_step(cfg, data):
    cfg = with_overrides(cfg, {"loss.name": "nll-manual", "optim.lr": 200.0,
                               "log.log_every": 10, "log.eval_every": 100})
    out = train(cfg, data=data)
    s = json.loads((out.run_dir / "summary.json").read_text())
    assert s["status"] == "diverged" and s["diverged_at"] < 10  # found at the step-10 read-back
    assert s["steps"] == s["diverged_at"]
    assert s["examples"] == s["steps"] * 64


def test_last_n_ignores_folders_that_are_not_runs(tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", started="2026-11-20T10:00:00+00:00")
    new = make_run(out, "mse", started="2026-11-21T10:00:00+00:00")
    (out / "my-notes").mkdir()  # newer by mtime, but no meta.json: not a run
    records, skipped = select_runs(out, last=2)
    assert [r.path for r in records] == [old, new] and skipped == []


class PipeClosedAt(Reporter):
    """What rich does when stdout's reader goes away (`ce-lab train | head`): SystemExit(1)."""

    def logged(self, step, epoch, losses):
        if step == 8:
            raise SystemExit(1)


def test_a_closed_output_pipe_ends_the_run_as_interrupted_not_running(cfg, data):
    with pytest.raises(SystemExit):
        train(cfg, data=data, reporter=PipeClosedAt())
    (run_dir,) = list(cfg.out_dir.iterdir())
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 8
