"""``ce-lab export tensorboard``: every metric and the hparams of each run, read back with
tensorboard's own event reader (EventAccumulator) and compared with the CSVs; bad runs skipped
with a line; the extra named when tensorboard is missing. Live events: tests/test_tensorboard.py."""

from __future__ import annotations

import sys

import pytest

from ce_lab.cli.app import app
from tests.helpers import assert_scalars_equal_csv, tb_events, tb_hparams
from tests.run_factory import make_run

pytest.importorskip("tensorboard")


def test_export_writes_every_metric_and_the_hparams_of_each_run(cli, tmp_path):
    out = tmp_path / "runs"
    ce = make_run(out, "ce", 0, overrides={"optim.lr": 0.05})
    mse = make_run(out, "mse", 1, diverged_at=300, status="diverged")
    result = cli.invoke(app, ["export", "tensorboard", str(ce), str(mse)])
    assert result.exit_code == 0, result.output
    assert f"2 run(s) written to {out / 'tensorboard'}" in result.stdout
    for run, loss, lr in ((ce, "ce", 0.05), (mse, "mse", 0.1)):
        acc = tb_events(out / "tensorboard" / run.name)  # one TensorBoard run per run, by its id
        assert_scalars_equal_csv(acc, run)
        assert acc.Scalars("test_acc")[-1].value == pytest.approx(0.955)
        assert acc.Scalars("test_acc")[-1].step == 600
        hp = tb_hparams(acc)
        assert hp["loss.name"] == loss and hp["optim.lr"] == pytest.approx(lr)
        assert hp["model.hidden"] == "[256]" and hp["train.max_steps"] == "none"
        assert "out_dir" not in hp and "log.progress" not in hp  # keys that change no result

    # Again, into --out: the earlier events are replaced, not doubled.
    again = cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    assert again.exit_code == 0, again.output
    cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    assert len(list((tmp_path / "tb" / ce.name).iterdir())) == 1
    assert len(tb_events(tmp_path / "tb" / ce.name).Scalars("loss")) == 60


def test_export_skips_bad_runs_with_a_line_and_fails_with_none(cli, tmp_path):
    good = make_run(tmp_path / "runs", "ce")
    result = cli.invoke(app, ["export", "tensorboard", str(good), str(tmp_path / "nope")])
    assert result.exit_code == 0, result.output
    assert "skipped:" in result.stderr and "nope" in result.stderr
    none = cli.invoke(app, ["export", "tensorboard", str(tmp_path / "nope")])
    assert none.exit_code == 1 and "no runs to export" in none.stderr


def test_without_tensorboard_the_error_names_the_extra(cli, tmp_path, monkeypatch, tiny_sets):
    good = make_run(tmp_path / "runs", "ce")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = cli.invoke(app, ["export", "tensorboard", str(good)])
    assert result.exit_code == 1
    assert result.stderr.strip() == ('error: ce-lab export tensorboard needs tensorboard, which '
                                     'is not installed: pip install "ce-lab[tensorboard]"')
    train = cli.invoke(app, ["train", *sum((["--set", s] for s in tiny_sets(
        "log.tensorboard=true", f"out_dir={tmp_path / 'live'}")), [])])
    assert train.exit_code == 1 and 'ce-lab[tensorboard]' in train.stderr
    assert not (tmp_path / "live").exists()  # refused before any run folder was made
