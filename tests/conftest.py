"""Every test runs offline on CPU, with user paths (data cache, runs) pointed at a temp folder.

Shared fixtures (use them instead of a module-level copy):
- ``tiny_mnist``: the root of a tiny, learnable MNIST (tests/mnist_fixture.py), session-wide.
- ``cli``: a ``typer.testing.CliRunner`` for ``ce_lab.cli.app.app``; the autouse fixture below
  fixes the console width, so rich output does not wrap under assertions.
- ``tiny_sets``: the ``--set`` items of a small, fast run on ``tiny_mnist`` (CPU, one hidden
  layer of 32, no progress output), extra items appended.
- ``tiny_config``: the same as a ``RunConfig``, with dotted-key overrides, runs under tmp_path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests import mnist_fixture
from tests.mnist_fixture import TINY_VAL_SIZE

tiny_mnist = mnist_fixture.tiny_mnist  # the shared fixture, registered here


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("CE_LAB_DATA_DIR", str(tmp_path / "data-cache"))
    monkeypatch.setenv("COLUMNS", "200")  # rich output must not wrap under assertions
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)  # runs/ land in the temp folder


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def tiny_set_items(root: Path, *extra: str) -> list[str]:
    """``--set`` items for a small run on the tiny MNIST under ``root``."""
    return [f"data.root={root}", "data.verify_md5=false", f"data.val_size={TINY_VAL_SIZE}",
            "model.hidden=[32]", "train.epochs=2", "log.log_every=5", "log.eval_every=10",
            "log.progress=none", "device=cpu", *extra]


@pytest.fixture
def tiny_sets(tiny_mnist) -> Callable[..., list[str]]:
    return lambda *extra: tiny_set_items(tiny_mnist, *extra)


@pytest.fixture
def tiny_config(tiny_mnist, tmp_path) -> Callable[..., Any]:
    from ce_lab.config import resolve_config, with_overrides

    base = resolve_config(None, tiny_set_items(tiny_mnist, f"out_dir={tmp_path / 'runs'}",
                                               "log.checkpoint=false"))
    return lambda **overrides: with_overrides(base, overrides) if overrides else base
