"""Issue 20 §4, §5, §7 at the command line: one line and exit 2 for a grid over the entry cap
(``--max-entries`` raises it) and for a checkpoint that declares more than its run can hold; a
batch folder past the old 1 MiB cap resumes."""

from __future__ import annotations

import json
import time
import zipfile

from ce_lab.batches.store import BATCH_JSON, read_state
from tests.helpers import InterruptAt, only_batch_dir, write_batch


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_dry_run_of_a_billion_entry_grid_answers_at_once_with_one_line(cli, tmp_path):
    from ce_lab.cli.app import app

    grid = {f"optim.{key}": [round(0.1 * (i + 1), 1) for i in range(10)]
            for key in ("lr", "momentum", "weight_decay", "beta1", "beta2", "min_lr", "nesterov",
                        "eps", "dampening")}  # 10**9 entries in about 1 KB
    f = write_batch(tmp_path / "b.yaml", {"name": "huge", "grid": grid})
    assert f.stat().st_size < 2 << 10
    start = time.perf_counter()
    result = cli.invoke(app, ["batch", str(f), "--dry-run", "--out-dir", str(tmp_path / "runs")])
    assert time.perf_counter() - start < 1.0
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert "1,000,000,000 entries" in line and "--max-entries" in line and "100,000" in line
    assert not (tmp_path / "runs").exists()


def test_max_entries_on_the_command_line(cli, tmp_path):
    from ce_lab.cli.app import app

    f = write_batch(tmp_path / "b.yaml", {"name": "s", "grid": {"loss.name": ["ce", "mse"]},
                                          "seeds": [0, 1, 2]})
    args = ["batch", str(f), "--dry-run", "--out-dir", str(tmp_path / "runs")]
    result = cli.invoke(app, [*args, "--max-entries", "5"])
    assert result.exit_code == 2 and "6 entries" in _one_line(result)
    result = cli.invoke(app, [*args, "--max-entries", "6"])
    assert result.exit_code == 0, result.output
    assert "6 runs" in result.stdout


def test_resume_from_a_zip_bomb_checkpoint_exits_2_with_one_line(cli, cfg, data):
    from ce_lab.cli.app import app
    from ce_lab.config import with_overrides
    from ce_lab.training import train

    cut = train(with_overrides(cfg, {"train.epochs": 3}), data=data, reporter=InterruptAt(10))
    with zipfile.ZipFile(cut.run_dir / "checkpoint.pt", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data/0", "w", force_zip64=True) as member:
            for _ in range(128):
                member.write(bytes(1 << 20))
    result = cli.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert "cannot resume from this checkpoint" in line and "declares 134,2" in line
    assert "Traceback" not in result.output


def test_a_bad_checkpoint_exits_2_as_the_readme_says(cli, cfg, data):
    from ce_lab.cli.app import app
    from ce_lab.config import with_overrides
    from ce_lab.training import train

    cut = train(with_overrides(cfg, {"train.epochs": 3}), data=data, reporter=InterruptAt(10))
    (cut.run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = cli.invoke(app, ["train", "--resume", str(cut.run_dir)])
    assert result.exit_code == 2, result.output
    assert "cannot resume from this checkpoint" in _one_line(result)


def test_a_batch_json_past_the_old_1_mib_cap_resumes(cli, tmp_path):
    from ce_lab.cli.app import app

    n = 2_000
    f = write_batch(tmp_path / "b.yaml", {"name": "big", "base": {"train": {"epochs": 1}},
                                          "seeds": list(range(n))})
    out = tmp_path / "runs"
    # the folder a run of it leaves: every entry failed, each with its error line
    from ce_lab.batches.plan import open_batch
    from ce_lab.batches.spec import load_batch
    from ce_lab.batches.store import write_state

    opened = open_batch(load_batch(f, out_dir=out), None)
    state = opened.state
    for rec in state.entries:
        rec.status, rec.error, rec.attempts = "failed", "worker crashed (exit -9); see " + (
            "logs/task-" + "x" * 200), 1
    write_state(opened.batch_dir, state)
    batch_dir = only_batch_dir(out)
    assert (batch_dir / BATCH_JSON).stat().st_size > 1 << 20
    result = cli.invoke(app, ["batch", "--resume", str(batch_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"batch big: {n} runs" in " ".join(result.stdout.split())
    assert [e.status for e in read_state(batch_dir).entries] == ["failed"] * n
    assert json.loads((batch_dir / BATCH_JSON).read_text())["entries"][-1]["index"] == n - 1
