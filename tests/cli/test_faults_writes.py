"""Issue 20, §1-§3 and §12 through the command line: a planted link in a run or batch folder is
refused with one line naming it (exit 2) and its target is unchanged; ``export tensorboard``
builds no path from a ``run_id`` that is not a plain name; one's own bad IDX file is one line
(exit 2), never replaced by MNIST; escape sequences in names from disk never reach the terminal;
a long value is echoed capped. The library side is tests/test_faults_writes.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from ce_lab.data.files import raw_dir
from ce_lab.runs.names import RUN_WRITES
from tests.helpers import InterruptAt, cli_sets, runner, tiny_base, tiny_sets, write_batch
from tests.mnist_fixture import write_tiny_mnist
from tests.run_factory import make_run


def error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    return " ".join(lines[0].split())


def plant(path: Path, outside: Path) -> tuple[Path, bytes]:
    """Move what is at ``path`` (or nothing) outside and leave a symbolic link to it there: reads
    through the link still work, so only a write can notice it. Returns (target, its bytes)."""
    outside.mkdir(exist_ok=True)
    target = outside / f"target-of-{path.name}"
    if path.exists():
        shutil.move(path, target)
    else:
        target.write_bytes(b"not ce-lab's\n")
    path.symlink_to(target)
    return target, target.read_bytes()


# --- §2: train --resume ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_run(tiny_mnist, tmp_path_factory) -> Path:
    """A real run interrupted mid-epoch, with its checkpoint: copied by each test."""
    from ce_lab.config import resolve_config
    from ce_lab.data.loader import load_mnist
    from ce_lab.training import train

    cfg = resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path_factory.mktemp('cut')}"))
    cut = train(cfg, data=load_mnist(cfg.data, cfg.seed, "cpu"), reporter=InterruptAt(25))
    assert cut.status == "interrupted"
    return cut.run_dir


@pytest.mark.parametrize("name", RUN_WRITES)
def test_train_resume_refuses_a_link_where_the_run_writes(name, interrupted_run, tmp_path):
    run = tmp_path / interrupted_run.name
    shutil.copytree(interrupted_run, run)
    target, before = plant(run / name, tmp_path / "outside")
    files = {p.name: p.read_bytes() for p in run.iterdir() if not p.is_symlink()}
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"refusing to write {run / name}: it is a symbolic link" in line, line
    assert target.read_bytes() == before and (run / name).is_symlink()
    assert {p.name: p.read_bytes() for p in run.iterdir() if not p.is_symlink()} == files


# --- §2: a batch's worker files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_batch(tiny_mnist, tmp_path_factory) -> Path:
    """A batch folder whose one entry ran (logs/ exists) and is marked failed, its run folder
    gone, so that ``batch --resume`` starts a worker for it again."""
    root = tmp_path_factory.mktemp("batch")
    f = write_batch(root / "b.yaml", {"name": "links", "base": tiny_base(tiny_mnist), "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--out-dir", str(root / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    (batch_dir,) = (root / "out").glob("batch-links-*")
    state = json.loads((batch_dir / "batch.json").read_text())
    shutil.rmtree(batch_dir / state["entries"][0]["run_dir"])  # nothing to adopt: a rerun
    state["entries"][0].update(status="failed", run_dir=None)
    (batch_dir / "batch.json").write_text(json.dumps(state))
    return batch_dir


@pytest.mark.parametrize("name", ["task-000-0.task.json", "task-000-0.log"])
def test_batch_refuses_a_link_among_its_worker_files(name, failed_batch, tmp_path):
    batch_dir = tmp_path / failed_batch.name
    shutil.copytree(failed_batch, batch_dir)
    path = batch_dir / "logs" / name
    path.unlink(missing_ok=True)
    target, before = plant(path, tmp_path / "outside")
    result = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--no-plots"])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert f"refusing to write {path}: it is a symbolic link" in " ".join(result.stderr.split())
    assert target.read_bytes() == before and path.is_symlink()


def test_a_linked_logs_folder_of_a_batch_is_refused(failed_batch, tmp_path):
    batch_dir = tmp_path / failed_batch.name
    shutil.copytree(failed_batch, batch_dir)
    shutil.rmtree(batch_dir / "logs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (batch_dir / "logs").symlink_to(outside, target_is_directory=True)
    result = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--no-plots"])
    assert result.exit_code == 2, result.output
    assert f"refusing to write {batch_dir / 'logs'}" in " ".join(result.stderr.split())
    assert not any(outside.iterdir())


# --- §3: export tensorboard ---------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["../../escaped", "ABSOLUTE", ".."])
def test_export_builds_no_path_from_a_run_id_that_is_not_a_plain_name(run_id, tmp_path):
    pytest.importorskip("tensorboard")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    old = elsewhere / "events.out.tfevents.1.host.1.0"
    old.write_bytes(b"someone's events")
    run_id = str(elsewhere) if run_id == "ABSOLUTE" else run_id
    out = tmp_path / "a" / "b" / "runs"
    bad, good = make_run(out, "ce"), make_run(out, "mse")
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps(meta | {"run_id": run_id}))
    before = sorted(p for p in tmp_path.rglob("*") if "tensorboard" not in p.parts)

    result = runner.invoke(app, ["export", "tensorboard", str(bad)])
    assert result.exit_code == 1, result.output
    assert "no runs to export (1 skipped)" in result.stderr
    assert "is not a plain file name; not exported" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["export", "tensorboard", str(bad), str(good)])
    assert result.exit_code == 0, result.output
    assert "1 run(s) written" in result.stdout
    assert [p.name for p in (out / "tensorboard").iterdir()] == [good.name]
    assert old.read_bytes() == b"someone's events"  # not removed
    after = sorted(p for p in tmp_path.rglob("*") if "tensorboard" not in p.parts)
    assert after == before  # nothing written anywhere else


def test_export_refuses_a_linked_run_folder_in_its_output(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "runs"
    run = make_run(out, "ce")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "events.out.tfevents.1.host.1.0").write_bytes(b"kept")
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / run.name).symlink_to(elsewhere, target_is_directory=True)
    result = runner.invoke(app, ["export", "tensorboard", str(run)])
    assert result.exit_code == 2, result.output
    assert "it is a symbolic link" in error_line(result)
    assert [p.name for p in elsewhere.iterdir()] == ["events.out.tfevents.1.host.1.0"]


# --- §1: one's own data set ---------------------------------------------------------------------------


def test_a_truncated_file_of_ones_own_data_is_one_line_and_kept(tmp_path):
    root = write_tiny_mnist(tmp_path / "own")
    path = raw_dir(root) / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    before = {p.name: p.read_bytes() for p in raw_dir(root).iterdir()}
    result = runner.invoke(app, ["train", *cli_sets(root), "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert line.startswith("error: ") and str(raw_dir(root)) in line, line
    assert "train-labels-idx1-ubyte" in line and "truncated" in line and "verify_md5" in line
    assert {p.name: p.read_bytes() for p in raw_dir(root).iterdir()} == before
    assert not (tmp_path / "runs").exists()


# --- §12: what reaches the terminal ------------------------------------------------------------------


EVIL_ID = "run\x1b[2J\x1b]0;pwned\x07"
EVIL_LOSS = "ce\x1b[5m"
EVIL_GROUP = "g\x1b]8;;http://x\x1b\\"


@pytest.fixture
def evil_runs(tmp_path) -> tuple[Path, Path]:
    out = tmp_path / "runs"
    evil, plain = make_run(out, "ce"), make_run(out, "mse")
    meta = json.loads((evil / "meta.json").read_text())
    (evil / "meta.json").write_text(json.dumps(meta | {"run_id": EVIL_ID, "group": EVIL_GROUP}))
    summary = json.loads((evil / "summary.json").read_text())
    (evil / "summary.json").write_text(json.dumps(summary | {"loss": EVIL_LOSS}))
    return evil, plain


@pytest.mark.parametrize("args", [["runs"], ["runs", "--format", "csv"], ["runs", "show", "EVIL"],
                                  ["compare", "EVIL", "PLAIN", "--no-plots"],
                                  ["compare", "EVIL", "PLAIN", "--no-plots", "--format", "csv"],
                                  ["compare", "EVIL", "PLAIN", "--no-plots", "--format", "markdown"]],
                         ids=["runs", "runs-csv", "runs-show", "compare", "compare-csv",
                              "compare-markdown"])
def test_escape_sequences_from_disk_never_reach_the_terminal(args, evil_runs):
    evil, plain = evil_runs
    args = [{"EVIL": str(evil), "PLAIN": str(plain)}.get(a, a) for a in args]
    result = runner.invoke(app, [*args, *(["--out-dir", str(evil.parent)] if args[0] == "runs"
                                          and args[1:2] != ["show"] else [])])
    assert result.exit_code == 0, result.output
    assert not {"\x1b", "\x07"} & set(result.output), repr(result.output)
    shown = {"runs": ["run\\x1b[2J", "ce\\x1b[5m", "g\\x1b]8"], "compare": ["ce\\x1b[5m"]}
    for text in shown["compare" if args[0] == "compare" else "runs"]:
        assert text in result.stdout, result.stdout


def test_an_error_line_carries_no_control_character(tmp_path):
    run = make_run(tmp_path / "runs", "ce")
    meta = json.loads((run / "meta.json").read_text())
    from ce_lab.safe_io import now_iso

    # Owned by a live process on another host (a fresh heartbeat), whose name is hostile.
    (run / "meta.json").write_text(json.dumps(meta | {"status": "running", "pid": os.getpid(),
                                                       "host": "h\x1b[2J", "heartbeat": now_iso()}))
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2, result.output
    assert "\x1b" not in result.output and "\\x1b[2J" in error_line(result)


def test_a_10000_character_batch_name_is_echoed_capped(tiny_mnist, tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "n" * 10_000, "base": tiny_base(tiny_mnist),
                                          "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--dry-run"])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert len(line) < 400 and "(10,000 characters)" in line and "name" in line, line


def test_a_long_set_item_is_echoed_capped(tmp_path):
    result = runner.invoke(app, ["train", "--set", "loss.name=" + "x" * 10_000, "--out-dir",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    line = error_line(result)
    # The item, the unknown name and the value validation got: each cut at 100 characters.
    assert len(line) < 700 and line.count("characters)") == 3, line
