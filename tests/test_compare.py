"""ce-lab compare over runs on disk: table content, formats, paired statistics, plots, skipping."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest

from ce_lab.cli.app import app
from ce_lab.comparison.build import Agg
from ce_lab.comparison.paired import paired_interval
from ce_lab.losses import loss_names
from ce_lab.runs.record import RunFolderError, load_run, select_runs
from tests.helpers import runner
from tests.run_factory import make_run

T975_DF2 = 4.302653  # Student-t 0.975 quantile, 2 degrees of freedom (statistical tables)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return runner.invoke(app, ["compare", *args])


@pytest.fixture
def three_losses(tmp_path) -> dict[str, Path]:
    """One seed each: ce reaches 0.90 at 100 and 0.95 at 300; mse 0.90 at 400 only; hinge
    reaches 0.90 at 200, 0.95 at 500; none reaches 0.97."""
    out = tmp_path / "runs"
    return {
        "ce": make_run(out, "ce", reach={0.9: 100, 0.95: 300, 0.97: None}, final_val_acc=0.9612,
                       best_val_acc=0.9634, test_acc=0.9587, grad_early=0.8, grad_late=0.02),
        "mse": make_run(out, "mse", reach={0.9: 400, 0.95: None, 0.97: None},
                        final_val_acc=0.9301, test_acc=0.9276, grad_early=0.01, grad_late=0.003),
        "hinge": make_run(out, "hinge", reach={0.9: 200, 0.95: 500, 0.97: None},
                          final_val_acc=0.9555, test_acc=0.9501),
    }


def json_rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    return {row["label"]: row for row in data["rows"]}


# --- table content -----------------------------------------------------------------------------


def test_one_row_per_run_with_known_numbers(three_losses):
    result = invoke(*map(str, three_losses.values()), "--format", "json", "--no-plots")
    rows = json_rows(result)
    assert list(rows) == ["ce", "mse", "hinge"]
    ce, mse, hinge = rows["ce"], rows["mse"], rows["hinge"]
    assert ce["steps_to_0.90"] == 100 and ce["steps_to_0.95"] == 300
    assert ce["seconds_to_0.90"] == pytest.approx(1.0)
    assert mse["steps_to_0.90"] == 400
    assert mse["steps_to_0.95"] is None and mse["seconds_to_0.95"] is None
    assert hinge["steps_to_0.97"] is None
    assert (ce["final_val_acc"], ce["best_val_acc"], ce["test_acc"]) == (0.9612, 0.9634, 0.9587)
    assert ce["grad_early/fc1.weight"] == 0.8 and ce["grad_late/fc2.weight"] == 0.02
    assert ce["logit_grad_early"] == 0.9 and ce["diverged_at"] is None
    assert all(r["status"] == "completed" for r in rows.values())


def test_rich_table_shows_values_and_not_reached(three_losses):
    result = invoke(*map(str, three_losses.values()), "--no-plots")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    mse_line = next(line for line in out.splitlines() if line.startswith("│ mse "))
    assert "0.9301" in mse_line and "400" in mse_line and "not reached" in mse_line
    ce_line = next(line for line in out.splitlines() if line.startswith("│ ce "))
    assert "100" in ce_line and "300" in ce_line and "0.9612" in ce_line
    assert "not reached" not in ce_line.split("300")[0]  # 0.90 and 0.95 were reached
    # Paired against ce: mse needs 300 more steps to 0.90 (one seed: no interval).
    paired = next(line for line in out.splitlines() if line.startswith("│ mse ") and "0.90" in line)
    assert "+300.0" in paired and "n=1" in paired
    assert "report.md:" in out and "plot:" not in out


def test_config_columns_only_where_runs_differ(tmp_path):
    out = tmp_path / "runs"
    paths = [make_run(out, "ce", overrides={"optim.lr": 0.1}),
             make_run(out, "ce", overrides={"optim.lr": 0.5}),
             make_run(out, "mse", overrides={"optim.lr": 0.5})]
    data = json.loads(invoke(*map(str, paths), "--format", "json", "--no-plots").stdout)
    assert "optim.lr" in data["columns"]
    assert not any(c.startswith(("optim.momentum", "model.", "out_dir", "seed"))
                   for c in data["columns"])
    assert [r["optim.lr"] for r in data["rows"]] == [0.1, 0.5, 0.5]
    assert [r["label"] for r in data["rows"]] == ["ce optim.lr=0.1", "ce optim.lr=0.5",
                                                  "mse optim.lr=0.5"]


def test_seeds_aggregate_by_loss_and_lr(tmp_path):
    """Several seeds: one row per (loss, differing key) with mean, sample std and n."""
    out = tmp_path / "runs"
    paths = []
    for lr, steps in ((0.1, [100, 200, 150]), (0.5, [50, 50, 80])):
        for seed, s in enumerate(steps):
            paths.append(make_run(out, "ce", seed, reach={0.9: s, 0.95: None},
                                  overrides={"optim.lr": lr}))
    data = json.loads(invoke(*map(str, paths), "--format", "json", "--no-plots").stdout)
    assert data["aggregated"] and data["group_by"] == ["loss", "optim.lr"]
    assert "seed" not in data["columns"]
    rows = {r["label"]: r for r in data["rows"]}
    cell = rows["ce optim.lr=0.1"]["steps_to_0.90"]
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(150)
    assert cell["std"] == pytest.approx(statistics.stdev([100, 200, 150]))
    assert rows["ce optim.lr=0.5"]["n"] == 3
    assert rows["ce optim.lr=0.5"]["steps_to_0.95"]["n"] == 0  # never reached: no mean
    assert rows["ce optim.lr=0.5"]["steps_to_0.95"]["mean"] is None


# --- paired differences over seeds --------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path) -> Path:
    """Three seeds, paired. Steps to 0.90: ce 100/150/100, mse 400/450/500 (diffs 300/300/400),
    nll-manual 150/100/150 (diffs 50/-50/50), hinge 150/100/150 with seed 2 diverged at step 580.
    mse reaches 0.95 in seed 0 only; ce in all seeds."""
    out = tmp_path / "runs"
    ce = [100, 150, 100]
    mse = [400, 450, 500]
    hinge = [150, 100, 150]
    for seed in range(3):
        make_run(out, "ce", seed, reach={0.9: ce[seed], 0.95: 300}, group="g3")
        make_run(out, "mse", seed, reach={0.9: mse[seed], 0.95: 550 if seed == 0 else None},
                 group="g3")
        make_run(out, "nll-manual", seed, reach={0.9: hinge[seed], 0.95: 300}, group="g3")
        make_run(out, "hinge", seed, reach={0.9: hinge[seed], 0.95: 300}, group="g3",
                 diverged_at=580 if seed == 2 else None,
                 status="diverged" if seed == 2 else "completed")
    return out


def independent_interval(diffs):
    n = len(diffs)
    half = T975_DF2 * statistics.stdev(diffs) / math.sqrt(n)
    return statistics.mean(diffs) - half, statistics.mean(diffs) + half


def test_paired_difference_interval_matches_t_reference(seeded):
    data = json.loads(invoke("--group", "g3", "--out-dir", str(seeded), "--format", "json",
                             "--no-plots").stdout)
    assert data["reference"] == "ce"
    paired = {(p["loss"], p["threshold"]): p for p in data["paired"]}
    mse = paired[("mse", 0.9)]
    lo, hi = independent_interval([300, 300, 400])
    assert mse["n"] == 3 and mse["seeds"] == [0, 1, 2] and mse["diffs"] == [300, 300, 400]
    assert mse["mean"] == pytest.approx(1000 / 3)
    assert (mse["lo"], mse["hi"]) == (pytest.approx(lo, abs=1e-3), pytest.approx(hi, abs=1e-3))
    assert mse["significant"] is True and mse["verdict"] == "significant"

    nll = paired[("nll-manual", 0.9)]
    lo, hi = independent_interval([50, -50, 50])
    assert (nll["lo"], nll["hi"]) == (pytest.approx(lo, abs=1e-3), pytest.approx(hi, abs=1e-3))
    assert nll["lo"] < 0 < nll["hi"] and nll["verdict"] == "not significant"
    assert nll["resolution"] == 50 and nll["resolution_limited"] is False

    # A diverged member is left out of every paired difference, and the verdict says so.
    for key in ("steps_to_0.90", "final_val_acc", "test_acc", "val_acc_auc"):
        hinge = next(p for p in data["paired"] if p["loss"] == "hinge" and p["metric"] == key)
        assert hinge["diffs"][2] is None and hinge["lo"] is None
        assert hinge["verdict"] == "hinge diverged at step 580 (loss) in 1/3 seeds"
        assert hinge["missing"] == {"loss": {"2": "diverged at step 580 (loss)"}, "reference": {}}

    # mse misses 0.95 in two seeds: a count, never a number.
    missed = paired[("mse", 0.95)]
    assert missed["mean"] is None and missed["lo"] is None and missed["hi"] is None
    assert missed["verdict"] == "mse not reached in 2/3 seeds"
    assert missed["not_reached"] == {"loss": 2, "reference": 0}


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


def test_stats_against_independent_computation():
    diffs = [12.0, 7.5, 20.0, 3.25]
    iv = paired_interval(diffs)
    from scipy.stats import t  # the reference: scipy's own interval

    lo, hi = t.interval(0.95, len(diffs) - 1, loc=statistics.mean(diffs),
                        scale=statistics.stdev(diffs) / math.sqrt(len(diffs)))
    assert (iv.lo, iv.hi) == (pytest.approx(lo), pytest.approx(hi))
    one = paired_interval([5.0])
    assert one.lo is None and one.significant is None
    agg = Agg((1.0, None, 4.0, 2.5))
    assert (agg.n, agg.of) == (3, 4)
    assert agg.std == pytest.approx(statistics.stdev([1.0, 4.0, 2.5]))


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


def test_load_run_reasons(tmp_path):
    run = make_run(tmp_path, "ce")
    record = load_run(run)
    assert record.loss == "ce" and record.seed == 0
    assert record.metrics["step"][:2] == [10.0, 20.0]
    diverged = load_run(make_run(tmp_path, "nll-manual", diverged_at=300, status="diverged"))
    assert math.isnan(diverged.metrics["loss"][-1])
    assert math.isinf(diverged.metrics["grad_norm/fc1.weight"][-1])
    (run / "metrics.csv").write_text("step,epoch\n1,1\n")
    with pytest.raises(RunFolderError, match="lacks column"):
        load_run(run)


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
