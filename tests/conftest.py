"""Every test runs offline, on CPU unless ``--device`` says otherwise, with user paths (data
cache, runs) pointed at a temp folder.

``pytest --device cuda|mps|cpu`` (default cpu): the training, backprop, optimizer and loss tests
(``DEVICE_MODULES``) run on that torch device, and skip with a reason where it is absent. Bit for
bit promises hold on the CPU; elsewhere kernels may reduce in another order for another shape,
so those tests compare within float32 tolerances there (``assert_same``). A fused member equals
its lone run to the bit on the CPU in evaluation (given the same weights) always, by
construction, and in training wherever ``stack_trains_exactly`` finds the step slice-exact on the
machine running the tests; elsewhere within float32 tolerances (docs/fusion.md).

Shared fixtures (use them instead of a module-level copy):
- ``tiny_mnist``: the root of a tiny, learnable MNIST (tests/mnist_fixture.py), session-wide.
- ``cli``: a ``typer.testing.CliRunner`` for ``ce_lab.cli.app.app``; the autouse fixture below
  fixes the console width, so rich output does not wrap under assertions.
- ``tiny_sets``: the ``--set`` items of a small, fast run on ``tiny_mnist`` (CPU, one hidden
  layer of 32, no progress output), extra items appended.
- ``tiny_config``: the same as a ``RunConfig``, with dotted-key overrides, runs under tmp_path.
- ``offline_source``: ``ensure_mnist`` fetching by copying the tiny MNIST (no network).
- ``small_fs``: a 3 MiB tmpfs (skipped where it cannot be mounted), for full-disk tests.
- ``cfg``: the ``RunConfig`` of ``tests.helpers.tiny_sets`` (on the ``--device``), runs under
  tmp_path; ``data``: its loaded tiny MNIST on that device, once per test module.

Helpers that are not fixtures live in tests/helpers.py; no test module imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests import mnist_fixture

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


def stack_trains_exactly(cfgs, data) -> bool:
    """Whether, here (this CPU, these threads), two training steps of a stack of ``cfgs`` leave
    every member's loss and weights bit for bit where its lone steps leave them, at the batch
    sizes a run on ``data`` takes (a full batch and an epoch's short last one).

    Evaluation is a lone run's by construction (``Stack.evaluate``), but training is not: a
    member's slice of the stack's wide and batched products, and of the bias sum over the wide
    first layer, is its lone call's only where the BLAS and torch's kernels pick the same blocking,
    vector tails and alignment for it (docs/fusion.md). The fusion tests assert
    bit-equal columns where this holds and float32 tolerances where it does not.
    """
    import torch

    from ce_lab.training.stack import Stack, loss_group_key

    if TEST_DEVICE != "cpu":
        return False
    cfgs = sorted(cfgs, key=loss_group_key)  # the loop's order (ce_lab.training.loop)
    n, n_in, n_out = data.train_x.shape[0], data.spec.n_inputs, data.spec.n_classes
    bs = cfgs[0].train.batch_size
    dev, gen = torch.device("cpu"), torch.Generator().manual_seed(0)
    same = lambda a, b: bool(((a == b) | (a.isnan() & b.isnan())).all())  # noqa: E731
    for b in {min(bs, n), n % bs or bs}:
        batches = [(torch.rand(b, n_in, generator=gen), torch.randint(0, n_out, (b,), generator=gen))
                   for _ in range(2)]
        stacks = [Stack(cfgs, dev, 2, n_in, n_out)] + [Stack([c], dev, 2, n_in, n_out) for c in cfgs]
        with torch.no_grad():  # as the loop steps
            losses = [[s.step(x, y, i, log_now=False)[0] for i, (x, y) in enumerate(batches)]
                      for s in stacks]
        for k, lone in enumerate(stacks[1:]):
            if not all(same(f[k : k + 1], a) for f, a in zip(losses[0], losses[k + 1])):
                return False
            if not all(same(p[k : k + 1], q) for p, q in zip(stacks[0].params, lone.params)):
                return False
    return True


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
    from tests.helpers import runner

    return runner


def tiny_set_items(root: Path, *extra: str) -> list[str]:
    """``--set`` items for a small run on the tiny MNIST under ``root`` (``tests.helpers.TINY``)."""
    from tests.helpers import set_items, tiny_settings

    return [*set_items(tiny_settings(root)), *extra]


@pytest.fixture
def tiny_sets(tiny_mnist) -> Callable[..., list[str]]:
    return lambda *extra: tiny_set_items(tiny_mnist, *extra)


@pytest.fixture
def tiny_config(tiny_mnist, tmp_path) -> Callable[..., Any]:
    from ce_lab.config import resolve_config, with_overrides

    base = resolve_config(None, tiny_set_items(tiny_mnist, f"out_dir={tmp_path / 'runs'}",
                                               "log.checkpoint=false"))
    return lambda **overrides: with_overrides(base, overrides) if overrides else base


@pytest.fixture
def cfg(tiny_mnist, tmp_path):
    from ce_lab.config import resolve_config
    from tests.helpers import tiny_sets

    return resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}"))


@pytest.fixture(scope="module")
def data(tiny_mnist):
    from ce_lab.config import resolve_config
    from ce_lab.data.loader import load_mnist
    from tests.helpers import tiny_sets

    base = resolve_config(None, tiny_sets(tiny_mnist))
    return load_mnist(base.data, base.seed, TEST_DEVICE)


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs (root only; skipped where it cannot be mounted), unmounted afterwards."""
    import subprocess
    import uuid

    mnt = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def offline_source(monkeypatch, tiny_mnist):
    """ensure_mnist's sources replaced by one that copies the tiny MNIST (md5-checked as tiny)."""
    import shutil

    from ce_lab.data import fetch
    from ce_lab.data.files import MNIST_FILES, raw_dir
    from tests.mnist_fixture import tiny_table

    def copy(raw, reporter):
        for f in MNIST_FILES:
            shutil.copyfile(raw_dir(tiny_mnist) / f.name, raw / f.name)

    monkeypatch.setitem(fetch.ensure_mnist.__kwdefaults__, "sources", (fetch.Source("copy", copy),))
    monkeypatch.setitem(fetch.ensure_mnist.__kwdefaults__, "expected", tiny_table(tiny_mnist))
