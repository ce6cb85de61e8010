"""Run and comparison folders carry a format version; older folders read as they always did,
through the commands.

tests/fixtures/format0/runs: folders written by ce-lab before its files had a ``format`` key
(tests/fixtures/format0/make.py says how); expected/: what that ce-lab's readers printed for them."""

from __future__ import annotations

import csv
import json

import pytest

from ce_lab.training import train
from tests.format0_outputs import FIXTURE, cli_outputs, copy_fixture
from tests.helpers import OLD_EVAL_HEADER, set_format

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


def test_a_folder_of_a_newer_format_is_refused_in_one_line(cli, tmp_path):
    from ce_lab.cli.app import app
    from tests.run_factory import make_run

    out = tmp_path / "runs"
    newer, ok = make_run(out, "ce", name="newer"), make_run(out, "mse", name="ok")
    set_format(newer / "meta.json", 2)
    result = cli.invoke(app, ["compare", str(newer), str(ok), "--no-plots"])
    assert result.exit_code == 0, result.output
    line = (f"{newer}: meta.json is of format 2, newer than this ce-lab reads (1); upgrade ce-lab "
            "to read it")
    assert f"skipped: {line}" in " ".join(result.stderr.split())
    listing = cli.invoke(app, ["runs", "--out-dir", str(out)])
    assert line in " ".join(listing.stderr.split()) and "mse" in listing.stdout
    (comparison,) = out.glob("compare-*")
    set_format(comparison / "comparison.json", 7)
    result = cli.invoke(app, ["compare", str(comparison), "--no-plots"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {comparison}: comparison.json is of format 7, newer than this ce-lab reads (1); "
        "upgrade ce-lab to read it"]


def test_runs_written_before_calibration_compare_beside_new_ones(cfg, data, cli, tmp_path):  # noqa: F811
    from ce_lab.cli.app import app
    from tests.run_factory import make_run

    old = make_run(tmp_path / "old", "mse", seed=0)  # eval.csv and summary.json of before
    new = train(cfg, data=data).run_dir
    result = cli.invoke(app, ["compare", str(old), str(new), "--format", "json",
                              "--out-dir", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    by_loss = {r["loss"]: r for r in json.loads(result.stdout)["rows"]}
    assert by_loss["mse"]["test_ece"] is None
    assert by_loss["ce"]["test_ece"] == json.loads((new / "summary.json").read_text())[
        "final"]["test_ece"]
    comp = next((tmp_path / "cmp").glob("compare-*"))
    assert (comp / "reliability.png").read_bytes().startswith(b"\x89PNG")  # the new run's panel
    report = (comp / "report.md").read_text()
    assert "p = softmax(z) of the logits for every loss" in report
    assert "![reliability](reliability.png)" in report


def test_a_run_interrupted_before_calibration_existed_resumes_with_its_own_columns(cli, tiny_mnist,
                                                                                   tmp_path):
    from ce_lab.cli.app import app
    from ce_lab.config import resolve_config
    from tests.helpers import InterruptAt, tiny_sets

    cfg = resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}"))
    cut = train(cfg, reporter=InterruptAt(25))
    assert cut.status == "interrupted"
    # as a run written before the calibration columns: its eval.csv without them
    evals = cut.run_dir / "eval.csv"
    old = [r[:len(OLD_EVAL_HEADER)] for r in csv.reader(open(evals))]
    evals.write_text("".join(",".join(r) + "\n" for r in old))
    result = cli.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 0, result.output
    header, *body = list(csv.reader(open(evals)))
    assert header == OLD_EVAL_HEADER and len(body) > len(old) - 1
    assert all(len(r) == len(OLD_EVAL_HEADER) for r in body)
    final = json.loads((cut.run_dir / "summary.json").read_text())["final"]
    assert final["val_ece"] is None and final["val_acc"] == float(body[-1][-1])
    assert final["test_ece"] is not None and (cut.run_dir / "test_logits.npz").exists()


def test_an_mse_run_interrupted_before_the_saturation_split_resumes_with_its_own_columns(
        cli, tiny_mnist, tmp_path):
    # metrics.csv's saturated_wrong_frac / saturated_right_frac came later than saturated_frac:
    # an interrupted run written before them continues with the columns it has.
    from ce_lab.cli.app import app
    from ce_lab.config import resolve_config
    from ce_lab.metrics import LOG_ADDED_LATER
    from tests.helpers import InterruptAt, tiny_sets

    assert LOG_ADDED_LATER == ["saturated_wrong_frac", "saturated_right_frac"]
    cfg = resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path / 'runs'}",
                                         "loss.name=mse"))
    cut = train(cfg, reporter=InterruptAt(25))
    assert cut.status == "interrupted"
    metrics = cut.run_dir / "metrics.csv"
    header, *body = list(csv.reader(open(metrics)))
    keep = [i for i, h in enumerate(header) if h not in LOG_ADDED_LATER]
    old_header = [header[i] for i in keep]
    metrics.write_text("".join(",".join(r[i] for i in keep) + "\n" for r in [header, *body]))
    result = cli.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 0, result.output
    header2, *body2 = list(csv.reader(open(metrics)))
    assert header2 == old_header and "saturated_frac" in header2 and len(body2) > len(body)
    assert all(len(r) == len(old_header) for r in body2)
    assert json.loads((cut.run_dir / "summary.json").read_text())["status"] == "completed"


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
