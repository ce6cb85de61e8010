"""Run and comparison folders carry a format version; older folders read as they always did.

tests/fixtures/format0/runs: folders written by ce-lab before its files had a ``format`` key
(tests/fixtures/format0/make.py says how); expected/: what that ce-lab's readers printed for them.
"""

from __future__ import annotations

import json

import pytest

from tests.format0_outputs import FIXTURE, cli_outputs, copy_fixture, folders


def test_the_fixture_is_of_format_0():
    runs, comparison = folders(FIXTURE)
    assert len(runs) == 6
    for name in [*runs, comparison]:
        written = next((FIXTURE / "runs" / name).glob("*.json"))  # meta.json, comparison.json
        assert "format" not in json.loads(written.read_text())


@pytest.fixture(scope="module")
def format0_outputs(tmp_path_factory):
    return cli_outputs(copy_fixture(tmp_path_factory.mktemp("format0")))


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURE / "expected").glob("*.*")
                                        if p.suffix != ".json" or p.stem != "tensorboard"))
def test_old_folders_read_as_they_did(format0_outputs, name):
    """``runs``, ``runs show``, ``runs diff`` and ``compare`` (by group and by comparison folder)
    print what the ce-lab that wrote the folders printed, character for character."""
    assert format0_outputs[name] == (FIXTURE / "expected" / name).read_text(encoding="utf-8")


def test_old_folders_export_the_same_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tests.format0_outputs import tensorboard_scalars

    got = tensorboard_scalars(copy_fixture(tmp_path))
    want = json.loads((FIXTURE / "expected" / "tensorboard.json").read_text())
    # through JSON as the expected file went: NaN is json's one NaN object, equal to itself in a list
    assert json.loads(json.dumps(got)) == want
