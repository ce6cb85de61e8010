"""Every test runs offline on CPU, with user paths (data cache, runs) pointed at a temp folder."""

from __future__ import annotations

import pytest

from tests.mnist_fixture import tiny_mnist  # noqa: F401  (shared fixture)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("CE_LAB_DATA_DIR", str(tmp_path / "data-cache"))
    monkeypatch.setenv("COLUMNS", "200")  # rich output must not wrap under assertions
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)  # runs/ land in the temp folder
