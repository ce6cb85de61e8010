"""Flags (stalled, chance) where the CLI shows them: beside the status in ``ce-lab runs``, in
``compare``'s table and csv, printed by ``train`` for a run that learned nothing."""

from __future__ import annotations

from tests.run_factory import make_run


def test_flags_show_beside_the_status(tmp_path, cli):
    from ce_lab.cli.app import app

    runs = tmp_path / "runs"
    make_run(runs, "mse", 0, final_val_acc=0.098, flags=["stalled", "chance"])
    make_run(runs, "ce", 0)
    result = cli.invoke(app, ["compare", "--last", "2", "--out-dir", str(runs), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "flagged: stalled, chance" in result.stdout
    result = cli.invoke(app, ["compare", "--last", "2", "--out-dir", str(runs), "--no-plots",
                              "--format", "csv"])
    assert "stalled, chance" in result.stdout


def test_train_prints_the_flags_of_a_run_that_learned_nothing(cli, tiny_sets):
    from ce_lab.cli.app import app

    result = cli.invoke(app, ["train", "--loss", "mse", *(f"--set={s}" for s in tiny_sets(
        "model.output_gain=1000", "log.checkpoint=false"))])
    assert result.exit_code == 0, result.output
    assert "flagged" in result.stdout and "stalled, chance" in result.stdout
