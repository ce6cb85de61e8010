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
    # No group: at the top, each named by what differs between the two
    names = {"loss=ce lr=0.05 seed=0": (ce, "ce", 0.05),
             "loss=mse lr=0.1 seed=1": (mse, "mse", 0.1)}
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == sorted(names)
    for name, (run, loss, lr) in names.items():
        acc = tb_events(out / "tensorboard" / name)
        assert_scalars_equal_csv(acc, run)
        assert acc.Scalars("2_test/test_acc")[-1].value == pytest.approx(0.955)
        assert acc.Scalars("2_test/test_acc")[-1].step == 600
        # the HParams columns are the keys that differ, constants are not among them
        assert tb_hparams(acc) == {"loss.name": loss, "optim.lr": pytest.approx(lr),
                                   "seed": int(name[-1])}

    # Again, into --out: the earlier events are replaced, not doubled.
    again = cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    assert again.exit_code == 0, again.output
    cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    alone = tmp_path / "tb" / ce.name  # one run: nothing differs, named by its id
    assert len(list(alone.iterdir())) == 1
    assert len(tb_events(alone).Scalars("3_train/loss")) == 60
    assert tb_hparams(tb_events(alone)) == {"loss.name": "ce"}


def test_export_nests_runs_by_group_and_orders_validation_first(cli, tmp_path):
    """Runs nested by comparison, named by what differs in it; tags whose sections TensorBoard
    (which groups cards by the text before the first "/", ordered) shows validation and test
    first; the HParams columns the keys that differ, a tuned rate's included."""
    out = tmp_path / "runs"
    runs = [make_run(out, loss, seed, group="compare-x", overrides={"optim.lr": lr})
            for loss, lr in (("ce", 0.316), ("mse", 3.1622776601683795)) for seed in (0, 1)]
    runs.append(make_run(out, "ce", 0, group="batch-y/../z"))  # an unsafe group: skipped, named
    result = cli.invoke(app, ["export", "tensorboard", *map(str, runs), "--out",
                              str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert "group 'batch-y/../z' is not a plain file name; not exported" in result.stderr
    group = tmp_path / "tb" / "compare-x"
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["compare-x"]
    assert sorted(p.name for p in group.iterdir()) == [
        "loss=ce lr=0.316 seed=0", "loss=ce lr=0.316 seed=1",
        "loss=mse lr=3.16 seed=0", "loss=mse lr=3.16 seed=1"]
    acc = tb_events(group / "loss=mse lr=3.16 seed=1")
    hp = tb_hparams(acc)
    assert hp == {"loss.name": "mse", "optim.lr": pytest.approx(3.1622776601683795), "seed": 1}
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    trial = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.group_name
    assert trial == "compare-x/loss=mse lr=3.16 seed=1"  # whole, and one per run
    tags = acc.Tags()["scalars"]
    assert {"1_validation/val_acc", "2_test/test_acc", "3_train/loss", "3_train/acc",
            "4_gradients/grad_norm/total", "4_gradients/logit_grad_norm"} <= set(tags)
    sections = sorted({t.split("/", 1)[0] for t in tags})
    assert sections[:3] == ["1_validation", "2_test", "3_train"]
    assert all("/" not in p.name for p in group.iterdir())


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
