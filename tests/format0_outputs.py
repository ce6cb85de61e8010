"""What the readers make of the run and comparison folders under tests/fixtures/format0/runs.

Those folders were written by ce-lab before its files had a ``format`` (commit 53d9c0d, by
tests/fixtures/format0/make.py), and tests/fixtures/format0/expected/ holds what that ce-lab's
readers printed for them: ``ce-lab runs``, ``runs show``, ``runs diff``, ``compare`` on disk (by
group and by comparison folder) and the scalars of ``export tensorboard``. tests/test_format.py
runs the same readers of today's ce-lab on a copy and compares. Kept to the code both versions
have, so that make.py can run it with the old one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format0"
NEW_COMPARISON = re.compile(r"compare-\d{8}-\d{6}-[0-9a-f]{4}")


def copy_fixture(dest: Path) -> Path:
    """A copy of the fixture's run and comparison folders under ``dest``/runs; returns ``dest``."""
    shutil.copytree(FIXTURE / "runs", dest / "runs")
    return dest


def folders(root: Path) -> tuple[list[str], str]:
    """The run ids (oldest first, as their names sort) and the comparison folder's name."""
    names = sorted(p.name for p in (root / "runs").iterdir() if p.is_dir())
    comparisons = [n for n in names if n.startswith("compare-")]
    return [n for n in names if n not in comparisons], comparisons[0]


def commands(root: Path) -> dict[str, list[str]]:
    """Output file name -> ce-lab arguments, run in ``root`` (the runs are under runs/)."""
    runs, comparison = folders(root)
    group = json.loads((root / "runs" / runs[0] / "meta.json").read_text())["group"]
    first, diverged = f"runs/{runs[0]}", f"runs/{runs[-1]}"
    return {
        "runs.json": ["runs", "--format", "json"],
        "runs.txt": ["runs"],
        "show.json": ["runs", "show", first, "--format", "json"],
        "show.txt": ["runs", "show", first],
        "show_diverged.txt": ["runs", "show", diverged],
        "diff.json": ["runs", "diff", *(f"runs/{r}" for r in runs[:3]), "--format", "json"],
        "diff.txt": ["runs", "diff", first, diverged],
        # last: these write a comparison folder of their own under runs/
        "compare_group.json": ["compare", "--group", group, "--format", "json", "--no-plots"],
        "compare_folder.txt": ["compare", f"runs/{comparison}", "--no-plots"],
        "compare_folder.csv": ["compare", f"runs/{comparison}", "--format", "csv", "--no-plots"],
    }


def normalise(text: str, root: Path) -> str:
    """The copy's place as ``<root>``; a comparison folder made now (named by the time, unlike
    the fixture's own) as ``compare-<new>``."""
    _, own = folders(root)
    text = text.replace(str(root), "<root>")
    return NEW_COMPARISON.sub(lambda m: m[0] if m[0] == own else "compare-<new>", text)


def cli_outputs(root: Path) -> dict[str, str]:
    """Each command's exit code and stdout, run in ``root`` with the CLI's test settings."""
    from ce_lab.cli.app import app
    from tests.helpers import runner

    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    out, cwd = {}, os.getcwd()
    os.chdir(root)
    try:
        for name, args in commands(root).items():
            result = runner.invoke(app, args, env=env)
            stdout = result.stdout
            # report.html came after these folders: its line (compare's last) is not the readers'
            stdout = re.sub(r"report\.html: [^\n]*\n\Z", "", stdout)
            out[name] = f"exit {result.exit_code}\n" + normalise(stdout, root)
    finally:
        os.chdir(cwd)
    return out


def tensorboard_scalars(root: Path) -> dict[str, dict[str, list[list[float]]]]:
    """``export tensorboard`` of every run, read back: run -> tag -> [[step, value], ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ce_lab.cli.app import app
    from tests.helpers import runner

    runs, _ = folders(root)
    logdir = root / "tensorboard"
    result = runner.invoke(app, ["export", "tensorboard", *(str(root / "runs" / r) for r in runs),
                                 "--out", str(logdir)])
    assert result.exit_code == 0, result.output
    out = {}
    # Each TensorBoard run's folder, wherever the export put it (flat by run id before, nested by
    # group and named by what differs since): keyed by its path under the logdir.
    for run in sorted({p.parent for p in logdir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        out[run.relative_to(logdir).as_posix()] = {
            tag: [[e.step, e.value] for e in acc.Scalars(tag)]
            for tag in sorted(acc.Tags()["scalars"])}
    return out


def write_expected(root: Path, dest: Path) -> None:
    """What the readers give now, as the files tests/test_format.py compares against."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in cli_outputs(root).items():
        (dest / name).write_text(text, encoding="utf-8")
    scalars = json.dumps(tensorboard_scalars(root), indent=0, sort_keys=True, allow_nan=True)
    (dest / "tensorboard.json").write_text(scalars + "\n", encoding="utf-8")
