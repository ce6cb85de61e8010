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
