"""Reliability, round 3 (issue 20), without the CLI: an entry's run folder known before training
(§8), the API's argument checks (§11), and the keys errors name (§12)."""

from __future__ import annotations

import json
import socket

import pytest

import ce_lab
from ce_lab.batches.execute import reported_runs
from ce_lab.batches.plan import describe_plan, open_batch
from ce_lab.batches.spec import load_batch
from ce_lab.batches.store import read_state, run_path, write_state
from ce_lab.batches.worker import runs_recorder
from ce_lab.config import RunConfig, with_overrides
from ce_lab.errors import CeLabError, ConfigError, ParamError, UsageError
from ce_lab.training.stack import check_memory, estimate_memory
from tests.helpers import TWO_BY_TWO, FakeExecutor, dead_pid, run_fake, set_meta, write_batch
from tests.run_factory import make_run

# --- §8: a worker's run folders, known before it trains ------------------------------------------


def test_a_worker_writes_each_entrys_run_folder_as_it_is_made(tmp_path):
    cfgs = [RunConfig(seed=0), RunConfig(seed=1)]
    task = {"entries": [4, 7], "runs_file": str(tmp_path / "t000.runs.json")}
    on_open = runs_recorder(task, cfgs)
    on_open([(cfgs[1], tmp_path / "b"), (cfgs[0], tmp_path / "a")])  # the stack's own order
    assert reported_runs(tmp_path / "t000.runs.json") == {4: str(tmp_path / "a"),
                                                          7: str(tmp_path / "b")}
    assert runs_recorder({"entries": [0]}, cfgs[:1]) is None  # no file asked for: nothing
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1, "2": 3}))
    assert reported_runs(tmp_path / "bad.json") == {}
    assert reported_runs(tmp_path / "missing.json") == {}


def test_a_failed_entry_whose_worker_was_killed_is_resumed_not_trained_again(tmp_path):
    """The run folder of an entry whose worker died reads as crashed: with a checkpoint it is
    resumed; a run that failed by itself is trained again (in a new folder)."""
    runs = tmp_path / "runs"
    f = write_batch(tmp_path / "b.yaml", TWO_BY_TWO)
    batch = load_batch(f, out_dir=runs)
    opened = open_batch(batch, None)
    run_fake(opened, FakeExecutor(runs, capacity=1))
    state = read_state(opened.batch_dir)
    for n, rec in enumerate(state.entries[:3]):
        path = run_path(opened.batch_dir, rec.run_dir)
        (path / "summary.json").unlink()
        if n < 2:  # killed: meta.json still says running, its pid is gone
            set_meta(path, status="running", pid=dead_pid(), host=socket.gethostname())
        else:  # failed by itself
            set_meta(path, status="failed")
        if n != 1:
            (path / "checkpoint.pt").write_bytes(b"fake")
        rec.status, rec.error = "failed", "worker crashed (exit -9)"
    state.entries[1].run_dir = None  # never heard of: found again by its group and config
    write_state(opened.batch_dir, state)
    reopened = open_batch(batch, opened.batch_dir)
    assert [a for _, a in describe_plan(reopened)] == ["resume", "rerun", "rerun", "skip"]
    assert reopened.state.entries[1].run_dir is not None


# --- §11: the API's arguments --------------------------------------------------------------------


@pytest.fixture
def two_runs(tmp_path):
    out = tmp_path / "runs"
    return [make_run(out, "ce"), make_run(out, "mse")]


def _bad_calls(tmp_path, runs):
    """(call, the parameter its message must name, the text that names it otherwise): every
    public function with a value of the wrong type or range for each parameter."""
    out = str(tmp_path / "out")
    nowhere = str(tmp_path / "no-data")
    b = write_batch(tmp_path / "b.yaml", {"name": "p", "seeds": [0]})
    t, c, r, bt = ce_lab.train, ce_lab.compare, ce_lab.compare_runs, ce_lab.batch
    kw = {"out_dir": out, "data_dir": nowhere}
    return [
        (lambda: t(5, **kw), "loss", None),
        (lambda: t("ce", overrides={1: 2}, **kw), "overrides", None),
        (lambda: t("ce", overrides=["train.epochs"], **kw), "overrides", None),
        (lambda: t("ce", config={"train": {"epochs": 1}}, **kw), "config", None),
        (lambda: t("ce", config=5, **kw), "config", None),
        (lambda: t("ce", progress=5, **kw), "progress", None),
        (lambda: t("ce", threads="2", **kw), "threads", None),
        (lambda: t("ce", threads=0, **kw), "threads", None),
        (lambda: t("ce", out_dir=5, data_dir=nowhere), "out_dir", None),
        (lambda: t("ce", data_dir=5, out_dir=out), "data_dir", None),
        (lambda: t("ce", epochs="x", **kw), "epochs", "train.epochs"),
        (lambda: t("ce", lr="x", **kw), "lr", "optim.lr"),
        (lambda: t("ce", optimizer=5, **kw), "optimizer", "optim.name"),
        (lambda: t("ce", batch_size=[1], **kw), "batch_size", "train.batch_size"),
        (lambda: t("ce", seed="x", **kw), "seed", "seed"),
        (lambda: t("ce", device=5, **kw), "device", "device"),
        (lambda: ce_lab.resume(5), "run_dir", None),
        (lambda: ce_lab.resume(None), "run_dir", None),
        (lambda: ce_lab.resume(runs[0], progress=5), "progress", None),
        (lambda: ce_lab.resume_comparison(5), "comp_dir", None),
        (lambda: c([1, 2], **kw), "losses", None),
        (lambda: c(5, **kw), "losses", None),
        (lambda: c(["ce"], seeds="0", **kw), "seeds", None),
        (lambda: c(["ce"], seeds=[-1], **kw), "seeds", None),
        (lambda: c(["ce"], overrides={1: 2}, **kw), "overrides", None),
        (lambda: c(["ce"], overrides="train.epochs=1", **kw), "overrides", None),
        (lambda: c(["ce", "mse"], loss_overrides=["mse"], **kw), "loss_overrides", None),
        (lambda: c(["ce", "mse"], loss_overrides={"mse": 5}, **kw), "loss_overrides", None),
        (lambda: c(["ce"], config={}, **kw), "config", None),
        (lambda: c(["ce"], reference=5, **kw), "reference", None),
        (lambda: c(["ce"], sort=5, **kw), "sort", None),
        (lambda: c(["ce"], max_members=0, **kw), "max_members", None),
        (lambda: c(["ce"], max_members="2", **kw), "max_members", None),
        (lambda: c(["ce"], tune_lr=True, lr_grid="0.1", **kw), "lr_grid", None),
        (lambda: c(["ce"], tune_lr=True, select=5, **kw), "select", None),
        (lambda: c(["ce"], tune_lr=True, tune_seeds="x", **kw), "tune_seeds", None),
        (lambda: c(["ce"], progress=5, **kw), "progress", None),
        (lambda: c(["ce"], out_dir=5, data_dir=nowhere), "out_dir", None),
        (lambda: r(5), "runs", None),
        (lambda: r([5]), "runs", None),
        (lambda: r(runs, out_dir=5), "out_dir", None),
        (lambda: r(runs, reference=5), "reference", None),
        (lambda: r(runs, sort=5), "sort", None),
        (lambda: r(runs, best_of=5), "best_of", None),
        (lambda: r(runs, best_of="optim.lr", select=5), "select", None),
        (lambda: r(runs, best_of="optim.lr", tune_seeds="x"), "tune_seeds", None),
        (lambda: bt(5), "batch_file", None),
        (lambda: bt(b, overrides={1: 2}, out_dir=out), "overrides", None),
        (lambda: bt(b, overrides=[1], out_dir=out), "overrides", None),
        (lambda: bt(b, out_dir=5), "out_dir", None),
        (lambda: bt(b, out_dir=out, jobs=0), "jobs", None),
        (lambda: bt(b, out_dir=out, jobs="2"), "jobs", None),
        (lambda: bt(b, out_dir=out, threads=0), "threads", None),
        (lambda: bt(b, out_dir=out, executor="x"), "executor", None),
        (lambda: bt(b, out_dir=out, executor="ray", address=5), "address", None),
        (lambda: bt(b, out_dir=out, cpus_per_task="1"), "cpus_per_task", None),
        (lambda: bt(b, out_dir=out, max_members=0), "max_members", None),
        (lambda: bt(b, out_dir=out, split_stacks=5), "split_stacks", None),
        (lambda: bt(b, out_dir=out, progress=5), "progress", None),
        (lambda: bt(resume=5), "resume", None),
        (lambda: ce_lab.load_run(5), "path", None),
        (lambda: ce_lab.load_runs(5), "out_dir", None),
        (lambda: ce_lab.load_runs(tmp_path, status=5), "status", None),
        (lambda: ce_lab.load_runs(tmp_path, loss=[5]), "loss", None),
        (lambda: ce_lab.load_runs(tmp_path, group=5), "group", None),
        (lambda: ce_lab.load_runs(tmp_path, last="5"), "last", None),
        (lambda: ce_lab.load_runs(tmp_path, last=0), "last", None),
        (lambda: ce_lab.load_runs(tmp_path, where=5), "where", None),
        (lambda: ce_lab.load_runs(tmp_path, where={"": 1}), "where", None),
        (lambda: ce_lab.load_metrics(5), "runs", None),
        (lambda: ce_lab.load_metrics([5]), "runs", None),
        (lambda: ce_lab.load_metrics(runs, kind=5), "kind", None),
    ]


def test_every_public_function_names_a_bad_argument_with_a_documented_error(tmp_path, two_runs):
    """No bare TypeError / AttributeError / ValueError: a ParamError naming the parameter, or
    (for a keyword that is a config key) the ConfigError naming that key; nothing written."""
    problems = []
    for n, (call, param, key) in enumerate(_bad_calls(tmp_path, two_runs)):
        try:
            call()
        except (ParamError, ConfigError) as e:
            text = str(e)
            named = param in text or (key is not None and key in text)
            if not named or len(text.splitlines()) != 1:
                problems.append(f"#{n} {param}: {type(e).__name__}: {text}")
            elif key is None and not isinstance(e, ParamError):
                problems.append(f"#{n} {param}: {type(e).__name__} (not ParamError): {text}")
        except Exception as e:  # noqa: BLE001 - what the test is about
            problems.append(f"#{n} {param}: {type(e).__name__}: {e}")
        else:
            problems.append(f"#{n} {param}: accepted")
    assert not problems, "\n".join(problems)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_param_errors_are_usage_errors_with_one_line():
    with pytest.raises(UsageError, match="^overrides .*1"):
        ce_lab.train("ce", overrides={1: 2})


# --- §12: the keys errors name -------------------------------------------------------------------


def test_a_huge_batch_size_is_named_not_the_model():
    cfg = with_overrides(RunConfig(), {"train.batch_size": 10**9})
    est = estimate_memory(cfg, 1, 784, 10)
    assert est.largest == "train.batch_size"
    import torch

    with pytest.raises(CeLabError) as err:
        check_memory(est, torch.device("cpu"))
    assert "train.batch_size" in str(err.value) and "model.hidden" not in str(err.value)
    # A batch holds at most the training set: beyond it, the estimate is that of the whole set.
    capped = estimate_memory(cfg, 1, 784, 10, n_train=1000, n_eval=500)
    whole = estimate_memory(with_overrides(RunConfig(), {"train.batch_size": 1000,
                                                         "train.eval_batch_size": 500}),
                            1, 784, 10)
    assert (capped.per_member, capped.shared) == (whole.per_member, whole.shared)
    big = estimate_memory(with_overrides(RunConfig(), {"model.hidden": [100_000] * 3}), 1, 784, 10)
    assert big.largest == "model.hidden"


def test_a_batch_size_beyond_the_training_set_trains_on_the_whole_set(tiny_mnist, tmp_path):
    from tests.mnist_fixture import TINY_TRAIN, TINY_VAL_SIZE

    run = ce_lab.train("ce", epochs=2, batch_size=10**9, out_dir=tmp_path, data_dir=tiny_mnist,
                       device="cpu", overrides={"data.verify_md5": False,
                                                "data.val_size": TINY_VAL_SIZE,
                                                "model.hidden": [16], "log.log_every": 1})
    assert run.status == "completed"
    assert run.summary["steps"] == 2  # one step an epoch, on all TINY_TRAIN - val examples
    assert list(run.metrics()["examples"]) == [TINY_TRAIN - TINY_VAL_SIZE, 2 * (TINY_TRAIN -
                                                                               TINY_VAL_SIZE)]


@pytest.mark.parametrize("key", ["../../x", ".seed", "optim..lr", "seed."])
def test_a_grid_key_with_an_empty_part_is_named_as_given(tmp_path, key):
    f = write_batch(tmp_path / "b.yaml", {"name": "g", "grid": {key: [1, 2]}})
    with pytest.raises(ConfigError) as err:
        load_batch(f, out_dir=tmp_path / "runs")
    text = str(err.value)
    assert f"'{key}'" in text and "unknown key ''" not in text and len(text.splitlines()) == 1
