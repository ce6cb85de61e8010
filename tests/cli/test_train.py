"""``ce-lab train`` end to end: the summary it prints and its exit codes (divergence 3, an unknown
loss or device 2, SIGINT 130 with a checkpoint), a refused resume, and ``--threads``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from ce_lab import threads
from ce_lab.cli.app import app
from ce_lab.training import train
from tests.helpers import cli_sets, rows, runner, tiny_sets


def test_sigint_to_a_cli_run_exits_130_with_a_checkpoint(tiny_mnist, tmp_path):
    args = [sys.executable, "-m", "ce_lab", "train", "--progress", "none"]
    for s in tiny_sets(tiny_mnist, "train.epochs=400", "log.log_every=1", "log.eval_every=1000"):
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    metrics = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").glob("*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) > 20:
            metrics = found[0]
            break
        time.sleep(0.05)
    assert metrics is not None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    run_dir = metrics.parent
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == int(rows(run_dir / "metrics.csv")[-1]["step"])


def test_cli_train_completes_and_prints_summary(tiny_mnist):
    result = runner.invoke(app, ["train", "--loss", "mse", "--epochs", "1", *cli_sets(tiny_mnist)])
    assert result.exit_code == 0, result.output
    assert "completed" in result.stdout and "run folder" in result.stdout
    assert "val acc ≥ 0.90" in result.stdout


def test_cli_train_divergence_exits_3(tiny_mnist):
    result = runner.invoke(app, ["train", "--loss", "nll-manual", "--lr", "200",
                                 *cli_sets(tiny_mnist, "log.log_every=1")])
    assert result.exit_code == 3, result.output
    assert "diverged" in result.stdout


def test_cli_unknown_loss_exits_2_and_lists_valid_names(tiny_mnist):
    result = runner.invoke(app, ["train", "--loss", "nope"])
    assert result.exit_code == 2
    assert "mse" in result.stderr and "nll-manual" in result.stderr
    result = runner.invoke(app, ["train", "--set", "loss.name=nope"])
    assert result.exit_code == 2
    assert "valid losses: ce, mse" in result.stderr and "Traceback" not in result.stderr


def test_cli_unavailable_device_exits_2(tiny_mnist):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["train", "--device", "cuda", *cli_sets(tiny_mnist)[:-2]])
    assert result.exit_code == 2
    assert "cuda" in result.stderr


def test_cli_resume_of_a_completed_run_is_refused(cfg, data):
    out = train(cfg, data=data)
    result = runner.invoke(app, ["train", "--resume", str(out.run_dir)])
    assert result.exit_code == 2
    assert "already completed" in result.stderr


def test_the_cli_trains_with_the_threads_asked(cli, tiny_sets, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # A command's request lasts for its process; here that is the test's: put it back after.
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_share", None)
    args = ["--set", "train.max_steps=3", *sum((["--set", s] for s in tiny_sets()), [])]
    result = cli.invoke(app, ["train", "--threads", "2", *args])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2
    result = cli.invoke(app, ["compare", "--losses", "ce,mse", "--no-plots", "--threads", "3", *args])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 3
    result = cli.invoke(app, ["train", "--threads", "0", *args])
    assert result.exit_code == 2 and "--threads" in result.output


def test_threads_is_refused_where_compare_trains_nothing(cli, tmp_path):
    result = cli.invoke(app, ["compare", "--last", "2", "--threads", "2", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--threads only apply when compare trains" in " ".join(result.output.split())
