"""A newcomer's slips get one line that says what was meant (issue 19 §4): a mistyped loss, a key
given without its section, a value split over two words, a list written with spaces."""

from __future__ import annotations

from pathlib import Path

import pytest

import ce_lab
from ce_lab.cli.app import app
from ce_lab.losses import loss_names


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- loss names: CLI, config, API ------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["msee", "MSE"])
def test_train_loss_typo_is_one_line_with_the_guess(cli, typed):
    line = _one_line(cli.invoke(app, ["train", "--loss", typed]))
    assert line == f"error: unknown loss '{typed}' — did you mean 'mse'?"
    assert not Path("runs").exists()


def test_train_loss_with_no_close_name_lists_the_valid_ones(cli):
    line = _one_line(cli.invoke(app, ["train", "--loss", "nope"]))
    assert line == f"error: unknown loss 'nope'; valid losses: {', '.join(loss_names())}"


def test_compare_losses_and_reference_typos_get_guesses(cli):
    line = _one_line(cli.invoke(app, ["compare", "--losses", "ce,msee,foo"]))
    assert line.startswith("error: unknown losses 'msee' (did you mean 'mse'?), 'foo'; valid")
    line = _one_line(cli.invoke(app, ["compare", "--reference", "CE"]))
    assert line == "error: --reference: unknown loss 'CE' — did you mean 'ce'?"


def test_config_file_and_set_loss_typos_get_the_guess(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loss:\n  name: Hinge\n")
    line = _one_line(cli.invoke(app, ["train", "--config", str(cfg)]))
    assert "unknown loss 'Hinge' — did you mean 'hinge'?" in line and str(cfg) in line
    line = _one_line(cli.invoke(app, ["train", "--set", "loss.name=msee"]))
    assert "--set loss.name=msee" in line and "did you mean 'mse'?" in line


# --- config keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("item", "guess"), [
    ("lr=0.1", "did you mean 'optim.lr'?"),
    ("train.lr=0.1", "did you mean 'optim.lr'?"),  # the right key in another section
    ("momentum=0.9", "did you mean 'optim.momentum'?"),
    ("name=adam", "did you mean one of 'data.name', 'loss.name', 'optim.name', 'schedule.name'?"),
])
def test_set_key_without_its_section_suggests_the_full_key(cli, item, guess):
    line = _one_line(cli.invoke(app, ["train", "--set", item]))
    assert line == f"error: --set {item}: unknown key '{item.split('=')[0]}'; {guess}"


def test_unknown_key_with_no_match_has_no_guess(cli):
    line = _one_line(cli.invoke(app, ["train", "--set", "foo=1"]))
    assert line == "error: --set foo=1: unknown key 'foo'"


def test_config_file_key_without_its_section_suggests_the_full_key(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 1\nlr: 0.5\n")
    line = _one_line(cli.invoke(app, ["config", "show", "--config", str(cfg)]))
    assert line == f"error: {cfg}:2: unknown key 'lr'; did you mean 'optim.lr'?"


def test_batch_file_keys_are_not_guessed_from_the_run_config(cli, tmp_path):
    # `lr` at a batch file's top level is no run-config key: the batch file's own keys only
    batch = tmp_path / "b.yaml"
    batch.write_text("name: x\nlr: 0.1\n")
    line = _one_line(cli.invoke(app, ["batch", str(batch), "--dry-run"]))
    assert "unknown key 'lr'" in line and "optim.lr" not in line


# --- a value split over two words ------------------------------------------------------------------


@pytest.mark.parametrize(("args", "said"), [
    (["train", "--set", "optim.lr", "0.1"],
     "--set takes KEY=VALUE as one word: write --set optim.lr=0.1, not --set optim.lr 0.1"),
    (["train", "-s", "optim.lr:", "0.1"],  # YAML's colon
     "-s takes KEY=VALUE as one word: write -s optim.lr=0.1, not -s optim.lr: 0.1"),
    (["compare", "--set", "optim.lr", "0.1"],  # compare would take 0.1 for a run folder
     "--set takes KEY=VALUE as one word: write --set optim.lr=0.1, not --set optim.lr 0.1"),
    (["compare", "--set-loss", "mse:optim.lr", "0.5"],
     "--set-loss takes LOSS:KEY=VALUE as one word: write --set-loss mse:optim.lr=0.5, "
     "not --set-loss mse:optim.lr 0.5"),
    (["config", "show", "--set", "seed", "3"],
     "--set takes KEY=VALUE as one word: write --set seed=3, not --set seed 3"),
])
def test_set_value_as_a_second_word_says_the_form(cli, args, said):
    assert _one_line(cli.invoke(app, args)) == f"error: {said}"
    assert not Path("runs").exists()


@pytest.mark.parametrize(("args", "said"), [
    (["compare", "--seeds", "0", "1", "2", "--epochs", "1"],
     "--seeds takes one comma-separated list: write --seeds 0,1,2, not --seeds 0 1 2"),
    (["compare", "--seeds=0,1", "2"],
     "--seeds takes one comma-separated list: write --seeds 0,1,2, not --seeds 0,1 2"),
    (["compare", "--losses", "ce", "mse"],
     "--losses takes one comma-separated list: write --losses ce,mse, not --losses ce mse"),
    (["compare", "--tune-lr", "--lr-grid", "0.1", "1"],
     "--lr-grid takes one comma-separated list: write --lr-grid 0.1,1, not --lr-grid 0.1 1"),
])
def test_list_written_with_spaces_says_it_takes_a_comma_list(cli, args, said):
    assert _one_line(cli.invoke(app, args)) == f"error: {said}"


def test_a_run_folder_after_seeds_is_still_a_run_folder(cli, tmp_path):
    (tmp_path / "7").mkdir()  # a folder that is named like a seed: not taken for one
    line = _one_line(cli.invoke(app, ["compare", "--seeds", "0", "7"]))
    assert line.startswith("error: --seeds only apply when compare trains")


# --- a run with no steps ---------------------------------------------------------------------------

NO_STEPS = "train.epochs is 0 and train.max_steps is not set: the run would train no steps"


def test_train_epochs_0_without_max_steps_is_refused_before_anything_is_written(cli, tmp_path):
    line = _one_line(cli.invoke(app, ["train", "--epochs", "0"]))
    assert line.startswith(f"error: {NO_STEPS}")
    # refused before the data is fetched (the cache is empty, downloads would be tried) or a
    # run folder is made
    assert not Path("runs").exists() and not (tmp_path / "data-cache").exists()
    with pytest.raises(ce_lab.ConfigError, match=NO_STEPS):
        ce_lab.train("ce", epochs=0)
    assert not Path("runs").exists()


def test_epochs_0_with_max_steps_trains_that_many_in_either_order(cli, tiny_sets):
    for items in (["train.epochs=0", "train.max_steps=3"], ["train.max_steps=3", "train.epochs=0"]):
        args = ["train", "--json", *sum((["--set", s] for s in tiny_sets(*items)), [])]
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert '"steps": 3' in result.stdout


def test_compare_and_batch_refuse_a_run_with_no_steps(cli, tmp_path):
    line = _one_line(cli.invoke(app, ["compare", "--epochs", "0", "--no-plots"]))
    assert line.startswith(f"error: {NO_STEPS}")
    assert not Path("runs").exists()  # no compare-* folder either
    # one loss given steps of its own is enough for that loss, not for the others
    line = _one_line(cli.invoke(app, ["compare", "--epochs", "0", "--losses", "ce,mse",
                                      "--set-loss", "ce:train.max_steps=2"]))
    assert line.startswith(f"error: {NO_STEPS}")
    batch = tmp_path / "b.yaml"
    batch.write_text("name: x\ngrid:\n  train.epochs: [1, 0]\n")
    line = _one_line(cli.invoke(app, ["batch", str(batch), "--dry-run"]))
    assert "entry 1 (train.epochs=0)" in line and NO_STEPS in line
    with pytest.raises(ce_lab.ConfigError, match=NO_STEPS):
        ce_lab.compare(["ce"], epochs=0)


# --- MNIST fetched into a folder the user named ----------------------------------------------------


def test_fetch_into_a_named_data_root_is_said(cli, tmp_path, offline_source, tiny_sets):
    named = tmp_path / "my-small-set"
    args = ["train", "--max-steps", "2", *sum((["--set", s] for s in tiny_sets()), []),
            "--data-dir", str(named)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (f"note: data.root {named} holds no usable MNIST: fetching MNIST into "
            f"{named / 'MNIST' / 'raw'}") in result.stderr
    assert "note:" not in result.stdout
    again = cli.invoke(app, args)  # now it holds MNIST: nothing to say
    assert again.exit_code == 0 and "note:" not in again.stderr
