"""`ce-lab train 2>&1 | head -1`: a closed output pipe stops the run as one Ctrl-C does.

The step finishes, a checkpoint is written, the run ends interrupted (exit 130) and resumes; the
closed output is silenced, with no traceback and no "Exception ignored" at interpreter exit.
Progress goes to stderr, so it is a closed stderr that stops a run while it trains; stdout gets
the summary at the end only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ce_lab.cli.app import app
from tests.helpers import cli_sets

EPOCHS = 200  # far more than a test waits for: the run must be stopped by the closed pipe


def _args(root: Path, progress: str, epochs: int = EPOCHS) -> list[str]:
    """`ce-lab train` of the tests' tiny run (tests/helpers.py TINY) with 16 units, a log and an
    evaluation every step, and no checkpoints: only the stop writes one."""
    return [sys.executable, "-m", "ce_lab", "train", "--progress", progress, "--epochs", str(epochs),
            "--device", "cpu", *cli_sets(root, "model.hidden=[16]", "log.eval_every=1",
                                         "log.log_every=1", "log.checkpoint=false")]


def _env(progress: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if progress == "bar":
        env["TTY_COMPATIBLE"] = "1"  # rich draws the bar (from its refresh thread) into the pipe
    return env


def _only_run(tmp_path: Path) -> Path:
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def _assert_interrupted_with_checkpoint(run: Path) -> int:
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    steps = json.loads((run / "summary.json").read_text())["steps"]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)  # log.checkpoint is off: the stop
    assert ckpt["step"] == steps and 0 < steps < EPOCHS * 16
    return steps


@pytest.mark.parametrize("progress", ["plain", "bar"])
def test_closed_stderr_stops_the_run_like_ctrl_c_and_it_resumes(cli, tiny_mnist, tmp_path, progress):
    proc = subprocess.Popen(_args(tiny_mnist, progress), cwd=tmp_path, env=_env(progress),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr.read(1)  # the reader takes what it wants (`head -c 1`) and goes
        proc.stderr.close()
        out = proc.stdout.read().decode()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert out.startswith("status") and "interrupted" in out.splitlines()[0], out  # the summary
    run = _only_run(tmp_path)
    _assert_interrupted_with_checkpoint(run)

    # The promise of an interrupted run: resumable (here with fewer epochs to finish quickly).
    cfg = (run / "config.yaml").read_text().replace(f"epochs: {EPOCHS}", "epochs: 1")
    (run / "config.yaml").write_text(cfg)
    result = cli.invoke(app, ["train", "--resume", str(run), "--progress", "none"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"


def test_head_on_stdout_and_stderr_together_exits_130_with_a_checkpoint(tiny_mnist, tmp_path):
    """`ce-lab train --progress plain 2>&1 | head -1`: both outputs are the closed pipe."""
    proc = subprocess.Popen(_args(tiny_mnist, "plain"), cwd=tmp_path, env=_env("plain"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout.readline().startswith(b"training ce for")
        proc.stdout.close()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    _assert_interrupted_with_checkpoint(_only_run(tmp_path))


def test_stderr_closed_before_the_first_line_stops_after_the_first_step(tiny_mnist, tmp_path):
    proc = subprocess.Popen(_args(tiny_mnist, "plain"), cwd=tmp_path, env=_env("plain"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stderr.close()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert b"Traceback" not in out and b"Exception ignored" not in out
    assert _assert_interrupted_with_checkpoint(_only_run(tmp_path)) <= 2


@pytest.mark.parametrize("progress", ["none", "plain"])
def test_stdout_closed_finishes_the_run_quietly(tiny_mnist, tmp_path, progress):
    """Nothing is written on stdout while training (progress goes to stderr), so the run
    completes; the summary it cannot print is dropped without a traceback and the exit code is
    the run's."""
    proc = subprocess.Popen(_args(tiny_mnist, progress, epochs=1), cwd=tmp_path,
                            env=_env(progress), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err
    assert err == b"" if progress == "none" else err.startswith(b"training ce for")
    assert json.loads((_only_run(tmp_path) / "meta.json").read_text())["status"] == "completed"
