"""The Python API (ce_lab/api.py) on the tiny MNIST: plain values and DataFrames that equal the
files on disk, the CLI's validation as exceptions, silence unless asked, and a light import."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import ce_lab
from ce_lab.losses import get_loss
from tests.mnist_fixture import TINY_VAL_SIZE
from tests.run_factory import make_run

pd = pytest.importorskip("pandas")


@pytest.fixture
def small(tiny_mnist):
    return {"data.root": str(tiny_mnist), "data.verify_md5": False, "data.val_size": TINY_VAL_SIZE,
            "model.hidden": [32], "device": "cpu", "log.log_every": 5, "log.eval_every": 10}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_import_is_light_and_torch_free():
    code = ("import sys, ce_lab; assert callable(ce_lab.train) and callable(ce_lab.compare); "
            "ce_lab.ConfigError; ce_lab.load_runs; "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_api_functions_have_real_signatures_and_docstrings():
    """No package shadows an API function: ``ce_lab.train``/``compare`` are the functions, with
    their own parameters and docstrings, also after the training and comparison packages load."""
    import inspect

    import ce_lab.comparison.compare  # noqa: F401  (loading the packages must not shadow them)
    import ce_lab.training.run  # noqa: F401

    assert inspect.isfunction(ce_lab.train) and inspect.isfunction(ce_lab.compare)
    params = inspect.signature(ce_lab.compare).parameters
    assert {"losses", "seeds", "epochs", "overrides"} <= set(params)
    assert params["losses"].default == ("ce", "mse", "hinge", "nll-manual")
    assert "loss" in inspect.signature(ce_lab.train).parameters
    assert ce_lab.train.__doc__ and "Train one run" in ce_lab.train.__doc__


def test_train_returns_a_run_whose_frames_equal_its_files_and_prints_nothing(small, capfd):
    run = ce_lab.train("mse", epochs=1, lr=0.5, overrides=small, out_dir="runs", seed=3)
    assert capfd.readouterr() == ("", "")  # no terminal: no progress, nothing else either
    assert run.status == "completed" and run.loss == "mse" and run.seed == 3
    assert run.dir.parent.name == "runs" and run.id == run.dir.name
    assert run.config["optim"]["lr"] == 0.5 and run.config["model"]["hidden"] == [32]
    assert run.summary["steps"] == 16 and run.meta["run_id"] == run.id
    metrics, rows = run.metrics(), _csv(run.dir / "metrics.csv")
    assert list(metrics.columns) == list(rows[0]) and len(metrics) == len(rows)
    assert metrics["step"].dtype == "int64" and metrics["step"].tolist() == [5, 10, 15]
    for col in ("loss", "grad_norm/total", "lr"):
        assert metrics[col].tolist() == [float(r[col]) for r in rows]  # exact: repr round-trip
    evals = run.evals()
    assert evals["val_acc"].iloc[-1] == run.summary["final"]["val_acc"]
    assert ce_lab.load_run(run.dir).summary == run.summary


def test_keyword_arguments_beat_overrides_which_beat_the_config_file(small, tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("optim:\n  lr: 0.3\n  momentum: 0.5\ntrain:\n  epochs: 2\n")
    run = ce_lab.train("ce", config=cfg_file, overrides={**small, "optim.momentum": 0.9},
                       epochs=1, max_steps=4)
    assert run.config["optim"] == run.config["optim"] | {"lr": 0.3, "momentum": 0.9}
    assert run.config["train"]["epochs"] == 1 and run.summary["steps"] == 4


def test_errors_are_the_clis_one_liners_before_anything_is_written(small, tmp_path):
    with pytest.raises(ce_lab.ConfigError, match=r"unknown key 'optim\.lrr'; did you mean 'optim\.lr'"):
        ce_lab.train("ce", overrides={"optim.lrr": 1})
    with pytest.raises(ce_lab.ConfigError, match="unknown loss 'nope'"):
        ce_lab.train("nope", overrides=small)
    with pytest.raises(ce_lab.ConfigError, match="optim.lr"):
        ce_lab.train("ce", lr=-1.0, overrides=small)
    with pytest.raises(ce_lab.UsageError, match="unknown loss 'msee' — did you mean 'mse'"):
        ce_lab.compare(["ce", "msee"], overrides=small)
    with pytest.raises(ce_lab.ParamError, match=r"^reference hinge is not among losses \(ce, mse\)$"):
        ce_lab.compare(["ce", "mse"], reference="hinge", overrides=small)
    with pytest.raises(ce_lab.UsageError, match="progress must be"):
        ce_lab.train("ce", overrides=small, progress="loud")
    assert not (tmp_path / "runs").exists()
    assert issubclass(ce_lab.ConfigError, ce_lab.CeLabError)


@pytest.mark.parametrize("kwargs, message", [
    ({"losses": ["ce", "ce"]}, r"^losses names a loss twice: ce, ce$"),
    ({"seeds": "12"}, r"^seeds must be a list of non-negative integers, got '12'$"),
    ({"seeds": [0, -1]}, r"^seeds expects non-negative integers, got \[0, -1\]$"),
    ({"seeds": [True]}, r"^seeds expects non-negative integers"),
    ({"losses": [1, 2]}, r"^losses must be loss names \(strings\), got \[1, 2\]$"),
    ({"loss_overrides": ["mse"]}, r"^loss_overrides must map a loss to"),
    ({"loss_overrides": {"hinge": {"optim.lr": 1}}}, r"^loss_overrides names 'hinge', which is not"),
    ({"max_members": 0}, r"^max_members must be a positive integer, got 0$"),
    ({"lr_grid": [0.1]}, r"^lr_grid only apply with tune_lr$"),
    ({"tune_lr": True, "lr_grid": "0.1,1"}, r"^lr_grid must be a list of learning rates, got '0.1,1'$"),
    ({"tune_lr": True, "lr_grid": [0.1, -1]}, r"^lr_grid expects positive learning rates"),
    ({"tune_lr": True, "select": "best"}, r"^select must be one of auc, final-val-acc, got 'best'$"),
    ({"tune_lr": True, "seeds": [0], "tune_seeds": [0]},
     r"^tune_seeds and seeds share seed\(s\) 0: rates chosen on a seed would be evaluated on it$"),
    ({"tune_lr": True, "lr": 0.5}, r"^tune_lr chooses each loss's rate from lr_grid"),
    ({"tune_lr": True, "loss_overrides": {"mse": {"optim.lr": 1}}},
     r"^loss_overrides mse:optim.lr conflicts with tune_lr"),
    ({"sort": "nope"}, r"^unknown sort column 'nope'"),
])
def test_compare_names_the_parameter_and_writes_nothing(small, tmp_path, kwargs, message):
    """Typed values are checked, never split as text ("12" is not seeds 1 and 2); the message
    names the parameter, where the CLI's names the flag (tests/test_cli_*)."""
    kwargs = {"losses": ["ce", "mse"], **kwargs}
    with pytest.raises(ce_lab.ParamError, match=message):
        ce_lab.compare(overrides=small, **kwargs)
    assert not (tmp_path / "runs").exists()


def test_api_errors_for_wrong_types_name_the_parameter(tmp_path):
    with pytest.raises(ce_lab.ParamError, match=r"^run_dir must be a folder \(str or Path\), got 5$"):
        ce_lab.resume(5)
    with pytest.raises(ce_lab.ParamError, match=r"^loss must be a loss name, got \['ce'\]$"):
        ce_lab.train(["ce"])
    with pytest.raises(ce_lab.ParamError, match=r"^best_of optim.lr: the runs did not sweep it"):
        ce_lab.compare_runs([make_run(tmp_path, "ce", 0), make_run(tmp_path, "mse", 0)],
                            best_of="optim.lr", plots=False)


def test_a_diverged_run_is_a_result_and_progress_goes_to_stderr_when_asked(small, capfd):
    run = ce_lab.train("nll-manual", lr=200.0, epochs=1, overrides={**small, "log.log_every": 1},
                       progress="plain")
    out, err = capfd.readouterr()
    assert run.status == "diverged" and run.summary["diverged_at"] is not None
    assert out == "" and "training nll-manual" in err


def test_compare_trains_fused_and_gives_table_and_paired_frames(small, capfd):
    cmp = ce_lab.compare(["ce", "mse"], seeds=[0, 1], epochs=1, overrides=small, plots=False,
                         loss_overrides={"mse": {"optim.lr": 0.5}})
    assert capfd.readouterr() == ("", "")
    assert cmp.reference == "ce" and len(cmp.runs) == 4 and cmp.dir.name == cmp.group
    assert {r.meta["group"] for r in cmp.runs} == {cmp.group}
    assert {(r.loss, r.config["optim"]["lr"]) for r in cmp.runs} == {("ce", 0.1), ("mse", 0.5)}
    table = cmp.table()
    on_disk = _csv(cmp.dir / "table.csv")
    assert list(table.columns) == list(on_disk[0]) and table["loss"].tolist() == ["ce", "mse"]
    assert table["n"].tolist() == [2, 2]
    for got, row in zip(table["final_val_acc_mean"], on_disk):
        assert got == float(row["final_val_acc_mean"])
    accs = [r.summary["final"]["val_acc"] for r in cmp.runs if r.loss == "ce"]
    assert math.isclose(table["final_val_acc_mean"].iloc[0], sum(accs) / 2, rel_tol=1e-12)
    paired = cmp.paired()
    on_disk = _csv(cmp.dir / "paired.csv")
    assert set(paired["loss"]) == {"mse optim.lr=0.5"}  # the row label, as paired.csv
    assert paired["metric"].tolist() == [r["metric"] for r in on_disk]
    assert "steps_to_0.90" in paired["metric"].tolist()
    for got, row in zip(paired["mean"], on_disk):
        assert (pd.isna(got) and row["mean"] == "") or got == float(row["mean"])
    again = ce_lab.compare_runs(cmp.runs, plots=False)
    assert again.dir != cmp.dir and again.table()["final_val_acc_mean"].tolist() == \
        table["final_val_acc_mean"].tolist()


def test_load_runs_flattens_configs_and_summaries_and_skips_bad_folders(tmp_path):
    out = tmp_path / "runs"
    a = make_run(out, "ce", 0, started="2026-11-20T10:00:00+00:00", test_acc=0.91)
    b = make_run(out, "mse", 1, started="2026-11-21T10:00:00+00:00", group="g",
                 overrides={"optim.lr": 0.5, "model.hidden": [64, 32]},
                 reach={0.9: 200, 0.95: None, 0.97: None})
    bad = make_run(out, "hinge", started="2026-11-22T10:00:00+00:00")
    (bad / "config.yaml").write_text("[unclosed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = ce_lab.load_runs(out)
    assert len(caught) == 1 and bad.name in str(caught[0].message)
    shutil.rmtree(bad)
    assert runs["run"].tolist() == [b.name, a.name]  # newest first
    row = runs.set_index("run").loc[b.name]
    assert row["optim.lr"] == 0.5 and row["model.hidden"] == (64, 32) and row["group"] == "g"
    assert row["steps_to_0.90"] == 200 and pd.isna(row["steps_to_0.95"])
    assert runs.set_index("run").loc[a.name, "test_acc"] == 0.91
    assert runs.groupby("loss")["final_val_acc"].count().to_dict() == {"ce": 1, "mse": 1}
    assert ce_lab.load_runs(out, loss="ce")["run"].tolist() == [a.name]
    assert ce_lab.load_runs(out, group="g", status="completed")["run"].tolist() == [b.name]
    assert ce_lab.load_runs(out, where={"optim.lr": "5e-1"})["run"].tolist() == [b.name]
    assert ce_lab.load_runs(out, where={"model.hidden": [256], "optim.lr": 0.1})["run"].tolist() == [
        a.name]
    with pytest.raises(ce_lab.ParamError, match="did you mean 'optim.lr'"):
        ce_lab.load_runs(out, where={"lr": 0.5})

    curves = ce_lab.load_metrics(runs)
    per_run = curves.groupby("run").size().to_dict()
    assert per_run == {a.name: 60, b.name: 60} and curves.columns[0] == "run"
    first = _csv(a / "metrics.csv")[0]
    got = curves[curves["run"] == a.name].iloc[0]
    assert got["loss"] == float(first["loss"]) and got["step"] == int(first["step"])
    evals = ce_lab.load_metrics([a, ce_lab.load_run(b)], kind="evals")
    assert set(evals.columns) >= {"run", "step", "val_acc"} and len(evals) == 24


def test_without_pandas_the_error_names_the_extra(monkeypatch, tmp_path):
    make_run(tmp_path / "runs", "ce")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ce_lab.MissingDependency, match=r'pip install "ce-lab\[pandas\]"'):
        ce_lab.load_runs(tmp_path / "runs")


def test_api_loss_typos_raise_the_guess():
    with pytest.raises(ce_lab.ConfigError, match="unknown loss 'msee' — did you mean 'mse'"):
        ce_lab.train("msee")
    with pytest.raises(ce_lab.UsageError, match="unknown loss 'MSE' — did you mean 'mse'"):
        ce_lab.compare(["ce", "MSE"])
    with pytest.raises(ce_lab.UsageError, match="did you mean 'hinge'"):
        get_loss("hinge ")
    assert not Path("runs").exists()


# --- MNIST fetched into a folder the user named ----------------------------------------------------


def test_api_warns_before_fetching_into_a_named_data_root(tmp_path, offline_source):
    named = tmp_path / "my-small-set"
    small = {"data.root": str(named), "data.verify_md5": False, "data.val_size": 200,
             "model.hidden": [8], "device": "cpu"}
    with pytest.warns(UserWarning, match=f"data.root {named} holds no usable MNIST") as said:
        run = ce_lab.train("ce", max_steps=2, overrides=small)
    assert run.status == "completed"
    assert [w.filename for w in said] == [__file__]  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the data is there now: no warning
        ce_lab.train("ce", max_steps=2, overrides=small)
