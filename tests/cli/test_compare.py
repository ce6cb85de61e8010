"""``ce-lab compare`` over runs on disk through the CLI: the rich table, csv/json/markdown output
and the files and plots it writes, skipped folders, run selection, usage errors; a registered
metric in every format; every paired interval of a real comparison recomputed with scipy. The
numbers themselves are tested on compare_on_disk in tests/test_compare.py and
tests/test_compare_stats.py."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ce_lab import metrics
from ce_lab.cli.app import app
from ce_lab.losses import loss_names
from ce_lab.metrics import THRESHOLD, SummaryMetric
from ce_lab.runs.read import read_csv_rows
from ce_lab.runs.record import select_runs
from ce_lab.training import train
from tests.float64_refs import numpy_calibration
from tests.helpers import BAD_STEP, poison_loss, runner, seeded_runs, three_loss_runs
from tests.run_factory import make_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return runner.invoke(app, ["compare", *args])


@pytest.fixture
def three_losses(tmp_path) -> dict[str, Path]:
    return three_loss_runs(tmp_path / "runs")


@pytest.fixture
def seeded(tmp_path) -> Path:
    return seeded_runs(tmp_path / "runs")


def json_rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    return {row["label"]: row for row in data["rows"]}


# --- table content -----------------------------------------------------------------------------


def test_rich_table_shows_values_and_not_reached(three_losses):
    result = invoke(*map(str, three_losses.values()), "--no-plots")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    mse_line = next(line for line in out.splitlines() if line.startswith("│ mse "))
    assert "0.9301" in mse_line and "400" in mse_line and "not reached" in mse_line
    ce_line = next(line for line in out.splitlines() if line.startswith("│ ce "))
    assert "100" in ce_line and "300" in ce_line and "0.9612" in ce_line
    assert "not reached" not in ce_line.split("300")[0]  # 0.90 and 0.95 were reached
    # One seed: no paired table of n=1 rows, one line saying why, and no paired.csv.
    assert "paired differences by seed" not in out and "n=1" not in out
    assert "no paired differences shown: an interval over seeds needs at least two seeds" in out
    assert "report.md:" in out and "plot:" not in out and "paired.csv:" not in out


# --- paired differences over seeds --------------------------------------------------------------


def test_seed_table_shows_mean_std_n_and_honest_counts(seeded):
    result = invoke("--group", "g3", "--out-dir", str(seeded), "--format", "markdown",
                    "--no-plots")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    mse_row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    cells = [c.strip() for c in mse_row.strip("|").split("|")]
    assert cells[1] == "3"  # n
    mean, std = 450.0, statistics.stdev([400, 450, 500])
    assert f"{mean:.0f} ± {std:.1f}" in mse_row
    assert cells[8] == "550 (1/3 reached)<br>5.5 s"  # 0.95: one seed of three, no std
    hinge_rows = " ".join(line for line in md.splitlines() if line.startswith("| hinge |"))
    assert "2 completed<br>1 diverged" in hinge_rows and "1/3 diverged, step 580" in hinge_rows
    assert "mse not reached in 2/3 seeds" in md
    assert "not significant" in md


# --- formats parse back ------------------------------------------------------------------------


def test_csv_json_markdown_parse_back_to_the_same_numbers(three_losses, tmp_path):
    paths = list(map(str, three_losses.values()))
    summaries = {k: json.loads((p / "summary.json").read_text()) for k, p in three_losses.items()}

    csv_file = tmp_path / "t.csv"
    assert invoke(*paths, "--format", "csv", "--output", str(csv_file), "--no-plots").exit_code == 0
    rows = {r["loss"]: r for r in csv.DictReader(io.StringIO(csv_file.read_text()))}
    for loss, s in summaries.items():
        assert float(rows[loss]["final_val_acc"]) == s["final"]["val_acc"]
        assert float(rows[loss]["test_acc"]) == s["final"]["test_acc"]
        assert float(rows[loss]["grad_late/fc1.weight"]) == s["grad_summary"]["late"][
            "fc1.weight"]
        for t in ("0.90", "0.95", "0.97"):
            hit = s["convergence"][t]
            cell = rows[loss][f"steps_to_{t}"]
            assert (cell == "") if hit is None else (float(cell) == hit["step"])

    js = json.loads(invoke(*paths, "--format", "json", "--no-plots").stdout)
    for row in js["rows"]:
        s = summaries[row["loss"]]
        assert row["best_val_acc"] == s["best_val_acc"]
        assert row["seconds_to_0.90"] == s["convergence"]["0.90"]["seconds"]

    md = invoke(*paths, "--format", "markdown", "--no-plots").stdout
    table = md.split("\n\n")[1].splitlines()  # first table: header, rule, rows
    header = [h.strip() for h in table[0].strip("|").split("|")]
    for line in table[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        s = summaries[cells["loss"]]
        assert float(cells["final val acc"]) == round(s["final"]["val_acc"], 4)
        assert float(cells["test acc"]) == round(s["final"]["test_acc"], 4)
        for t in ("0.90", "0.95", "0.97"):
            hit = s["convergence"][t]
            shown = cells[f"to {t} steps, s (±50 steps)"]  # log.eval_every=50 in run_factory
            if hit is None:
                assert shown == "not reached"
            else:
                steps, seconds = shown.split("<br>")
                assert int(steps) == hit["step"] and float(seconds.removesuffix(" s")) == round(
                    hit["seconds"], 1)


def test_comparison_folder_holds_tables_report_and_real_pngs(seeded):
    result = invoke("--group", "g3", "--out-dir", str(seeded))
    assert result.exit_code == 0, result.stderr
    comps = list(seeded.glob("compare-*"))
    assert len(comps) == 1
    comp = comps[0]
    pngs = sorted(p.name for p in comp.glob("*.png"))
    assert pngs == ["grad_norms.png", "logit_grad.png", "loss.png", "val_acc.png"]
    for name in pngs:
        data = (comp / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
        assert str(comp / name) in result.stdout  # paths printed
    report = (comp / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in report
    assert "| mse |" in report and "not significant" in report
    meta = json.loads((comp / "comparison.json").read_text())
    assert meta["kind"] == "comparison" and meta["group"] == comp.name
    assert len(meta["runs"]) == 12
    assert all((comp / r / "summary.json").exists() for r in meta["runs"])
    assert {"table.csv", "table.json", "table.md"} <= {p.name for p in comp.iterdir()}
    # The comparison folder stands for its runs, and is ignored by --last.
    again = json.loads(invoke(str(comp), "--format", "json", "--no-plots").stdout)
    assert sum(r["n"] for r in again["rows"]) == 12


def test_runs_without_grad_stats_skip_gradient_plots(tmp_path):
    out = tmp_path / "runs"
    paths = [make_run(out, loss, grad_stats=False) for loss in ("ce", "mse")]
    result = invoke(*map(str, paths), "--out-dir", str(out))
    assert result.exit_code == 0, result.stderr
    comp = next(out.glob("compare-*"))
    assert sorted(p.name for p in comp.glob("*.png")) == ["loss.png", "val_acc.png"]
    rows = json.loads((comp / "table.json").read_text())["rows"]
    assert rows[0]["logit_grad_early"] is None


# --- choosing runs, skipping bad folders --------------------------------------------------------


def test_bad_run_folders_are_skipped_with_one_message_each(three_losses, tmp_path):
    out = tmp_path / "runs"
    no_summary = make_run(out, "ce", seed=1)
    (no_summary / "summary.json").unlink()
    bad_json = make_run(out, "ce", seed=2)
    (bad_json / "summary.json").write_text('{"status": "completed", "loss": ')
    running = make_run(out, "ce", seed=3)
    meta = json.loads((running / "meta.json").read_text())
    (running / "meta.json").write_text(json.dumps(meta | {"status": "running"}))
    no_column = make_run(out, "ce", seed=4)
    text = (no_column / "eval.csv").read_text().replace("val_acc", "accuracy")
    (no_column / "eval.csv").write_text(text)
    missing = tmp_path / "nowhere"
    bad = [missing, no_summary, bad_json, running, no_column]

    result = invoke(str(three_losses["ce"]), *map(str, bad), str(three_losses["mse"]),
                    "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == len(bad)
    for path, line in zip(bad, skipped, strict=True):
        assert str(path) in line
    assert "missing" in skipped[0] and "no summary.json" in skipped[1]
    assert "summary.json" in skipped[2] and "status running" in skipped[3]
    assert "val_acc" in skipped[4]
    data = json.loads(result.stdout)
    assert [r["label"] for r in data["rows"]] == ["ce", "mse"]
    assert len(data["skipped"]) == len(bad)


def test_only_bad_folders_exit_1(tmp_path):
    result = invoke(str(tmp_path / "nothing-here"), "--no-plots")
    assert result.exit_code == 1
    assert "skipped:" in result.stderr and "no runs to compare" in result.stderr


def test_last_n_and_group_select_runs(tmp_path):
    out = tmp_path / "runs"
    old = make_run(out, "ce", started="2026-11-20T10:00:00+00:00", group="a")
    mid = make_run(out, "mse", started="2026-11-21T10:00:00+00:00", group="b")
    new = make_run(out, "hinge", started="2026-11-22T10:00:00+00:00", group="b")
    (out / "compare-20261123-000000-abcd").mkdir()  # not a run: ignored by --last
    records, skipped = select_runs(out, last=2)
    assert [r.path for r in records] == [mid, new] and skipped == []
    records, _ = select_runs(out, group="b")
    assert [r.path for r in records] == [mid, new]
    records, _ = select_runs(out, last=5)
    assert [r.path for r in records] == [old, mid, new]

    result = invoke("--last", "2", "--out-dir", str(out), "--format", "json", "--no-plots")
    assert [r["loss"] for r in json_rows(result).values()] == ["mse", "hinge"]
    result = invoke("--group", "nope", "--out-dir", str(out))
    assert result.exit_code == 2 and "no runs in group 'nope'" in result.stderr


# --- usage errors ------------------------------------------------------------------------------


def test_unknown_loss_exits_2_listing_valid_names():
    result = invoke("--losses", "ce,foo")
    assert result.exit_code == 2
    assert "foo" in result.stderr
    assert "valid losses: " + ", ".join(loss_names()) in result.stderr


def test_sort_by_column_and_unknown_column(three_losses):
    paths = list(map(str, three_losses.values()))
    rows = json_rows(invoke(*paths, "--sort", "steps_to_0.90", "--format", "json", "--no-plots"))
    assert list(rows) == ["ce", "hinge", "mse"]
    rows = json_rows(invoke(*paths, "--sort=-final_val_acc", "--format", "json", "--no-plots"))
    assert list(rows) == ["ce", "hinge", "mse"]
    rows = json_rows(invoke(*paths, "--sort", "steps_to_0.95", "--format", "json", "--no-plots"))
    assert list(rows) == ["ce", "hinge", "mse"]  # mse never reached it: last

    before = set(Path("runs").glob("compare-*"))
    result = invoke(*paths, "--sort", "speed")
    assert result.exit_code == 2
    assert "unknown --sort column 'speed'" in result.stderr and "steps_to_0.90" in result.stderr
    assert set(Path("runs").glob("compare-*")) == before  # failed before writing anything


def test_training_options_with_named_runs_exit_2(three_losses):
    result = invoke(str(three_losses["ce"]), "--losses", "ce,mse")
    assert result.exit_code == 2 and "--losses" in result.stderr


def test_table_output_file(three_losses, tmp_path):
    target = tmp_path / "table.txt"
    result = invoke(*map(str, three_losses.values()), "--no-plots", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    text = target.read_text()
    assert "not reached" in text and "0.9301" in text and "\x1b[" not in text
    assert f"table: {target}" in result.stdout and "0.9301" not in result.stdout


@pytest.fixture
def registered():
    """Two dummy metrics: a plain one (wall seconds) and one per threshold (examples to it)."""
    added = [
        metrics.register(SummaryMetric(
            "wall_seconds", "wall s", "seconds", "seconds the run took", ("wall_seconds",),
            higher_is_better=False, shown=("wall", "s"))),
        metrics.register(SummaryMetric(
            "examples_to_{t}", "examples to {t}", "step", "examples seen until the threshold",
            ("convergence", "{t}", "examples"), param=THRESHOLD, table="gradients")),
    ]
    try:
        yield added
    finally:
        for m in added:
            metrics.unregister(m.key)
    assert "wall_seconds" not in [m.key for m in metrics.summary_metrics()]


@pytest.fixture
def runs(tmp_path):
    out = tmp_path / "runs"
    return [make_run(out, "ce", steps=600, reach={0.9: 100, 0.95: None}),
            make_run(out, "mse", steps=400, reach={0.9: 200, 0.95: None})]


def compare_stdout(runs, *args):
    result = runner.invoke(app, ["compare", *map(str, runs), "--no-plots", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_registered_metric_appears_in_csv_json_markdown_and_rich(registered, runs):
    batch = 64  # the default train.batch_size that run_factory's examples use
    data = json.loads(compare_stdout(runs, "--format", "json"))
    assert data["columns"][-3:] == ["wall_seconds", "examples_to_0.90", "examples_to_0.95"]
    ce, mse = data["rows"]
    assert (ce["wall_seconds"], mse["wall_seconds"]) == (6.0, 4.0)  # steps * 0.01
    assert (ce["examples_to_0.90"], mse["examples_to_0.90"]) == (100 * batch, 200 * batch)
    assert ce["examples_to_0.95"] is None

    rows = list(csv.DictReader(io.StringIO(compare_stdout(runs, "--format", "csv"))))
    assert [r["wall_seconds"] for r in rows] == ["6.0", "4.0"]
    assert [r["examples_to_0.95"] for r in rows] == ["", ""]

    md = compare_stdout(runs, "--format", "markdown")
    accuracy, gradients = md.split("**gradients**")
    assert "| wall s |" in accuracy and "| 6.0 |" in accuracy
    assert "examples to 0.90" in gradients and "| 6400 | not reached |" in gradients

    table = compare_stdout(runs)
    assert "wall" in table and "examples to 0.90" in table

    sorted_rows = json.loads(compare_stdout(runs, "--sort", "wall_seconds", "--format", "json"))["rows"]
    assert [r["loss"] for r in sorted_rows] == ["mse", "ce"]


def test_unregistered_metric_is_gone(runs):
    data = json.loads(compare_stdout(runs, "--format", "json"))
    assert "wall_seconds" not in data["columns"]
    assert data["columns"][-1] == "diverged_at"


THRESHOLDS = (0.3, 0.5)


PAIRED_KEYS = ["final_val_acc", "best_val_acc", "val_acc_auc", "test_acc",
               *(f"steps_to_{t:.2f}" for t in THRESHOLDS), "test_ece", "test_nll"]


def compare(cli, *args: str):
    result = cli.invoke(app, ["compare", *args])
    assert result.exit_code == 0, result.stderr
    return result


# --- every interval, recomputed from the per-run files --------------------------------------------


def _independent_values(run: Path) -> dict[str, float | None]:
    """Each paired metric of one run, from its eval.csv and summary.json, without ce-lab's code."""
    evals = read_csv_rows(run / "eval.csv")
    xs = np.array([float(e["examples"]) for e in evals])
    acc = np.array([float(e["val_acc"]) for e in evals])
    final = json.loads((run / "summary.json").read_text())["final"]
    out: dict[str, float | None] = {
        "final_val_acc": float(acc[-1]), "best_val_acc": float(acc.max()),
        "val_acc_auc": float(np.trapezoid(acc, xs) / (xs[-1] - xs[0])),
        "test_acc": final["test_acc"],
    }
    # calibration: summary.json's numbers, which the test logits recompute by hand
    with np.load(run / "test_logits.npz") as npz:
        by_hand = numpy_calibration(npz["logits"], npz["labels"])
    for name in ("ece", "nll"):
        assert final[f"test_{name}"] == pytest.approx(by_hand[name], rel=1e-5, abs=1e-7)
        out[f"test_{name}"] = final[f"test_{name}"]
    for t in THRESHOLDS:
        hit = next((int(e["step"]) for e in evals if float(e["val_acc"]) >= t), None)
        out[f"steps_to_{t:.2f}"] = hit
    return out


def test_every_paired_interval_recomputed_from_run_files_with_scipy(cli, tiny_sets, tmp_path):
    out = tmp_path / "runs"
    sets = tiny_sets(f"log.thresholds=[{THRESHOLDS[0]}, {THRESHOLDS[1]}]")
    compare(cli, "--losses", "ce,mse", "--seeds", "0,1,2", "--max-steps", "30",
            "--no-plots", "--out-dir", str(out), *[a for s in sets for a in ("--set", s)])
    comp = next(out.glob("compare-*"))
    listed = json.loads((comp / "comparison.json").read_text())
    runs = {}
    for rel in listed["runs"]:
        s = json.loads((comp / rel / "summary.json").read_text())
        runs[(s["loss"], s["seed"])] = _independent_values(comp / rel)
    paired = {p["metric"]: p for p in listed["paired"]}
    assert list(paired) == PAIRED_KEYS and all(p["loss"] == "mse" for p in paired.values())
    csv_rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(
        (comp / "paired.csv").read_text()))}
    md = (comp / "table.md").read_text()

    checked = 0
    for key, p in paired.items():
        a = [runs[("mse", s)][key] for s in (0, 1, 2)]
        b = [runs[("ce", s)][key] for s in (0, 1, 2)]
        assert p["seeds"] == [0, 1, 2] and p["n"] == 3 and p["informative"] is True
        if None in a or None in b:  # a threshold not reached: a count, never a number
            assert p["lo"] is None and "not reached" in p["verdict"]
            continue
        diffs = [x - y for x, y in zip(a, b)]
        assert p["diffs"] == pytest.approx(diffs, rel=1e-12, abs=1e-15)
        sd = float(np.std(diffs, ddof=1))
        if sd == 0:  # scipy gives nan for a zero spread; the interval is the point
            assert p["lo"] == p["hi"] == pytest.approx(diffs[0])
        else:
            test = stats.ttest_rel(a, b)
            lo, hi = test.confidence_interval(0.95)
            assert (p["lo"], p["hi"]) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
            assert p["excludes_zero"] is bool(test.pvalue < 0.05)
            checked += 1
        assert p["mean"] == pytest.approx(float(np.mean(diffs)), rel=1e-12, abs=1e-15)
        # paired.csv writes the same floats by repr: equal to the digit.
        row = csv_rows[key]
        assert (float(row["lo"]), float(row["hi"]), float(row["mean"])) == (
            p["lo"], p["hi"], p["mean"])
        # table.md prints the rounded digits of the same numbers.
        fmt = "{:+.1f}" if key.startswith("steps_to_") else "{:+.4f}"
        assert f"[{fmt.format(p['lo'])}, {fmt.format(p['hi'])}]" in md
        if key.startswith("steps_to_"):
            assert p["resolution"] == 10 and row["resolution"] == "10.0"
    assert checked >= 3  # the accuracy metrics at least: real spreads, real intervals
    report = (comp / "report.md").read_text()
    assert "log.eval_every=10" in report  # the shared settings
    assert "Resolution of steps to a threshold: ±10 steps" in report
    assert "every log.eval_every = 10 steps and at each epoch end" in report


# --- verdicts ----------------------------------------------------------------------------------


def test_the_diverged_row_is_read_back_by_compare(tiny_config, monkeypatch, cli, tmp_path):
    from ce_lab.cli.app import app
    from ce_lab.runs.record import load_run

    poison_loss(monkeypatch, "ce", BAD_STEP, "logits")
    out = train(tiny_config(**{"loss.name": "ce"}))
    rec = load_run(out.run_dir)
    assert rec.metrics["step"] == [5.0, float(BAD_STEP)]
    assert math.isnan(rec.metrics["acc"][-1])  # an empty cell reads as NaN, as pandas reads it
    result = cli.invoke(app, ["compare", str(out.run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "diverged" in result.stdout


# --- an 80-column pipe ---------------------------------------------------------------------------


def _at_80(*args: str) -> list[str]:
    result = runner.invoke(app, ["compare", *args, "--no-plots"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    paths = [x for x in lines if x.startswith(("table", "report.md:", "report.html:", "paired.csv:"))]
    assert max(len(x) for x in lines if x not in paths) <= 80
    return lines


def _table_headers(lines: list[str], title: str) -> str:
    """The header rows of the table titled ``title``, joined."""
    start = next(i for i, x in enumerate(lines) if title in x)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("┡"))
    return " ".join(lines[start:end])


def test_an_80_column_pipe_drops_the_least_important_main_columns(three_losses):
    lines = _at_80(*map(str, three_losses.values()))
    header = _table_headers(lines, "accuracy and convergence")
    # steps to every threshold stay (the tool's question), the validation AUC too; the final and
    # best validation accuracy and test accuracy go first, and the note says so in one place
    assert all(f"to {t}" in header for t in ("0.90", "0.95", "0.97")) and "AUC" in header
    assert "best" not in header and "final" not in header
    assert ("(not shown at this width: final val acc, best val acc, test acc; see --format") \
        in lines
    # a wide terminal shows the table whole, with no note
    wide = runner.invoke(app, ["compare", *map(str, three_losses.values()), "--no-plots"],
                         env={"COLUMNS": "250"})
    assert "not shown at this width" not in wide.stdout and "best" in wide.stdout


def test_an_80_column_pipe_keeps_the_paired_verdict(seeded):
    lines = _at_80("--group", "g3", "--out-dir", str(seeded))
    paired = lines[next(i for i, x in enumerate(lines) if x.startswith("paired differences")):]
    verdicts = [x for x in paired if x.startswith("  verdict: ")]
    assert len(verdicts) == sum(x.startswith("  metric: ") for x in paired) > 0
    assert "  verdict: significant" in paired and "  p Holm: 0.030" in paired


def test_an_80_column_pipe_keeps_dl_dz_in_a_batch_gradient_table(tmp_path):
    out = tmp_path / "runs"
    for loss in ("ce", "mse"):
        for lr in (0.05, 0.5):
            for seed in (0, 1, 2):
                make_run(out, loss, seed, group="sweep", overrides={"optim.lr": lr},
                         grad_early=0.51 + 0.0123 * seed, grad_late=0.049 + 0.00117 * seed,
                         logit_start=0.9 + 0.0131 * seed, logit_end=0.1 + 0.00171 * seed)
    lines = _at_80("--group", "sweep", "--out-dir", str(out))
    header = _table_headers(lines, ": gradients")
    assert "dL/dz" in header and "optim.lr" in header
    note = next(x for x in lines if x.startswith("(not shown at this width: grad"))
    assert "dL/dz" not in note
