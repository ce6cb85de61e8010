"""TensorBoard events of a run (ce_lab/tensorboard.py), read back with tensorboard's own event
reader (EventAccumulator) and compared with the CSVs. Live events of a comparison's members and of a
resumed run; ``ce-lab export tensorboard``: tests/cli/test_export.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
from tests.helpers import assert_scalars_equal_csv, rows, tb_events, tb_hparams


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
    acc = tb_events(done.run_dir)
    assert_scalars_equal_csv(acc, done.run_dir)  # steps 5, 10, 15, ... once, as the CSVs
    assert 99.0 not in [e.value for e in acc.Scalars("3_train/loss")]
    assert tb_hparams(acc) == {"loss.name": "ce", "seed": cfg.seed}  # one member: nothing differs


def test_live_events_per_member_equal_the_csvs_which_do_not_change(tiny_config, tmp_path):
    from ce_lab.lab import plan_comparison, run_comparison

    def compare(out: str, **changes) -> list[Path]:
        """ce and mse fused, one seed, as ``ce-lab compare --losses ce,mse --seeds 0`` trains them."""
        base = tiny_config(**{"out_dir": str(tmp_path / out), "train.epochs": 1, **changes})
        run_comparison(plan_comparison(base, ["ce", "mse"], [0], plots=False))
        return sorted((p for p in (tmp_path / out).iterdir() if (p / "meta.json").exists()),
                      key=lambda p: p.name.split("-")[2])

    live = compare("live", **{"log.tensorboard": True})
    plain = compare("plain")
    for with_tb, without in zip(live, plain):
        events = list(with_tb.glob("events.out.tfevents.*"))
        assert len(events) == 1  # each member its own event file, in its own run folder
        acc = tb_events(with_tb)
        assert_scalars_equal_csv(acc, with_tb)
        summary_acc = json.loads((with_tb / "summary.json").read_text())
        assert acc.Scalars("2_test/test_acc")[-1].value == pytest.approx(
            summary_acc["final"]["test_acc"])
        # the keys that differ in the stack (the loss; its options: mse has none), and the seed
        hp = tb_hparams(acc)
        assert hp["loss.name"] == with_tb.name.split("-")[2] and hp["seed"] == 0
        assert "optim.lr" not in hp and "data.label_noise" not in hp
        for name in ("metrics.csv", "eval.csv"):  # the metric files are those of a plain run
            a, b = rows(with_tb / name), rows(without / name)
            assert [{k: v for k, v in r.items() if k != "wall_s"} for r in a] == \
                   [{k: v for k, v in r.items() if k != "wall_s"} for r in b]


def test_a_run_name_that_would_be_ambiguous_or_too_long_is_the_run_id():
    from ce_lab.tensorboard import run_names

    class R:  # what run_names reads of a RunRecord
        def __init__(self, run_id, **config):
            self.run_id, self.config = run_id, config

    same = [R("a1", loss={"name": "ce"}, seed=0, out_dir="x"),
            R("a2", loss={"name": "ce"}, seed=0, out_dir="y")]  # out_dir changes no result
    assert run_names(same) == ["a1", "a2"]
    long = [R(f"b{i}", loss={"name": "ce"}, data={"root": "/", "label_noise": i / 10},
              model={"hidden": list(range(60 + i))}) for i in range(2)]
    assert run_names(long) == ["b0", "b1"]
    odd = [R("c1", loss={"name": "ce"}, optim={"name": "sgd/x"}), R("c2", loss={"name": "ce"})]
    assert run_names(odd) == ["optimizer=sgd_x", "optimizer=None"]
