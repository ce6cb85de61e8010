"""``ce-lab batch`` through the CLI, without training: the dry run and the stacks it shows, argument
and batch-file errors as one line with exit 2, folders it refuses; and the API's batch against the
CLI's. The expansion, validation, planning and orchestration are tested in tests/test_batch.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import ce_lab
from ce_lab.batches.plan import open_batch
from ce_lab.batches.spec import load_batch
from ce_lab.batches.store import read_state
from ce_lab.cli.app import app
from tests.helpers import (
    losses_batch,
    only_batch_dir,
    runner,
    write_batch,
)

# ---------------------------------------------------------------------------------------------
# CLI: dry run and usage errors


def test_dry_run_prints_the_entries_and_creates_nothing(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "dry", "grid": {"loss.name": ["ce", "hinge"]}, "seeds": [0, 1, 2]})
    result = runner.invoke(app, ["batch", str(f), "--dry-run", "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "6 runs" in out
    batch = load_batch(f)
    for e in batch.entries:
        assert e.config_hash[:12] in out
    assert out.count("hinge") == 3 and "loss.name" in out and "seed" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [[], ["b.yaml", "--resume", "somewhere"]])
def test_needs_exactly_one_of_file_and_resume(tmp_path, args):
    write_batch(tmp_path / "b.yaml", {"name": "x"})
    result = runner.invoke(app, ["batch", *args])
    assert result.exit_code == 2
    assert "batch file or --resume" in result.stderr


@pytest.mark.parametrize("args, code, message", [
    (["b.yaml", "--address", "auto"], 2, "--address applies to --executor ray"),
    (["b.yaml", "--executor", "ray", "--threads", "2"], 2,
     "--threads applies to the local executor; Ray tasks use --cpus-per-task"),
    (["--resume", "nothere", "--set", "seed=1", "--new"], 2,
     "--set, --new cannot change a batch being resumed; run the batch file instead"),
    (["--resume", "nothere"], 2, "--resume: no such batch folder: nothere"),
    (["b.yaml", "--executor", "ray", "--cpus-per-task", "0"], 1,
     "--cpus-per-task must be > 0, got 0.0"),
    (["b.yaml", "--executor", "ray", "--gpus-per-task", "-1"], 1,
     "--gpus-per-task must be >= 0, got -1.0"),
])
def test_argument_checks_name_the_flags(tmp_path, args, code, message):
    """ce_lab.lab.batch checks these and names parameters; the CLI spells them as its flags."""
    write_batch(tmp_path / "b.yaml", {"name": "x"})
    result = runner.invoke(app, ["batch", *args])
    assert (result.exit_code, result.stderr) == (code, f"error: {message}\n")
    assert not Path("runs").exists()


def test_invalid_batch_file_exits_2_with_one_line(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "x", "grid": {"optim.lr": [0.1, -2]}})
    result = runner.invoke(app, ["batch", str(f)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "entry 1" in result.stderr and "optim.lr" in result.stderr
    assert not Path("runs").exists()  # nothing ran, no folder


def test_resume_of_a_folder_that_is_no_batch(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["batch", "--resume", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "not a batch folder" in result.stderr


def test_ray_executor_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    f = write_batch(tmp_path / "b.yaml", {"name": "x"})
    result = runner.invoke(app, ["batch", str(f), "--executor", "ray"])
    assert result.exit_code == 1
    assert "ce-lab[ray]" in result.stderr
    assert not Path("runs").exists()


def test_a_batch_folder_in_use_by_a_live_process_is_refused(tmp_path):
    import os

    f = write_batch(tmp_path / "b.yaml", {"name": "lock", "seeds": [0]})
    batch = load_batch(f, out_dir=tmp_path / "runs")
    opened = open_batch(batch, None)
    lock = opened.batch_dir / ".lock"
    lock.write_text(str(os.getppid()))  # a live process that is not this one
    result = runner.invoke(app, ["batch", str(f), "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "being run by another ce-lab batch" in result.stderr
    assert lock.read_text() == str(os.getppid())  # not taken over
    assert [e.status for e in read_state(opened.batch_dir).entries] == ["pending"]


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error"), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_an_out_dir_that_is_a_file_is_one_line_not_a_traceback(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "afile", "seeds": [0]})
    (tmp_path / "afile").write_text("")
    result = runner.invoke(app, ["batch", str(f), "--out-dir", str(tmp_path / "afile")])
    assert result.exit_code in (1, 2), result.output
    assert "cannot create a batch folder" in _one_error_line(result)
    assert (tmp_path / "afile").read_text() == ""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_out_dir_is_one_line_not_a_traceback(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "ro", "seeds": [0]})
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = runner.invoke(app, ["batch", str(f), "--out-dir", str(ro)])
    finally:
        ro.chmod(0o755)
    assert result.exit_code in (1, 2), result.output
    assert "cannot create a batch folder" in _one_error_line(result)


def test_dry_run_shows_which_entries_share_a_stack(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "s", "grid": {"loss.name": ["ce", "mse"], "optim.lr": [0.1, 1.0],
                              "model.hidden": [[8], [16]]}, "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--dry-run", "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    stacks = {line.split("│")[1].strip(): line.split("│")[-2].strip()
              for line in result.stdout.splitlines() if line.startswith("│")}
    assert len(stacks) == 8
    # loss x lr share a stack; the hidden width does not
    by_stack = {}
    for entry, where in stacks.items():
        by_stack.setdefault(where, []).append(int(entry))
    assert sorted(by_stack) == ["1 (4 members)", "2 (4 members)"]
    limited = runner.invoke(app, ["batch", str(f), "--dry-run", "--max-members", "3",
                                  "--out-dir", str(tmp_path / "o")])
    assert limited.exit_code == 0, limited.output
    assert "(3 members)" in limited.stdout and "(1 member)" in limited.stdout


pd = pytest.importorskip("pandas")


# table.csv columns that hold run ids, paths or wall-clock times: they differ between two runs.
NOT_NUMBERS = ("run", "runs", "path")


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if c not in NOT_NUMBERS and not c.startswith("seconds_")]
    return table[keep].reset_index(drop=True)


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=["wall_s"])


def test_api_batch_trains_what_the_cli_trains_and_compares_it_the_same(tiny_mnist, tmp_path, cli,
                                                                       capfd):
    f = losses_batch(tmp_path, tiny_mnist)
    res = ce_lab.batch(f, out_dir=tmp_path / "api", plots=False)
    assert capfd.readouterr() == ("", "")  # nothing printed unless progress asks
    assert res.exit_code == 0 and not res.failed and (res.ran, res.skipped) == (2, 0)
    assert res.dir == only_batch_dir(tmp_path / "api") and res.name == "two"
    assert [(e.index, e.overrides, e.status) for e in res.entries] == [
        (0, {"loss.name": "ce", "seed": 0}, "completed"),
        (1, {"loss.name": "mse", "seed": 0}, "completed")]
    assert [r.loss for r in res.runs] == ["ce", "mse"]
    assert isinstance(res.comparison, ce_lab.Comparison) and res.comparison.dir == res.dir

    cli_result = cli.invoke(app, ["batch", str(f), "--out-dir", str(tmp_path / "cli"),
                                  "--no-plots"])
    assert cli_result.exit_code == 0, cli_result.output
    cli_dir = only_batch_dir(tmp_path / "cli")
    cli_table = pd.read_csv(cli_dir / "table.csv")
    pd.testing.assert_frame_equal(_comparable(pd.read_csv(res.dir / "table.csv")),
                                  _comparable(cli_table))
    assert list(cli_table["final_val_acc"]) == [r.summary["final"]["val_acc"] for r in res.runs]
    assert list(res.comparison.table()["final_val_acc"]) == list(cli_table["final_val_acc"])
    cli_runs = ce_lab.load_runs(tmp_path / "cli").sort_values("loss")
    assert list(cli_runs["loss"]) == ["ce", "mse"]
    for path, run in zip(cli_runs["path"], res.runs):  # the same numbers, step by step
        pd.testing.assert_frame_equal(_metrics(Path(path)), _metrics(run.dir))

    # Again: every entry is done, so nothing runs and the dry run says so, in that folder.
    plan = ce_lab.batch(f, out_dir=tmp_path / "api", dry_run=True)
    assert plan.dir == res.dir and [e.action for e in plan.entries] == ["skip", "skip"]
    assert [e.run_dir for e in plan.entries] == [e.run_dir for e in res.entries]
    again = ce_lab.batch(resume=res.dir, plots=False)
    assert (again.ran, again.skipped, again.exit_code) == (0, 2, 0)
