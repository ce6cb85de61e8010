"""ce-lab train: paired initialisation, determinism, fused = alone, divergence, resume, run folders."""

from __future__ import annotations

import csv
import json
import math
import statistics

import numpy as np
import pytest
import torch

from ce_lab.config import load_config, with_overrides
from ce_lab.losses import LOSSES, LossSpec
from ce_lab.nn.mlp import build_model
from ce_lab.runs.folder import create_run_dir
from ce_lab.training import fusable, metric_header, resume, train, train_paired
from tests import conftest
from tests.helpers import InterruptAt, assert_close_rows, rows, without_wall
from tests.mnist_fixture import TINY_VAL_SIZE

# --- model -------------------------------------------------------------------------------------

def test_initial_weights_depend_on_seed_only():
    a = build_model(3, [16], "relu", "default", seed=5)
    b = build_model(1, [16], "relu", "default", seed=5)
    c = build_model(1, [16], "relu", "default", seed=6)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        for m in range(3):  # every member starts from the same weights
            assert torch.equal(pa[m], pb[0]), name
        assert not torch.equal(pb, pc)
    bound = 1 / math.sqrt(784)  # nn.Linear's default init range for the first layer
    assert a.fc1.weight.abs().max() <= bound


def test_stacked_forward_equals_separate_linear_layers():
    model = build_model(2, [8], "tanh", "xavier", seed=0)
    with torch.no_grad():
        model.fc1.weight[1].mul_(2)  # make the members differ
    x = torch.randn(5, 784)
    out = model(x)
    for m in range(2):
        h = torch.tanh(x @ model.fc1.weight[m].T + model.fc1.bias[m])
        ref = h @ model.fc2.weight[m].T + model.fc2.bias[m]
        assert torch.allclose(out[m], ref, atol=1e-5)


# --- run folder ----------------------------------------------------------------------------------

def test_run_folder_contents_and_formats(cfg, data):
    outcome = train(cfg, data=data)
    assert outcome.status == "completed" and outcome.exit_code == 0
    d = outcome.run_dir
    assert d.parent == cfg.out_dir and d.name.split("-")[2] == "ce"
    assert {p.name for p in d.iterdir()} >= {"config.yaml", "meta.json", "metrics.csv",
                                            "eval.csv", "summary.json", "checkpoint.pt"}
    assert load_config(d / "config.yaml") == cfg  # --config on it reproduces the run
    meta = json.loads((d / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["ended"] and meta["device"] == conftest.TEST_DEVICE
    assert meta["versions"]["torch"] == torch.__version__
    header = next(csv.reader(open(d / "metrics.csv")))
    assert header == metric_header(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], True,
                                   False)
    metrics = rows(d / "metrics.csv")
    steps_per_epoch = math.ceil((1200 - TINY_VAL_SIZE) / 64)
    assert [int(r["step"]) for r in metrics] == list(range(5, 2 * steps_per_epoch + 1, 5))
    assert all(float(r["grad_norm/total"]) > 0 for r in metrics)
    # the total is the L2 norm of the per-tensor norms
    r = metrics[0]
    parts = [float(r[f"grad_norm/{n}"]) for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    assert math.isclose(float(r["grad_norm/total"]), math.sqrt(sum(p * p for p in parts)), rel_tol=1e-6)
    evals = rows(d / "eval.csv")
    eval_steps = [int(e["step"]) for e in evals]
    assert eval_steps == sorted(set(eval_steps)) and steps_per_epoch in eval_steps
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2 * steps_per_epoch
    assert summary["epochs_completed"] == 2
    assert summary["final"]["val_acc"] == float(evals[-1]["val_acc"])
    assert 0 <= summary["final"]["test_acc"] <= 1
    hit = summary["convergence"]["0.90"]
    first = next(e for e in evals if float(e["val_acc"]) >= 0.90)
    assert hit == {"step": int(first["step"]), "examples": int(first["examples"]),
                   "seconds": float(first["wall_s"])}
    gs = summary["grad_summary"]
    assert set(gs["early"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "total"}
    # Early/late: the first and the last tenth of the logged rows (rounded up), not epochs.
    k = math.ceil(len(metrics) / 10)
    assert 1 <= k < len(metrics) / 2
    for window, part in (("early", metrics[:k]), ("late", metrics[-k:])):
        assert gs[f"{window}_steps"] == [int(part[0]["step"]), int(part[-1]["step"])]
        assert math.isclose(gs[window]["fc1.weight"],
                            statistics.fmean(float(x["grad_norm/fc1.weight"]) for x in part))
        assert math.isclose(gs[f"logit_grad_norm_{window}"],
                            statistics.fmean(float(x["logit_grad_norm"]) for x in part))
    # AUC: trapezoid over (examples, val_acc) by numpy, divided by the examples spanned.
    xs = np.array([float(e["examples"]) for e in evals])
    ys = np.array([float(e["val_acc"]) for e in evals])
    assert math.isclose(summary["val_acc_auc"], np.trapezoid(ys, xs) / (xs[-1] - xs[0]))
    ckpt = torch.load(d / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == summary["steps"] and ckpt["model"]["fc1.weight"].shape == (1, 32, 784)


def test_sigmoid_losses_log_saturation_and_others_do_not(cfg, data):
    mse = train(with_overrides(cfg, {"loss.name": "mse"}), data=data)
    header = next(csv.reader(open(mse.run_dir / "metrics.csv")))
    assert header[-3:] == ["saturated_frac", "saturated_wrong_frac", "saturated_right_frac"]
    for r in rows(mse.run_dir / "metrics.csv"):
        total, wrong, right = (float(r[c]) for c in header[-3:])
        assert 0 <= total <= 1 and wrong + right == pytest.approx(total, abs=1e-6)
    off = train(with_overrides(cfg, {"log.grad_stats": False}), data=data)
    assert next(csv.reader(open(off.run_dir / "metrics.csv"))) == [
        "step", "epoch", "examples", "wall_s", "lr", "loss", "acc"]
    assert json.loads((off.run_dir / "summary.json").read_text())["grad_summary"] is None


def test_run_folders_are_never_shared(tmp_path):
    made = {create_run_dir(tmp_path, "ce") for _ in range(50)}  # all within the same second
    assert len(made) == 50


# --- determinism, fusion ---------------------------------------------------------------------------

def test_same_config_and_seed_give_identical_metric_files(cfg, data):
    a = train(cfg, data=data).run_dir
    b = train(cfg, data=data).run_dir
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall(rows(a / name)) == without_wall(rows(b / name))


def test_fused_members_match_training_alone(cfg, data):
    losses = ["ce", "mse", "hinge"]
    cfgs = [with_overrides(cfg, {"loss.name": n}) for n in losses]
    assert fusable(cfgs)
    fused = train_paired(cfgs, group="g1", data=data)
    for name, out in zip(losses, fused):
        meta = json.loads((out.run_dir / "meta.json").read_text())
        assert meta["group"] == "g1" and len(meta["fused_with"]) == 2
        alone = train(with_overrides(cfg, {"loss.name": name}), data=data)
        for f in ("metrics.csv", "eval.csv"):
            assert_close_rows(rows(out.run_dir / f), rows(alone.run_dir / f))


# --- divergence ------------------------------------------------------------------------------------

def test_divergence_is_recorded_and_other_members_go_on(cfg, data):
    cfg = with_overrides(cfg, {"optim.lr": 200.0, "log.log_every": 1})
    cfgs = [with_overrides(cfg, {"loss.name": n}) for n in ("hinge", "nll-manual")]
    hinge, nll = train_paired(cfgs, data=data)
    assert nll.status == "diverged" and nll.exit_code == 3
    s = json.loads((nll.run_dir / "summary.json").read_text())
    metrics = rows(nll.run_dir / "metrics.csv")
    assert s["diverged_at"] == int(metrics[-1]["step"])  # rows stop at the divergence step
    assert s["diverged_quantity"] in {"loss", "logit_grad_norm"} | {f"grad_norm/{n}" for n in
                                                 ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
    last = metrics[-1]
    assert not all(math.isfinite(float(v)) for k, v in last.items() if k != "wall_s")
    assert json.loads((nll.run_dir / "meta.json").read_text())["status"] == "diverged"
    # hinge, trained in the same stack, is untouched by its neighbour's NaNs
    assert hinge.status == "completed"
    alone = train(cfgs[0], data=data)
    assert_close_rows(rows(hinge.run_dir / "metrics.csv"), rows(alone.run_dir / "metrics.csv"))


def test_failure_writes_error_log(cfg, data, monkeypatch):
    def boom(logits, targets, cfg):
        raise RuntimeError("loss exploded on purpose")

    monkeypatch.setitem(LOSSES, "boom", LossSpec("boom", boom, "raises"))
    out = train(with_overrides(cfg, {"loss.name": "boom"}), data=data)
    assert out.status == "failed" and out.exit_code == 1
    assert "loss exploded on purpose" in (out.run_dir / "error.log").read_text()
    assert json.loads((out.run_dir / "summary.json").read_text())["status"] == "failed"


# --- interrupt and resume --------------------------------------------------------------------------

def test_resumed_run_ends_with_the_same_metrics_as_an_uninterrupted_one(cfg, data):
    cfg = with_overrides(cfg, {"train.epochs": 3, "optim.momentum": 0.9})
    full = train(cfg, data=data)
    cut = train(cfg, data=data, reporter=InterruptAt(25))  # mid-epoch 2 (16 steps an epoch)
    assert cut.status == "interrupted" and cut.exit_code == 130
    assert json.loads((cut.run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert int(rows(cut.run_dir / "metrics.csv")[-1]["step"]) == 25
    done = resume(cut.run_dir, data=data)
    assert done.status == "completed"
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall(rows(done.run_dir / name)) == without_wall(rows(full.run_dir / name))
    a = json.loads((done.run_dir / "summary.json").read_text())
    b = json.loads((full.run_dir / "summary.json").read_text())
    assert a["final"] == b["final"] and a["convergence"].keys() == b["convergence"].keys()
    assert json.loads((done.run_dir / "meta.json").read_text())["resumed"][0]["at_step"] == 25
