"""Regression tests from a review of train / compare / batch (edge cases users hit), through the
CLI: one-line errors, exit codes and what it prints."""

from __future__ import annotations

import csv
import json

from ce_lab.cli.app import app
from ce_lab.config import resolve_config
from ce_lab.training import train
from tests.helpers import InterruptOnce, dense_sets, runner
from tests.run_factory import make_run


def test_compare_into_an_out_dir_that_is_a_file_is_one_line_not_a_traceback(tiny_mnist, tmp_path):
    (tmp_path / "afile").write_text("")
    args = ["compare", "--losses", "ce", "--no-plots", "--out-dir", str(tmp_path / "afile")]
    for s in dense_sets(tiny_mnist, "train.max_steps=2"):
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "cannot create a comparison folder" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_resume_from_an_unreadable_checkpoint_is_one_line_and_leaves_the_run_alone(tiny_mnist, tmp_path):
    cfg = resolve_config(None, dense_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}", "train.epochs=3"))
    cut = train(cfg, reporter=InterruptOnce(8))
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
    for s in dense_sets(tiny_mnist, f"train.max_steps={max_steps}"):
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
    for s in dense_sets(tiny_mnist):
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    hint = [line for line in result.stderr.splitlines() if "--resume" in line]
    assert len(hint) == 1 and hint[0].endswith(next(out_dir.iterdir()).name)
    assert str(out_dir) in hint[0]


def test_resume_refuses_other_options_even_falsy_ones(tmp_path):
    # --epochs 0 is an option given, though falsy: --resume must refuse it like any other.
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--epochs", "0"])
    assert result.exit_code == 2
    assert "give no other options" in result.stderr
