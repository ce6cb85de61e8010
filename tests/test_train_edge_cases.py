"""Regression tests from a review of train / compare / batch (edge cases users hit)."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from ce_lab.config import resolve_config, with_overrides
from ce_lab.data.loader import load_mnist
from ce_lab.progress import Reporter
from ce_lab.runs.record import select_runs
from ce_lab.training import resume, train, train_paired
from tests.helpers import InterruptAt, runner
from tests.helpers import tiny_sets as base_sets
from tests.run_factory import make_run


def tiny_sets(root: Path, *extra: str) -> list[str]:
    # test_train's settings with a smaller model and denser logging (later --set items win)
    return base_sets(root, "model.hidden=[16]", "log.log_every=4", "log.eval_every=8", *extra)


@pytest.fixture
def cfg(tiny_mnist, tmp_path):
    return resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}"))


@pytest.fixture(scope="module")
def data(tiny_mnist):
    base = resolve_config(None, tiny_sets(tiny_mnist))
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


class InterruptOnce(Reporter):
    """SIGINT at the first logged step ``step`` only (a shared reporter sees every run)."""

    def __init__(self, step: int):
        self.step, self.sent = step, False

    def logged(self, step, epoch, losses):
        if step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


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


def test_compare_into_an_out_dir_that_is_a_file_is_one_line_not_a_traceback(tiny_mnist, tmp_path):
    (tmp_path / "afile").write_text("")
    args = ["compare", "--losses", "ce", "--no-plots", "--out-dir", str(tmp_path / "afile")]
    for s in tiny_sets(tiny_mnist, "train.max_steps=2"):
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "cannot create a comparison folder" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_last_n_ignores_folders_that_are_not_runs(tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", started="2026-11-20T10:00:00+00:00")
    new = make_run(out, "mse", started="2026-11-21T10:00:00+00:00")
    (out / "my-notes").mkdir()  # newer by mtime, but no meta.json: not a run
    records, skipped = select_runs(out, last=2)
    assert [r.path for r in records] == [old, new] and skipped == []


def test_resume_from_an_unreadable_checkpoint_is_one_line_and_leaves_the_run_alone(cfg, data):
    cut = train(with_overrides(cfg, {"train.epochs": 3}), data=data, reporter=InterruptOnce(8))
    assert cut.status == "interrupted"
    (cut.run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 2, result.output
    assert "cannot resume from this checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads((cut.run_dir / "meta.json").read_text())["status"] == "interrupted"


def test_compare_output_into_a_missing_folder_is_one_line(tmp_path):
    out = tmp_path / "runs"
    make_run(out, "ce")
    make_run(out, "mse")
    for fmt in ("table", "csv"):
        result = runner.invoke(app, ["compare", "--last", "2", "--out-dir", str(out), "--no-plots",
                                     "--format", fmt, "--output", str(tmp_path / "no" / "t.txt")])
        assert result.exit_code == 1, result.output
        assert "cannot write --output" in result.stderr and "Traceback" not in result.output


def _compare_ce_mse(tiny_mnist, tmp_path, set_loss: str, max_steps: int):
    args = ["compare", "--losses", "ce,mse", "--set-loss", set_loss, "--no-plots",
            "--format", "csv", "--progress", "none", "--out-dir", str(tmp_path / "runs")]
    for s in tiny_sets(tiny_mnist, f"train.max_steps={max_steps}"):
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_compare_says_it_trains_one_after_another_even_with_progress_none(tiny_mnist, tmp_path):
    result = _compare_ce_mse(tiny_mnist, tmp_path, "mse:model.hidden=[24]", 2)
    assert "in 2 stacks one after another" in result.stderr
    assert result.stdout.startswith("run,loss,")  # the pipe still gets clean CSV


def test_compare_with_a_learning_rate_per_loss_trains_fused(tiny_mnist, tmp_path):
    result = _compare_ce_mse(tiny_mnist, tmp_path, "mse:optim.lr=3.0", 5)
    assert "1 seed(s), fused ->" in result.stderr and "one after another" not in result.stderr
    metas = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/meta.json")]
    assert len(metas) == 2 and all(len(m["fused_with"]) == 1 for m in metas)
    lrs = sorted(float(r["lr"]) for p in (tmp_path / "runs").glob("*/metrics.csv")
                 for r in csv.DictReader(p.open()))
    assert lrs == [0.1, 3.0]  # one logged row each, at its own rate


def test_interrupted_train_prints_the_resume_hint_on_one_line(tiny_mnist, tmp_path, monkeypatch):
    import ce_lab.progress

    monkeypatch.setattr(ce_lab.progress, "make_reporter", lambda mode, console: InterruptOnce(4))
    out_dir = tmp_path / ("a-long-folder-name[x]" * 12)  # wider than the 200-column console
    args = ["train", "--out-dir", str(out_dir)]
    for s in tiny_sets(tiny_mnist):
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    hint = [line for line in result.stderr.splitlines() if "--resume" in line]
    assert len(hint) == 1 and hint[0].endswith(next(out_dir.iterdir()).name)
    assert str(out_dir) in hint[0]


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


def test_resume_refuses_other_options_even_falsy_ones(tmp_path):
    # --epochs 0 is an option given, though falsy: --resume must refuse it like any other.
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--epochs", "0"])
    assert result.exit_code == 2
    assert "give no other options" in result.stderr
