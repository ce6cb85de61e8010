"""The choices and defaults the CLI and the API show come from one definition each: the run
config's fields, the loss registry (DEFAULT_LOSSES), the progress modes (issue 18 §4)."""

from __future__ import annotations

import inspect
from typing import get_args

import ce_lab
from ce_lab.cli import _parse
from ce_lab.cli._common import Device, Optimizer, ProgressMode
from ce_lab.cli.app import app
from ce_lab.config import LogConfig, OptimConfig, RunConfig
from ce_lab.losses import DEFAULT_LOSSES, loss_names
from ce_lab.progress import PROGRESS_MODES


def _values(enum) -> list[str]:
    return [e.value for e in enum]


def test_option_choices_are_the_configs():
    assert _values(ProgressMode) == list(PROGRESS_MODES) == list(
        get_args(LogConfig.model_fields["progress"].annotation))
    assert _values(Device) == list(get_args(RunConfig.model_fields["device"].annotation))
    assert _values(Optimizer) == list(get_args(OptimConfig.model_fields["name"].annotation))


def test_the_default_loss_set_is_one_tuple_of_registered_losses():
    assert inspect.signature(ce_lab.compare).parameters["losses"].default is DEFAULT_LOSSES
    assert set(DEFAULT_LOSSES) <= set(loss_names())
    assert _parse.losses(None) == list(DEFAULT_LOSSES)


def test_help_shows_the_configs_defaults(cli):
    cfg = RunConfig()
    text = " ".join(cli.invoke(app, ["train", "--help"]).stdout.split())
    for shown in (f"train.epochs (default {cfg.train.epochs})", f"optim.lr (default {cfg.optim.lr})",
                  f"train.batch_size (default {cfg.train.batch_size})", f"seed (default {cfg.seed})",
                  f"optim.name (default {cfg.optim.name})", f"default {cfg.loss.name})",
                  f"(default {cfg.device})", f"default {cfg.log.progress})",
                  f"out_dir, default {cfg.out_dir})"):
        assert shown in text, shown
    text = " ".join(cli.invoke(app, ["compare", "--help"]).stdout.split())
    assert f"(default {','.join(DEFAULT_LOSSES)})" in text


def test_the_api_names_the_progress_modes(tmp_path):
    import pytest

    with pytest.raises(ce_lab.UsageError, match="progress must be auto, bar, plain or none, got 'x'"):
        ce_lab.train("ce", progress="x")
