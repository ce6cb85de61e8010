"""What ce-lab reads back from disk is untrusted, and what it writes may not fit, through the CLI.

Hostile run folders (a FIFO as meta.json, a directory as summary.json, a symlink to /dev/zero,
2 MiB of JSON, a truncated or non-numeric CSV row, summary fields of the wrong type) against
``compare``, ``train --resume`` and ``batch --resume``: each is one line and its exit code, never a
traceback or a hang. A full disk and a read-only run folder likewise; the folders the commands
make follow the umask."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from ce_lab.cli.app import app
from ce_lab.config import resolve_config
from ce_lab.data.files import atomic_write
from ce_lab.data.loader import load_mnist
from ce_lab.training import resume, train
from tests.conftest import tiny_set_items
from tests.helpers import (
    InterruptAt,
    cli_sets,
    dev_zero,
    directory,
    fifo,
    fill,
    runner,
    text_spoiler,
    tiny_base,
    tiny_sets,
    write_batch,
    wrong_modes,
)
from tests.run_factory import make_run


def one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- hostile files -------------------------------------------------------------------------------

def _huge_json(path: Path) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"padding": "x" * (2 << 20)}))  # valid, 2 MiB


def _truncated_csv(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.rindex(",", 0, len(text) - 2)])  # the last row cut mid-way


def _non_numeric_csv(path: Path) -> None:
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "abc"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _json_fields(**fields):
    def apply(path: Path) -> None:
        path.write_text(json.dumps(json.loads(path.read_text()) | fields))
    return apply


HOSTILE = {
    "fifo-meta": ("meta.json", fifo),
    "dir-summary": ("summary.json", directory),
    "fifo-summary": ("summary.json", fifo),
    "devzero-meta": ("meta.json", dev_zero),
    "devzero-metrics": ("metrics.csv", dev_zero),
    "huge-summary": ("summary.json", _huge_json),
    "huge-meta": ("meta.json", _huge_json),
    "truncated-metrics": ("metrics.csv", _truncated_csv),
    "non-numeric-metrics": ("metrics.csv", _non_numeric_csv),
    "non-numeric-eval": ("eval.csv", _non_numeric_csv),
    "convergence-str": ("summary.json", _json_fields(convergence="abc")),
    "grad-summary-list": ("summary.json", _json_fields(grad_summary=[1])),
    "grad-window-str": ("summary.json", _json_fields(grad_summary={"early": "x"})),
    "grad-steps-str": ("summary.json", _json_fields(grad_summary={"late_steps": "1-2"})),
    "auc-str": ("summary.json", _json_fields(val_acc_auc="0.9")),
    "flags-str": ("summary.json", _json_fields(flags="stalled")),
    "thresholds-str": ("summary.json", _json_fields(thresholds=["x"])),
    "steps-str": ("summary.json", _json_fields(steps="10")),
    "final-list": ("summary.json", _json_fields(final=[1])),
    "meta-invalid": ("meta.json", text_spoiler("{not json")),
    "meta-list": ("meta.json", text_spoiler("[1]")),
    "meta-pid-str": ("meta.json", _json_fields(pid="x")),
    "fifo-config": ("config.yaml", fifo),
    "fifo-checkpoint": ("checkpoint.pt", fifo),
}


# What compare reads of a finished run (a checkpoint it never opens).
COMPARE_READS = {k for k, (name, _) in HOSTILE.items() if name != "checkpoint.pt"}


@pytest.mark.parametrize("case", sorted(COMPARE_READS))
def test_compare_skips_a_hostile_run_with_one_line(case, tmp_path):
    out = tmp_path / "runs"
    good, bad = make_run(out, "ce"), make_run(out, "mse")
    name, spoil = HOSTILE[case]
    spoil(bad / name)
    result = runner.invoke(app, ["compare", str(good), str(bad), "--no-plots", "--format", "csv"])
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    skipped = [x for x in result.stderr.splitlines() if x.startswith("skipped:")]
    assert len(skipped) == 1 and str(bad) in skipped[0] and name in skipped[0], result.stderr
    assert result.stdout.count("\n") == 2  # the header and the one good run

    # Only the hostile run: nothing to compare, exit 1, and no empty compare-* folder.
    before = set(out.glob("compare-*"))
    result = runner.invoke(app, ["compare", str(bad), "--no-plots"])
    assert result.exit_code == 1 and "no runs to compare" in result.stderr
    assert set(out.glob("compare-*")) == before


@pytest.fixture(scope="module")
def interrupted_run(tiny_mnist, tmp_path_factory) -> Path:
    """A real run interrupted mid-epoch, with its checkpoint: copied by each test."""
    cfg = resolve_config(None, tiny_sets(tiny_mnist, f"out_dir={tmp_path_factory.mktemp('cut')}"))
    data = load_mnist(cfg.data, cfg.seed, "cpu")
    cut = train(cfg, data=data, reporter=InterruptAt(25))
    assert cut.status == "interrupted"
    (cut.run_dir / "summary.json").write_text(json.dumps(json.loads(
        (cut.run_dir / "summary.json").read_text())))
    return cut.run_dir


# What train --resume makes of each: 0 resumes (a file it does not need, or a last CSV row cut
# short by the kill, which is logged again), 2 refuses the folder, 1 a file it cannot continue
# (a directory where summary.json goes is refused up front, before any training; a symlink
# where the run writes, as devzero-metrics, is never written through: 2).
RESUME_EXIT = {
    "fifo-meta": 2, "devzero-meta": 2, "huge-meta": 2, "meta-invalid": 2, "meta-list": 2,
    "meta-pid-str": 2, "fifo-config": 2, "fifo-checkpoint": 2,
    "devzero-metrics": 2, "non-numeric-metrics": 1, "non-numeric-eval": 1,
    "dir-summary": 2, "fifo-summary": 2, "truncated-metrics": 0, "huge-summary": 0, "convergence-str": 0,
    "grad-summary-list": 0, "thresholds-str": 0, "steps-str": 0, "final-list": 0,
    "grad-window-str": 0, "grad-steps-str": 0, "auc-str": 0, "flags-str": 0,  # summary.json is rewritten
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_train_resume_of_a_hostile_run_is_one_line_or_resumes(case, interrupted_run, tmp_path):
    run = tmp_path / interrupted_run.name
    shutil.copytree(interrupted_run, run)
    name, spoil = HOSTILE[case]
    spoil(run / name)
    meta_before = None if name == "meta.json" else (run / "meta.json").read_text()
    rows_before = None if name == "metrics.csv" else (run / "metrics.csv").read_text()
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert "Traceback" not in result.output
    assert result.exit_code == RESUME_EXIT[case], result.output
    if result.exit_code:
        line = one_line(result)
        assert str(run) in " ".join(line.split())
        if meta_before is not None:
            # a refused resume leaves meta.json as it was
            assert (run / "meta.json").read_text() == meta_before
        if result.exit_code == 2 and rows_before is not None:  # refused before any training
            assert (run / "metrics.csv").read_text() == rows_before
    else:
        assert json.loads((run / "meta.json").read_text())["status"] == "completed"


@pytest.fixture(scope="module")
def finished_batch(tiny_mnist, tmp_path_factory) -> Path:
    """A batch folder, its one entry completed by a real worker: copied by each test."""
    root = tmp_path_factory.mktemp("batch")
    f = write_batch(root / "b.yaml", {"name": "hostile", "base": tiny_base(tiny_mnist),
                                      "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--out-dir", str(root / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    return root / "out"


BATCH_HOSTILE = {
    **{k: v for k, v in HOSTILE.items() if v[0] != "checkpoint.pt"},
    "fifo-batch-json": ("batch.json", fifo),
    "huge-batch-json": ("batch.json", _huge_json),
    "devzero-batch-json": ("batch.json", dev_zero),
    "entries-str": ("batch.json", _json_fields(entries="abc")),
    "entry-run-dir-int": ("batch.json", lambda p: p.write_text(json.dumps(
        json.loads(p.read_text()) | {"entries": [
            json.loads(p.read_text())["entries"][0] | {"run_dir": 7}]}))),
}


@pytest.mark.parametrize("case", sorted(BATCH_HOSTILE))
def test_batch_resume_with_a_hostile_file_is_one_line_or_plans(case, finished_batch, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished_batch, out, symlinks=True)
    batch_dir = next(out.glob("batch-*"))
    run = next(p for p in out.iterdir() if not p.name.startswith("batch-"))
    name, spoil = BATCH_HOSTILE[case]
    spoil((batch_dir if name == "batch.json" else run) / name)
    result = runner.invoke(app, ["batch", "--resume", str(batch_dir), "--dry-run"])
    assert "Traceback" not in result.output
    if name == "batch.json":
        assert result.exit_code == 2, result.output
        assert "batch.json" in one_line(result)
    else:  # the entry's folder is not a result any more: planned to run again, or skipped
        assert result.exit_code == 0, result.output
        assert result.stderr == ""


# --- a full disk, a read-only folder -----------------------------------------------------------

def test_a_full_disk_fails_the_run_with_one_line_and_the_last_checkpoint_resumes(
        tiny_mnist, small_fs, tmp_path):
    result = runner.invoke(app, ["train", "--epochs", "3",
                                 *cli_sets(tiny_mnist, f"out_dir={small_fs}"),
                                 "--set", "model.hidden=[512]"])  # after the tiny [32]
    assert result.exit_code == 1, result.output
    line = one_line(result)
    assert "no space left on device while writing" in line
    run = next(p for p in small_fs.iterdir() if p.is_dir())
    assert json.loads((run / "meta.json").read_text())["status"] == "failed"
    assert not list(run.glob(".*.tmp"))  # no temp file left behind
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step > 0
    # The last good checkpoint resumes (on a disk with room).
    moved = tmp_path / run.name
    shutil.copytree(run, moved)
    done = resume(moved)
    assert done.status == "completed" and done.summary["steps"] == 3 * 16


def test_a_full_disk_under_compare_and_batch_is_one_line(tiny_mnist, small_fs, tmp_path):
    out = tmp_path / "runs"
    a, b = make_run(out, "ce"), make_run(out, "mse")
    fill(small_fs)
    result = runner.invoke(app, ["compare", str(a), str(b), "--out-dir", str(small_fs)])
    assert result.exit_code == 1, result.output
    line = one_line(result)
    assert "no space left on device" in line
    assert not list(small_fs.glob("compare-*"))  # a failed comparison leaves no folder

    f = write_batch(tmp_path / "b.yaml", {"name": "full", "base": tiny_base(tiny_mnist),
                                          "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--out-dir", str(small_fs)])
    assert result.exit_code == 1, result.output
    assert "no space left on device" in one_line(result)


def test_resume_of_a_read_only_run_folder_is_one_line(interrupted_run, small_fs):
    run = small_fs / interrupted_run.name
    shutil.copytree(interrupted_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    done = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only")
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 1, result.output
    line = one_line(result)
    assert "cannot write" in line and "Read-only file system" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_runs_comparisons_batches_and_the_data_cache_follow_the_umask(tiny_mnist, tmp_path, cli,
                                                                      umask):
    spec = write_batch(tmp_path / "spec.yaml", {
        "name": "modes", "base": tiny_base(tiny_mnist, max_steps=10),
        "grid": {"loss.name": ["ce", "mse"]}})
    out = tmp_path / "out"
    sets = tiny_set_items(tiny_mnist, f"out_dir={out}", "train.max_steps=10", "train.epochs=0",
                          "log.checkpoint=true", "log.tensorboard=true")
    before = os.umask(umask)
    try:
        # a comparison that trains: run folders (checkpoints, test_logits.npz, live TensorBoard
        # events), the comparison folder (tables, report.md, the PNGs)
        result = cli.invoke(app, ["compare", "--losses", "ce,mse",
                                  *(a for s in sets for a in ("--set", s))])
        assert result.exit_code == 0, result.output
        run = next(out.glob("*/meta.json")).parent
        result = cli.invoke(app, ["export", "tensorboard", str(run), "--out", str(out / "tb")])
        assert result.exit_code == 0, result.output
        # a batch: worker processes, batch.json, the copies of its file, its comparison
        result = cli.invoke(app, ["batch", str(spec), "--jobs", "1", "--out-dir", str(out)])
        assert result.exit_code == 0, result.output
        atomic_write(out / "cache" / "train-labels-idx1-ubyte", b"\0" * 8)  # the MNIST cache
    finally:
        os.umask(before)
    names = {p.name for p in out.rglob("*")}
    assert {"config.yaml", "meta.json", "summary.json", "metrics.csv", "eval.csv", "checkpoint.pt",
            "test_logits.npz", "report.md", "loss.png", "batch.json", "comparison.json",
            "train-labels-idx1-ubyte"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert wrong_modes(out, umask) == {}
