"""TensorBoard: ``ce-lab export tensorboard`` and ``log.tensorboard: true``, read back with
tensorboard's own event reader (EventAccumulator) and compared with the CSVs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from tests.run_factory import make_run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402


def _events(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _hparams(acc: EventAccumulator) -> dict:
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out = {}
    for key, v in info.hparams.items():
        out[key] = getattr(v, v.WhichOneof("kind"))
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _assert_scalars_equal_csv(acc: EventAccumulator, run_dir: Path) -> None:
    """Every value column of both CSVs, step by step, as float32 (what an event holds)."""
    import numpy as np

    for name in ("metrics.csv", "eval.csv"):
        rows = _csv(run_dir / name)
        for col in rows[0]:
            if col in ("step", "epoch", "examples", "wall_s"):
                continue
            events = acc.Scalars(col)
            assert [e.step for e in events] == [int(r["step"]) for r in rows], col
            want = np.array([float(r[col]) for r in rows], dtype=np.float32)
            got = np.array([e.value for e in events], dtype=np.float32)
            np.testing.assert_array_equal(got, want, err_msg=col)


def test_export_writes_every_metric_and_the_hparams_of_each_run(cli, tmp_path):
    out = tmp_path / "runs"
    ce = make_run(out, "ce", 0, overrides={"optim.lr": 0.05})
    mse = make_run(out, "mse", 1, diverged_at=300, status="diverged")
    result = cli.invoke(app, ["export", "tensorboard", str(ce), str(mse)])
    assert result.exit_code == 0, result.output
    assert f"2 run(s) written to {out / 'tensorboard'}" in result.stdout
    for run, loss, lr in ((ce, "ce", 0.05), (mse, "mse", 0.1)):
        acc = _events(out / "tensorboard" / run.name)  # one TensorBoard run per run, by its id
        _assert_scalars_equal_csv(acc, run)
        assert acc.Scalars("test_acc")[-1].value == pytest.approx(0.955)
        assert acc.Scalars("test_acc")[-1].step == 600
        hp = _hparams(acc)
        assert hp["loss.name"] == loss and hp["optim.lr"] == pytest.approx(lr)
        assert hp["model.hidden"] == "[256]" and hp["train.max_steps"] == "none"
        assert "out_dir" not in hp and "log.progress" not in hp  # keys that change no result

    # Again, into --out: the earlier events are replaced, not doubled.
    again = cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    assert again.exit_code == 0, again.output
    cli.invoke(app, ["export", "tensorboard", str(ce), "--out", str(tmp_path / "tb")])
    assert len(list((tmp_path / "tb" / ce.name).iterdir())) == 1
    assert len(_events(tmp_path / "tb" / ce.name).Scalars("loss")) == 60


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


def test_live_events_per_member_equal_the_csvs_which_do_not_change(cli, tmp_path, tiny_sets):
    def compare(out: str, *extra: str) -> list[Path]:
        sets = tiny_sets(f"out_dir={tmp_path / out}", "train.epochs=1", *extra)
        result = cli.invoke(app, ["compare", "--losses", "ce,mse", "--seeds", "0", "--no-plots",
                                  "--format", "csv", *sum((["--set", s] for s in sets), [])])
        assert result.exit_code == 0, result.output
        return sorted((p for p in (tmp_path / out).iterdir() if (p / "meta.json").exists()),
                      key=lambda p: p.name.split("-")[2])

    live = compare("live", "log.tensorboard=true")
    plain = compare("plain")
    for with_tb, without in zip(live, plain):
        events = list(with_tb.glob("events.out.tfevents.*"))
        assert len(events) == 1  # each member its own event file, in its own run folder
        acc = _events(with_tb)
        _assert_scalars_equal_csv(acc, with_tb)
        summary_acc = __import__("json").loads((with_tb / "summary.json").read_text())
        assert acc.Scalars("test_acc")[-1].value == pytest.approx(summary_acc["final"]["test_acc"])
        assert _hparams(acc)["loss.name"] == with_tb.name.split("-")[2]
        for name in ("metrics.csv", "eval.csv"):  # the metric files are those of a plain run
            a, b = _csv(with_tb / name), _csv(without / name)
            assert [{k: v for k, v in r.items() if k != "wall_s"} for r in a] == \
                   [{k: v for k, v in r.items() if k != "wall_s"} for r in b]


def test_a_resumed_run_continues_its_events_without_doubling_steps(tiny_config):
    from ce_lab.config import with_overrides
    from ce_lab.tensorboard import RunEvents
    from ce_lab.training import resume, train
    from tests.helpers import InterruptAt

    cfg = with_overrides(tiny_config(), {"log.tensorboard": True, "log.eval_every": 5})
    cut = train(cfg, reporter=InterruptAt(10))
    assert cut.status == "interrupted"
    # As after a crash: the first process had logged past its checkpoint (step 10).
    first = RunEvents(cut.run_dir)
    first.scalars({"step": 15, "wall_s": 0.5, "loss": 99.0})
    first.close()
    done = resume(cut.run_dir)
    assert done.status == "completed"
    assert len(list(done.run_dir.glob("events.out.tfevents.*"))) == 1  # written anew
    acc = _events(done.run_dir)
    _assert_scalars_equal_csv(acc, done.run_dir)  # steps 5, 10, 15, ... once, as the CSVs
    assert 99.0 not in [e.value for e in acc.Scalars("loss")]
    assert _hparams(acc)["loss.name"] == "ce"
