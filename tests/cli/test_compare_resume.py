"""An interrupted ``ce-lab compare`` resumes (``--resume COMPARISON_DIR``) to the numbers an
uninterrupted comparison has, after a real SIGINT to a real process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ce_lab
from ce_lab.cli.app import app
from tests.conftest import tiny_set_items
from tests.helpers import runner

EPOCHS = 30  # 480 steps a seed: the SIGINT, sent at the first progress line, lands in seed 0


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    sets = tiny_set_items(root, "model.hidden=[16]", f"train.epochs={EPOCHS}",
                          "log.log_every=50", "log.checkpoint=false")
    return ["compare", "--losses", "ce,mse", "--seeds", "0,1", "--no-plots", "--out-dir",
            str(out), *[a for s in sets for a in ("--set", s)], *extra]


def _numbers(run: Path) -> dict:
    """What a run computed, without its timings, ids and paths."""
    def rows(name: str) -> list[dict]:
        with open(run / name, newline="") as f:
            return [{k: v for k, v in r.items() if "second" not in k and "wall" not in k}
                    for r in csv.DictReader(f)]

    summary = json.loads((run / "summary.json").read_text())
    keep = ("final", "test", "steps", "status", "loss", "seed", "diverged_at")
    return {"metrics": rows("metrics.csv"), "evals": rows("eval.csv"),
            "summary": {k: summary.get(k) for k in keep}}


def _runs_by_member(out: Path) -> dict[tuple[str, int], dict]:
    got = {}
    for run in out.iterdir():
        if (run / "summary.json").exists():
            s = json.loads((run / "summary.json").read_text())
            got[(s["loss"], s["seed"])] = _numbers(run)
    return got


def _wait_for_training(proc: subprocess.Popen) -> list[str]:
    """Stderr's lines until the first progress line of a step (seed 0's stack is training)."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("step "):
            return lines
    pytest.fail(f"the comparison ended before it trained: {''.join(lines)}")


def _stack_trains_exactly(root: Path) -> bool:
    """Whether, here with one thread, a member of this comparison's stack trains bit for bit as
    alone (resumed members continue alone): tests/conftest.py, stack_trains_exactly."""
    import torch

    from ce_lab.config import resolve_config, with_overrides
    from ce_lab.data.loader import load_mnist
    from tests.conftest import stack_trains_exactly

    base = resolve_config(None, tiny_set_items(root, "model.hidden=[16]"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return stack_trains_exactly([with_overrides(base, {"loss.name": n}) for n in ("ce", "mse")],
                                    load_mnist(base.data, base.seed, "cpu"))
    finally:
        torch.set_num_threads(threads)


def _assert_same_numbers(got: dict, expected: dict, exact: bool) -> None:
    if exact:
        assert got == expected  # the same numbers as uninterrupted, to the bit
        return
    assert got.keys() == expected.keys()
    for member, numbers in got.items():
        for part in ("metrics", "evals"):
            assert len(numbers[part]) == len(expected[member][part])
            for a, b in zip(numbers[part], expected[member][part]):
                assert a.keys() == b.keys()
                for k in a:  # float32 rounding of a stacked product, compounded over steps
                    assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-3, abs=1e-5,
                                                        nan_ok=True), (member, part, k)


ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # one setting for all three


def _ce_lab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ce_lab", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_sigint_stops_compare_with_one_line_and_resume_finishes_it_exactly(tiny_mnist, tmp_path):
    whole = tmp_path / "whole"
    done = _ce_lab(*_args(tiny_mnist, whole), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = _runs_by_member(whole)
    assert len(expected) == 4

    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "ce_lab",
                             *_args(tiny_mnist, out, "--progress", "plain")],
                            cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = _wait_for_training(proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    stderr = "".join(before) + stderr
    assert proc.returncode == 130, stderr
    (comp,) = out.glob("compare-*")
    lines = stderr.strip().splitlines()
    assert lines[-1] == f"interrupted; continue with: ce-lab compare --resume {comp}"
    assert "Traceback" not in stderr and stdout == ""  # no table of half a comparison
    assert sorted(p.name for p in comp.iterdir()) == ["request.json"]
    statuses = sorted(json.loads(m.read_text())["status"] for m in out.glob("*/meta.json"))
    assert statuses == ["interrupted", "interrupted"]  # seed 0's stack; seed 1 never started

    result = _ce_lab("compare", "--resume", str(comp), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Seed 0's members continued alone from their checkpoints; seed 1 trained fused as planned.
    _assert_same_numbers(_runs_by_member(out), expected, _stack_trains_exactly(tiny_mnist))
    table = json.loads(result.stdout)
    assert sorted((r["loss"], r["n"]) for r in table["rows"]) == [("ce", 2), ("mse", 2)]
    assert (comp / "table.csv").exists() and (comp / "report.md").exists()
    members = json.loads((comp / "comparison.json").read_text())["runs"]
    assert len(members) == 4

    again = runner.invoke(app, ["compare", "--resume", str(comp), "--losses", "ce"])
    assert again.exit_code == 2 and "give no other options" in again.stderr


def test_resume_of_a_folder_that_is_not_a_training_comparison_is_one_line(tmp_path):
    result = runner.invoke(app, ["compare", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {tmp_path}: not a comparison that trained "
                                     "(no request.json); only `ce-lab compare` runs that trained "
                                     "can be resumed")
    with pytest.raises(ce_lab.UsageError, match="no request.json"):
        ce_lab.resume_comparison(tmp_path)


def test_api_compare_with_tuning_records_the_rates_as_the_cli_does(tiny_mnist, tmp_path):
    """ce_lab.compare(tune_lr=True) is the CLI's --tune-lr: same folder, same tuned record."""
    sets = dict(s.split("=", 1) for s in tiny_set_items(tiny_mnist, "model.hidden=[16]"))
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in sets.items()}
    cmp = ce_lab.compare(["ce", "mse"], tune_lr=True, lr_grid=[0.1, 1.0], max_steps=30,
                         overrides=overrides, out_dir=tmp_path / "api", plots=False)
    cli = runner.invoke(app, ["compare", "--losses", "ce,mse", "--tune-lr", "--lr-grid", "0.1,1",
                              "--max-steps", "30", "--no-plots", "--out-dir", str(tmp_path / "cli"),
                              *[a for s in tiny_set_items(tiny_mnist, "model.hidden=[16]")
                                for a in ("--set", s)]])
    assert cli.exit_code == 0, cli.stderr
    (cli_comp,) = (tmp_path / "cli").glob("compare-*")
    api_tuned = json.loads((cmp.dir / "comparison.json").read_text())["tuned"]
    cli_tuned = json.loads((cli_comp / "comparison.json").read_text())["tuned"]
    assert api_tuned == cli_tuned and set(cmp.tuned) == {"ce", "mse"}
    assert cmp.tuned == {cell: t["chosen"] for cell, t in api_tuned.items()}
    assert (cmp.dir / "tuning.csv").exists() and (cmp.dir / "tuning").is_dir()
    assert sorted(r.loss for r in cmp.runs) == ["ce", "mse"]
