"""Every test runs offline, on CPU unless ``--device`` says otherwise, with user paths (data
cache, runs) pointed at a temp folder.

``pytest --device cuda|mps|cpu`` (default cpu): the training, backprop, optimizer and loss tests
(``DEVICE_MODULES``) run on that torch device, and skip with a reason where it is absent. Bit for
bit promises hold on the CPU; elsewhere kernels may reduce in another order for another shape,
so those tests compare within float32 tolerances there (``assert_same``).

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

DEVICE_MODULES = ("test_nn", "test_optim", "test_losses", "test_train", "test_fusion")
TEST_DEVICE = "cpu"  # what the device tests run on: --device where it is available


def device_available(name: str) -> bool:
    import torch

    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return name == "cpu"


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda", "mps"),
                     help="torch device for the training, backprop, optimizer and loss tests "
                          "(default cpu); they skip where it is absent")


def pytest_configure(config):
    global TEST_DEVICE
    requested = config.getoption("--device")
    TEST_DEVICE = requested if requested == "cpu" or device_available(requested) else "cpu"


def pytest_collection_modifyitems(config, items):
    requested = config.getoption("--device")
    if requested == "cpu" or device_available(requested):
        return
    skip = pytest.mark.skip(reason=f"--device {requested}: not available on this machine")
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in DEVICE_MODULES:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> str:
    """The torch device the device tests run on (``--device``)."""
    return TEST_DEVICE


def assert_same(a, b, msg=None) -> None:
    """Equal to the bit on the CPU; within float32 rounding on an accelerator."""
    import torch

    if TEST_DEVICE == "cpu":
        assert torch.equal(a, b), msg
    else:
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-6, equal_nan=True, msg=msg)


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
