"""``ce-lab runs`` (list, show, diff) on run folders in the exact on-disk format, and tables that
fit an 80-column pipe without wrapping a number (ce_lab/render/fit.py)."""

from __future__ import annotations

import csv
import io
import json
import re
import socket

from ce_lab.cli.app import app
from tests.helpers import dead_pid, set_meta
from tests.run_factory import make_run


def _runs(tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", 0, started="2026-11-20T10:00:00+00:00", test_acc=0.91,
                   name="20261120-100000-ce-aaaa")
    mid = make_run(out, "mse", 1, started="2026-11-21T10:00:00+00:00", group="compare-x",
                   overrides={"optim.lr": 0.5}, name="20261121-100000-mse-bbbb")
    new = make_run(out, "hinge", 0, started="2026-11-22T10:00:00+00:00", status="diverged",
                   diverged_at=300, group="compare-x", name="20261122-100000-hinge-cccc")
    summary = json.loads((mid / "summary.json").read_text()) | {"flags": ["stalled"]}
    (mid / "summary.json").write_text(json.dumps(summary))
    return out, old, mid, new


def test_runs_lists_newest_first_with_status_flags_and_numbers(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)
    result = cli.invoke(app, ["runs", "--out-dir", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run"] for r in rows] == [new.name, mid.name, old.name]
    assert rows[0]["status"] == "diverged" and rows[1]["flags"] == ["stalled"]
    assert rows[2]["test_acc"] == 0.91 and rows[2]["steps"] == 600 and rows[1]["seed"] == 1
    assert rows[1]["group"] == "compare-x" and rows[2]["group"] is None

    table = cli.invoke(app, ["runs", "--out-dir", str(out)])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "3 of 3 runs" in lines[0]
    assert lines.index(next(x for x in lines if new.name in x)) < lines.index(
        next(x for x in lines if old.name in x))
    assert "completed (stalled)" in table.stdout and "0.9100" in table.stdout


def test_runs_filters_and_csv(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)

    def ids(*args):
        result = cli.invoke(app, ["runs", "--out-dir", str(out), "--format", "csv", *args])
        assert result.exit_code == 0, result.output
        return [r["run"] for r in csv.DictReader(io.StringIO(result.stdout))]

    assert ids("--status", "diverged") == [new.name]
    assert ids("--status", "stalled") == [mid.name]  # a flag matches as a status does
    assert ids("--loss", "ce", "--loss", "mse") == [mid.name, old.name]
    assert ids("--group", "compare-x") == [new.name, mid.name]
    assert ids("--last", "1") == [new.name]
    assert ids("--status", "failed") == []
    bad = cli.invoke(app, ["runs", "--out-dir", str(out), "--last", "0"])
    assert bad.exit_code == 2 and "--last must be at least 1" in bad.stderr


def test_runs_shows_the_config_keys_that_differ_and_filters_by_value(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)  # mid alone at optim.lr 0.5

    def invoke(*args):
        result = cli.invoke(app, ["runs", "--out-dir", str(out), *args], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        return result.stdout

    header = invoke().splitlines()[1].split()
    assert header[:4] == ["run", "loss", "optim.lr", "status"]  # the setting beside the loss
    assert "model.hidden" not in header and "out_dir" not in header  # equal / no result
    assert re.search(rf"{mid.name}\s+mse\s+0\.5\s+completed", invoke())
    rows = json.loads(invoke("--format", "json"))
    assert [r["optim.lr"] for r in rows] == [0.1, 0.5, 0.1]
    assert next(csv.DictReader(io.StringIO(invoke("--format", "csv"))))["optim.lr"] == "0.1"

    def ids(*where):
        text = invoke("--format", "json", *(a for w in where for a in ("--where", w)))
        return [r["run"] for r in json.loads(text)]

    assert ids("optim.lr=0.1") == [new.name, old.name]
    assert ids("optim.lr=0.10") == ids("optim.lr=1e-1") == [new.name, old.name]
    assert ids("optim.lr=0.5") == [mid.name]
    assert ids("optim.lr=0.1", "loss.name=ce") == [old.name]  # repeated: every one holds
    assert ids("optim.lr=0.2") == []
    narrowed = invoke("--where", "optim.lr=0.1").splitlines()
    assert "2 of 3 runs" in narrowed[0] and "optim.lr" not in narrowed[1]  # equal among these
    assert "optim.lr" not in json.loads(invoke("--format", "json", "--where", "optim.lr=0.1"))[0]


def test_runs_where_errors_are_one_line_with_exit_2(cli, tmp_path):
    out, *_ = _runs(tmp_path)
    for where, said in (("lr=0.1", "has the config key 'lr'; did you mean 'optim.lr'?"),
                        ("optim.lr", "--where expects dotted.key=value"),
                        ("optim..lr=1", "--where expects dotted.key=value"),
                        ("optim.lr=fast", "--where optim.lr='fast': optim.lr is a number")):
        result = cli.invoke(app, ["runs", "--out-dir", str(out), "--where", where])
        assert result.exit_code == 2, (where, result.output)
        assert result.stderr.count("\n") == 1 and said in result.stderr, result.stderr
        assert result.stdout == ""


def test_runs_lists_a_crashed_run_and_skips_a_corrupt_folder_with_one_line(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)
    set_meta(old, status="running", pid=dead_pid(), host=socket.gethostname())
    (new / "meta.json").write_text("{not json")
    result = cli.invoke(app, ["runs", "--out-dir", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["run"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {old.name, mid.name} and rows[old.name]["status"] == "crashed"
    skipped = [x for x in result.stderr.splitlines() if x.startswith("skipped:")]
    assert len(skipped) == 1 and new.name in skipped[0]
    missing = cli.invoke(app, ["runs", "--out-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "is not a folder" in missing.stderr


def test_runs_show_gives_summary_config_and_files(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)
    result = cli.invoke(app, ["runs", "--out-dir", str(out), "show", mid.name])  # by its id
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert mid.name in text and "completed (stalled)" in text
    assert re.search(r"steps to 0\.90\s+100", text) and re.search(r"test acc\s+0\.9550", text)
    assert "lr: 0.5" in text  # the config, as YAML
    assert re.search(r"metrics\.csv\s+\d+", text)
    as_json = cli.invoke(app, ["runs", "show", str(new), "--format", "json"])  # by its folder
    data = json.loads(as_json.stdout)
    assert data["status"] == "diverged" and data["summary"]["diverged_at"] == 300
    assert data["files"]["summary.json"] == (new / "summary.json").stat().st_size
    nope = cli.invoke(app, ["runs", "--out-dir", str(out), "show", "no-such-run"])
    assert nope.exit_code == 2 and "no run 'no-such-run'" in nope.stderr


def test_runs_diff_shows_only_differing_keys_then_numbers(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)
    result = cli.invoke(app, ["runs", "diff", str(old), str(mid), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"] == {"seed": [0, 1], "loss.name": ["ce", "mse"], "optim.lr": [0.1, 0.5]}
    assert data["summary"]["test acc"] == ["0.9100", "0.9550"]
    table = cli.invoke(app, ["runs", "diff", str(old), str(mid)])
    assert table.exit_code == 0, table.output
    assert re.search(r"optim\.lr\s+0\.1\s+0\.5", table.stdout)
    assert "model.hidden" not in table.stdout  # equal keys are not shown
    same = cli.invoke(app, ["runs", "diff", str(old), str(old)])
    assert same.exit_code == 0 and "no key differs" in same.stdout
    one = cli.invoke(app, ["runs", "diff", str(old)])
    assert one.exit_code == 2 and "at least two runs" in one.stderr


def test_runs_diff_in_80_columns_numbers_the_runs(cli, tmp_path):
    out, old, mid, new = _runs(tmp_path)
    result = cli.invoke(app, ["runs", "diff", str(old), str(mid), str(new)],
                        env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"#1 {old.name}", f"#2 {mid.name}", f"#3 {new.name}"]
    assert max(len(x) for x in lines[3:]) <= 80


def test_a_sweeps_comparison_in_an_80_column_pipe_never_wraps_a_number(cli, tmp_path):
    """``ce-lab batch configs/sweep-lr.yaml > out.txt`` used to wrap the paired table's cells
    into one-word lines; the same tables now come as whole cells or records."""
    out = tmp_path / "runs"
    for loss in ("ce", "mse", "hinge", "nll-manual"):
        for lr in (0.05, 0.1, 0.2, 0.5, 1.0):
            for seed in (0, 1):
                make_run(out, loss, seed, group="sweep", overrides={"optim.lr": lr},
                         reach={0.9: 100 + 50 * seed + 50 * (loss == "mse"), 0.95: 300,
                                0.97: None})
    result = cli.invoke(app, ["compare", "--group", "sweep", "--out-dir", str(out), "--no-plots"],
                        env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    paired = next(i for i, x in enumerate(lines) if x.startswith("paired differences"))
    at = lines.index("  metric: steps to 0.90", lines.index("mse optim.lr=0.1", paired))
    assert lines[at + 2:at + 4] == ["  mean diff: +50.0", "  95% interval: [+50.0, +50.0]"]
    files = [x for x in lines if x.startswith(("table", "report.md:", "paired.csv:",
                                               "report.html:"))]
    assert len(files) == 6  # the files' paths, one line each however long
    assert max(len(x) for x in lines if x not in files) <= 80
    assert any(x.startswith("  verdict: ") for x in lines)
    for x in lines:  # no cell was cut into pieces: no line holds a lone fragment of a number
        assert x.strip() not in ("±", "[", "]", "/")
