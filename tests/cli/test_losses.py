"""`ce-lab losses` lists every registered loss with its formula, source and options; a bad loss
option on the command line is one line and exit 2; a registered loss needs no other edit to be
listed, validated, trained and compared."""

from __future__ import annotations

import json

import pytest
import torch

from ce_lab.config import resolve_config
from ce_lab.losses import LOSSES, loss_names
from tests.float64_refs import REFERENCES

# ---------------------------------------------------------------------------------------------
# A loss is one function plus one registration: listed, validated, trained, with its options


def _options_rows(stdout: str) -> list[tuple[str, str, str, str]]:
    """(loss, key, default, meaning) rows of the options table of `ce-lab losses`."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 6 and cells[2].startswith("loss."):
            rows.append(tuple(cells[1:5]))
    return rows


def test_ce_lab_losses_lists_every_loss_with_its_options(cli):
    from ce_lab.cli.app import app

    result = cli.invoke(app, ["losses"])
    assert result.exit_code == 0, result.output
    for name in loss_names():
        assert f"│ {name} " in result.stdout
    want = [(name, f"loss.{key}", str(field.default), field.description)
            for name, spec in LOSSES.items() if spec.options
            for key, field in spec.options.model_fields.items()]
    assert _options_rows(result.stdout) == want
    assert ("hinge", "loss.hinge_margin", "1.0", "the margin m (> 0)") in want


@pytest.fixture
def dummy_loss():
    """A loss registered by a test, as a plugin would: one function plus one registration."""
    from ce_lab.losses import HingeOptions, register_loss

    def smoothed_ce(logits, targets, cfg):  # label smoothing scaled by an existing option
        return torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1) * (
            cfg.hinge_margin)

    register_loss("smoothed-ce", smoothed_ce, "cross-entropy with 0.1 label smoothing, times m",
                  options=HingeOptions)
    try:
        yield "smoothed-ce"
    finally:
        del LOSSES["smoothed-ce"]


def test_a_registered_loss_is_listed_validated_trained_and_compared_with_no_other_edit(
        dummy_loss, cli, tiny_config, tiny_sets):
    from ce_lab.cli.app import app
    from ce_lab.config import load_config
    from ce_lab.training import train

    result = cli.invoke(app, ["losses"])
    assert f"│ {dummy_loss} " in result.stdout
    assert (dummy_loss, "loss.hinge_margin", "1.0", "the margin m (> 0)") in _options_rows(
        result.stdout)
    cfg = tiny_config(**{"loss.name": dummy_loss, "loss.hinge_margin": 2.0,
                         "train.epochs": 0, "train.max_steps": 6})
    assert resolve_config(sets=[f"loss.name={dummy_loss}"]).loss.name == dummy_loss
    outcome = train(cfg)
    assert outcome.status == "completed", outcome.message
    assert outcome.summary["steps"] == 6
    assert load_config(outcome.run_dir / "config.yaml").loss.name == dummy_loss

    # and compared: trained fused with ce (same weights and batches), then tabled
    sets = [arg for item in tiny_sets("train.max_steps=6", "train.epochs=0")
            for arg in ("--set", item)]
    result = cli.invoke(app, ["compare", "--losses", f"ce,{dummy_loss}", "--seeds", "0",
                              "--format", "json", "--no-plots", *sets])
    assert result.exit_code == 0, result.output
    assert [row["loss"] for row in json.loads(result.stdout)["rows"]] == ["ce", dummy_loss]


def test_a_bad_option_on_the_cli_is_one_line_and_exit_2(cli):
    from ce_lab.cli.app import app

    result = cli.invoke(app, ["train", "--loss", "gce", "--set", "loss.q=2"])
    assert result.exit_code == 2
    assert "loss.q: Input should be less than or equal to 1 (got 2)" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_ce_lab_losses_lists_formula_source_and_options(cli):
    from ce_lab.cli.app import app

    result = cli.invoke(app, ["losses"])
    assert result.exit_code == 0, result.output
    for name in REFERENCES:  # the source column begins on the loss's row (cells may wrap)
        line = next(ln for ln in result.stdout.splitlines() if f"│ {name} " in ln)
        assert LOSSES[name].source.split()[0] in line
    for key in ("loss.q", "loss.epsilon", "loss.gamma"):
        assert key in result.stdout
