"""ce-lab compare --tune-lr (tune on validation, then compare) and --best-of KEY (a batch that
swept the key), end to end on the tiny MNIST; and every misuse as one line with exit 2."""

from __future__ import annotations

import pytest

from tests.run_factory import make_run


def test_a_loss_whose_tuning_runs_all_failed_is_one_error(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ce_lab.comparison.tuning import NoValidMember
    from ce_lab.config import RunConfig, with_overrides
    from ce_lab.lab import plan_comparison, stacks
    from ce_lab.lab.tuning import tune

    ce = make_run(tmp_path / "tuned", "ce", 1, overrides={"optim.lr": 0.1})
    gone = tmp_path / "tuned" / "20261123-100000-mse-dead"  # failed before writing a summary

    def fake_train(configs_by_seed, group, root, **kw):
        return [SimpleNamespace(run_dir=ce, status="completed"),
                SimpleNamespace(run_dir=gone, status="failed")], False

    monkeypatch.setattr(stacks, "train_or_resume", fake_train)
    base = with_overrides(RunConfig(), {"out_dir": str(tmp_path / "runs")})
    request = plan_comparison(base, ["ce", "mse"], [0], tune_lr=True, lr_grid=[0.1])
    with pytest.raises(NoValidMember, match=r"^mse: no tuning run could be read back \(.*"
                       r"mse-dead: missing"):
        tune(request, tmp_path / "comp")


def test_best_of_pairs_each_loss_with_the_reference_of_its_setting_at_their_own_rates(tmp_path):
    """Under --best-of, the tuned key is no setting: mse at its rate is paired with ce at ce's
    rate, setting by setting (here two noise levels); before, a loss whose chosen rate differed
    from the reference's had no paired row as soon as a second setting existed."""
    import ce_lab

    runs = []
    for noise in (0.0, 0.2):
        for seed in (0, 1, 2):
            for loss, lr, val in (("ce", 0.1, 0.9), ("ce", 0.3, 0.8),
                                  ("mse", 0.1, 0.7), ("mse", 0.3, 0.85)):
                test = {"ce": 0.90, "mse": 0.86}[loss] - noise / 10 + seed / 100
                runs.append(make_run(tmp_path, loss, seed, final_val_acc=val, test_acc=test,
                                     overrides={"optim.lr": lr, "data.label_noise": noise}))
    comp = ce_lab.compare_runs(runs, best_of="optim.lr", select="final-val-acc", plots=False)
    assert {c.context.get("data.label_noise"): c.chosen for c in comp.tuning.cells
            if c.loss == "mse"} == {0.0: 0.3, 0.2: 0.3}
    paired = [p for p in comp.result.diffs if p.metric.metric.key == "test_acc"]
    assert len(paired) == 2  # mse against ce at each noise level
    for p in paired:
        assert p.label.startswith("mse") and p.reference.startswith("ce")
        assert p.seeds == [0, 1, 2] and p.diffs == pytest.approx([-0.04] * 3)
