"""ce_lab.runs: folder names and exclusive creation, the Status enum, and the defensive readers."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from ce_lab.errors import CeLabError
from ce_lab.runs.files import CsvLog, RunFolderError, base_meta, format_value
from ce_lab.runs.folder import (
    NON_RUN_PREFIXES,
    RESULT_STATUSES,
    Status,
    create_batch_dir,
    create_comparison_dir,
    create_run_dir,
    threshold_key,
)
from ce_lab.runs.read import read_csv_columns, read_csv_rows, read_mapping, read_meta, read_status
from ce_lab.safe_io import write_json


def test_the_package_imports_without_torch():
    code = ("import sys; import ce_lab.runs, ce_lab.runs.files, ce_lab.runs.folder, "
            "ce_lab.runs.record; from ce_lab.runs.files import base_meta; "
            "base_meta('r', 'cpu', None, None, argv=['ce-lab'], torch_version='x'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_each_status_has_one_exit_code_and_reads_as_its_value():
    assert {s: s.exit_code for s in Status if s not in (Status.PENDING, Status.RUNNING, Status.CRASHED)} == {
        Status.COMPLETED: 0, Status.DIVERGED: 3, Status.INTERRUPTED: 130, Status.FAILED: 1}
    with pytest.raises(ValueError):
        _ = Status.RUNNING.exit_code
    assert [s.value for s in Status] == ["pending", "running", "completed", "diverged",
                                         "interrupted", "failed", "crashed"]
    with pytest.raises(ValueError):
        _ = Status.CRASHED.exit_code  # read, never an ending
    assert str(Status.FAILED) == f"{Status.FAILED}" == "failed" == Status.FAILED
    assert json.dumps({"status": Status.DIVERGED}) == '{"status": "diverged"}'
    assert Status("completed") is Status.COMPLETED
    assert set(RESULT_STATUSES) == {s for s in Status if s.is_result} == {"completed", "diverged"}


def test_threshold_key_has_two_decimals():
    assert [threshold_key(t) for t in (0.9, 0.95, 0.975, 1)] == ["0.90", "0.95", "0.97", "1.00"]


def test_folder_names_by_kind(tmp_path):
    run = create_run_dir(tmp_path, "nll manual/x")
    comp = create_comparison_dir(tmp_path)
    batch = create_batch_dir(tmp_path / "new" / "deeper", "sweep")
    assert re.fullmatch(r"\d{8}-\d{6}-nll_manual_x-[0-9a-f]{4}", run.name)
    assert re.fullmatch(r"compare-\d{8}-\d{6}-[0-9a-f]{4}", comp.name)
    assert re.fullmatch(r"batch-sweep-\d{8}-\d{6}-[0-9a-f]{4}", batch.name)
    assert all(p.is_dir() for p in (run, comp, batch))
    assert comp.name.startswith(NON_RUN_PREFIXES) and batch.name.startswith(NON_RUN_PREFIXES)
    assert not run.name.startswith(NON_RUN_PREFIXES)


@pytest.mark.parametrize("create, what", [
    (lambda d: create_run_dir(d, "ce"), "run"),
    (create_comparison_dir, "comparison"),
    (lambda d: create_batch_dir(d, "b"), "batch"),
])
def test_an_out_dir_that_is_a_file_is_one_line(tmp_path, create, what):
    (tmp_path / "afile").write_text("")
    for out_dir in (tmp_path / "afile", tmp_path / "afile" / "below"):
        with pytest.raises(CeLabError) as e:
            create(out_dir)
        assert str(e.value).startswith(f"cannot create a {what} folder under {out_dir}: ")
        assert "\n" not in str(e.value)


def test_read_meta_says_what_is_wrong_in_one_line(tmp_path):
    with pytest.raises(RunFolderError, match=r"corrupt run folder \(no meta.json\)"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text("{not json\n")
    with pytest.raises(RunFolderError, match=r"meta.json: Expecting") as e:
        read_meta(tmp_path)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path))
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(RunFolderError, match="is not a JSON object"):
        read_meta(tmp_path)
    assert read_status(tmp_path) is None
    (tmp_path / "meta.json").write_text('{"status": "diverged"}')
    assert read_status(tmp_path) is Status.DIVERGED
    (tmp_path / "meta.json").write_text('{"status": "lost"}')
    assert read_status(tmp_path) is None
    (tmp_path / "config.yaml").write_text("- a list\n")
    with pytest.raises(RunFolderError, match="config.yaml is not a mapping"):
        read_mapping(tmp_path / "config.yaml")


def test_json_writes_non_finite_as_null_and_csv_keeps_them(tmp_path):
    write_json(tmp_path / "s.json", {"a": math.nan, "b": [math.inf, 1.5], "c": Status.COMPLETED})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": None, "b": [None, 1.5],
                                                             "c": "completed"}
    assert [format_value(v) for v in (0.1, math.nan, math.inf, -math.inf, 3)] == [
        "0.1", "nan", "inf", "-inf", "3"]
    log = CsvLog(tmp_path / "m.csv", ["step", "loss"])
    for step, loss in ((1, 0.5), (2, math.nan), (3, 1 / 3)):
        log.write({"step": step, "loss": loss})
    log.close()
    cols = read_csv_columns(tmp_path / "m.csv", ("step", "loss"))
    assert cols["step"] == [1.0, 2.0, 3.0] and math.isnan(cols["loss"][1])
    assert cols["loss"][2] == 1 / 3  # full precision
    resumed = CsvLog(tmp_path / "m.csv", ["step", "loss"], keep_until_step=2)
    resumed.write({"step": 3, "loss": 0.25})
    resumed.close()
    assert [r["loss"] for r in read_csv_rows(tmp_path / "m.csv")] == ["0.5", "nan", "0.25"]
    with pytest.raises(RunFolderError, match="lacks column"):
        read_csv_columns(tmp_path / "m.csv", ("val_acc",))


def test_base_meta_is_a_running_run():
    meta = base_meta("r1", "cpu", "compare-x", ["r2"], argv=["/bin/ce-lab", "train"],
                     torch_version="9.9")
    assert meta["status"] == "running" and meta["versions"]["torch"] == "9.9"
    assert meta["command"] == "ce-lab train" and meta["fused_with"] == ["r2"]
