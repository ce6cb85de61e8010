"""Run and comparison folders carry a format version: the fixture is of format 0, a format that is
no version number is a corrupt folder, the version (not the keys) decides the upgrade, a resumed
run keeps its folder's format. What the commands print for old folders: tests/cli/test_format.py."""

from __future__ import annotations

import json

import pytest

from tests.format0_outputs import FIXTURE, folders
from tests.helpers import set_format


def test_the_fixture_is_of_format_0():
    runs, comparison = folders(FIXTURE)
    assert len(runs) == 6
    for name in [*runs, comparison]:
        written = next((FIXTURE / "runs" / name).glob("*.json"))  # meta.json, comparison.json
        assert "format" not in json.loads(written.read_text())


# ---------------------------------------------------------------------------------------------
# The version: written, consumed by the readers, checked


@pytest.mark.parametrize("value", ["1", -1, True, 1.0])
def test_a_format_that_is_no_version_number_is_a_corrupt_folder(tmp_path, value):
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.record import load_run
    from tests.run_factory import make_run

    run = make_run(tmp_path, "ce")
    set_format(run / "meta.json", value)
    with pytest.raises(RunFolderError) as info:
        load_run(run)
    assert str(info.value) == f"{run}: corrupt run folder (meta.json: format is not a version number)"


def test_the_version_not_the_keys_decides_the_upgrade():
    from ce_lab.runs.formats import upgrade_summary

    old = {"first_epoch": {"fc1.weight": 0.7}, "last_epoch": {"fc1.weight": 0.07},
           "logit_grad_norm_start": 0.9, "logit_grad_norm_end": 0.1, "early_steps": [1, 2]}
    summary = {"loss": "ce", "grad_summary": old}
    assert upgrade_summary(summary, 0) == {"loss": "ce", "grad_summary": {
        "early_steps": [1, 2], "early": {"fc1.weight": 0.7}, "late": {"fc1.weight": 0.07},
        "logit_grad_norm_early": 0.9, "logit_grad_norm_late": 0.1}}
    assert summary["grad_summary"] is old and "early" not in old  # the file's data untouched
    assert upgrade_summary(summary, 1) == summary  # format 1 never wrote these keys
    new = {"grad_summary": {"early": {"a": 1.0}, "first_epoch": {"a": 2.0}}}
    assert upgrade_summary(new, 0)["grad_summary"] == {"early": {"a": 1.0}}  # today's key wins


def test_a_resumed_run_keeps_its_folders_format(tiny_config):
    from ce_lab.data.loader import load_mnist
    from ce_lab.training import resume, train
    from tests.helpers import InterruptAt

    cfg = tiny_config(**{"log.checkpoint": True, "train.epochs": 2})
    data = load_mnist(cfg.data, cfg.seed, "cpu")
    for written, kept in ((1, 1), (None, 0)):  # None: meta.json as a ce-lab before formats wrote it
        cut = train(cfg, data=data, reporter=InterruptAt(20))
        assert cut.status == "interrupted"
        meta = json.loads((cut.run_dir / "meta.json").read_text())
        assert meta["format"] == 1
        if written is None:
            del meta["format"]
            (cut.run_dir / "meta.json").write_text(json.dumps(meta))
        assert resume(cut.run_dir, data=data).status == "completed"
        assert json.loads((cut.run_dir / "meta.json").read_text())["format"] == kept
