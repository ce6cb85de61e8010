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


# ---------------------------------------------------------------------------------------------
# The version: written, consumed by the readers, checked


def test_new_folders_hold_the_format_which_no_reader_shows(cli, tiny_sets, tmp_path):
    from ce_lab.cli.app import app
    from ce_lab.runs.formats import FORMAT

    sets = [x for s in tiny_sets("train.max_steps=6") for x in ("--set", s)]
    result = cli.invoke(app, ["compare", "--losses", "ce,mse", "--seeds", "0", "--no-plots",
                              "--format", "json", *sets])
    assert result.exit_code == 0, result.output
    assert "format" not in json.loads(result.stdout)
    (comparison,) = (tmp_path / "runs").glob("compare-*")
    assert list(json.loads((comparison / "comparison.json").read_text()).items())[0] == (
        "format", FORMAT)
    runs = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("compare-")]
    assert len(runs) == 2
    for run in runs:
        on_disk = json.loads((run / "meta.json").read_text())
        assert on_disk["format"] == FORMAT
        shown = cli.invoke(app, ["runs", "show", str(run), "--format", "json"])
        assert json.loads(shown.stdout)["meta"] == {k: v for k, v in on_disk.items()
                                                    if k != "format"}
    assert cli.invoke(app, ["compare", str(comparison), "--no-plots"]).exit_code == 0


def _set_format(path, value):
    data = json.loads(path.read_text())
    data["format"] = value
    path.write_text(json.dumps(data))


def test_a_folder_of_a_newer_format_is_refused_in_one_line(cli, tmp_path):
    from ce_lab.cli.app import app
    from tests.run_factory import make_run

    out = tmp_path / "runs"
    newer, ok = make_run(out, "ce", name="newer"), make_run(out, "mse", name="ok")
    _set_format(newer / "meta.json", 2)
    result = cli.invoke(app, ["compare", str(newer), str(ok), "--no-plots"])
    assert result.exit_code == 0, result.output
    line = (f"{newer}: meta.json is of format 2, newer than this ce-lab reads (1); upgrade ce-lab "
            "to read it")
    assert f"skipped: {line}" in " ".join(result.stderr.split())
    listing = cli.invoke(app, ["runs", "--out-dir", str(out)])
    assert line in " ".join(listing.stderr.split()) and "mse" in listing.stdout
    (comparison,) = out.glob("compare-*")
    _set_format(comparison / "comparison.json", 7)
    result = cli.invoke(app, ["compare", str(comparison), "--no-plots"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {comparison}: comparison.json is of format 7, newer than this ce-lab reads (1); "
        "upgrade ce-lab to read it"]


@pytest.mark.parametrize("value", ["1", -1, True, 1.0])
def test_a_format_that_is_no_version_number_is_a_corrupt_folder(tmp_path, value):
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.record import load_run
    from tests.run_factory import make_run

    run = make_run(tmp_path, "ce")
    _set_format(run / "meta.json", value)
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
