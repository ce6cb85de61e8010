"""Batches without training: expansion, validation, config hash, task planning, and the
orchestration (skip / resume / rerun, failures, Ctrl-C) against an in-process fake executor.
``ce-lab batch`` itself (the dry run, usage errors): tests/cli/test_batch.py."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
import yaml

from ce_lab.batches.plan import find_previous, open_batch
from ce_lab.batches.spec import config_hash, load_batch
from ce_lab.batches.store import read_state
from ce_lab.batches.tasks import plan_batch
from ce_lab.config import RunConfig, to_dict, with_overrides
from ce_lab.errors import ConfigError
from tests.helpers import TWO_BY_TWO, FakeExecutor, run_fake, write_batch

# ---------------------------------------------------------------------------------------------
# Expansion and validation


def test_expansion_is_runs_times_grid_times_seeds(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "x",
        "base": {"train": {"epochs": 1}, "optim": {"momentum": 0.5}},
        "grid": {"loss.name": ["ce", "mse"], "optim.lr": [0.1, 0.3]},
        "runs": [{"model.hidden": [16]}, {"model": {"hidden": [32, 8]}}],
        "seeds": [0, 1, 2],
    })
    batch = load_batch(f)
    expected = [
        {"model.hidden": h, "loss.name": loss, "optim.lr": lr, "seed": s}
        for h, loss, lr, s in itertools.product(
            ([16], [32, 8]), ("ce", "mse"), (0.1, 0.3), (0, 1, 2))
    ]
    assert [e.overrides for e in batch.entries] == expected
    assert [e.index for e in batch.entries] == list(range(24))
    e = batch.entries[16]  # hidden [32, 8], ce, lr 0.3, seed 1
    assert e.overrides == expected[16]
    assert (e.config.model.hidden, e.config.loss.name, e.config.optim.lr, e.config.seed) == (
        (32, 8), "ce", 0.3, 1)
    assert e.config.train.epochs == 1 and e.config.optim.momentum == 0.5  # from the base
    assert set(batch.varied_keys()) == {"model.hidden", "loss.name", "optim.lr", "seed"}
    assert len({x.config_hash for x in batch.entries}) == 24


def test_grid_values_may_be_mappings_and_base_may_be_a_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text("train:\n  epochs: 7\n", encoding="utf-8")
    (tmp_path / "sweeps").mkdir()
    f = write_batch(tmp_path / "sweeps" / "b.yaml", {
        "name": "x", "base": "../cfg/base.yaml",  # relative to the batch file's folder
        "grid": {"optim": [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 0.001}]},
    })
    batch = load_batch(f)
    assert [e.overrides for e in batch.entries] == [
        {"optim.name": "sgd", "optim.lr": 0.1}, {"optim.name": "adam", "optim.lr": 0.001}]
    assert all(e.config.train.epochs == 7 for e in batch.entries)
    assert batch.entries[1].config.optim.name == "adam"


def test_set_and_out_dir_apply_to_the_base(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {"name": "x", "seeds": [1, 2]})
    batch = load_batch(f, ["train.epochs=4"], tmp_path / "elsewhere")
    assert all(e.config.train.epochs == 4 for e in batch.entries)
    assert all(e.config.out_dir == tmp_path / "elsewhere" for e in batch.entries)


@pytest.mark.parametrize(("data", "needles"), [
    ({"name": "x", "grid": {"loss.name": ["ce", "msee"]}},
     ["entry 1", "loss.name=msee", "loss.name: unknown loss 'msee'"]),
    ({"name": "x", "runs": [{"optim.lr": 0.1}, {"optim.lr": -1}], "seeds": [0, 1]},
     ["entry 2", "optim.lr=-1", "runs[1]", "optim.lr: Input should be greater than 0"]),
    ({"name": "x", "runs": [{"optim.lrr": 0.1}]},
     ["entry 0", "unknown key 'optim.lrr'", "did you mean 'optim.lr'"]),
    ({"name": "x", "gird": {"seed": [1]}}, ["b.yaml:2", "unknown key 'gird'", "'grid'"]),
    ({"name": "x", "grid": {"seed": [1, 2]}, "seeds": [3]}, ["seeds and grid both set 'seed'"]),
    ({"name": "x", "grid": {"optim.lr": [0.1]}, "runs": [{"optim.lr": 0.2}]},
     ["runs[0]", "'optim.lr' is set both here and in grid"]),
    ({"name": "x", "grid": {"optim.lr": [0.1, 0.1]}}, ["entry 1", "same config as entry 0"]),
    ({"name": "x", "runs": [{"out_dir": "a"}]}, ["entry 0", "'out_dir' is one folder"]),
    ({"name": "x", "grid": {"seed": []}}, ["grid key 'seed' has no values"]),
    ({"name": "a b"}, ["name:", "should match pattern"]),
    ({"name": "x", "base": "missing.yaml"}, ["base: config file not found"]),
    ({"name": "x", "base": {"optim": {"lr": 0}}}, ["b.yaml:4", "optim.lr"]),
])
def test_validation_errors_name_the_entry_and_the_key(tmp_path, data, needles):
    f = write_batch(tmp_path / "b.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_batch(f)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_config_hash_is_sha256_of_the_canonical_config_without_out_dir():
    cfg = with_overrides(RunConfig(), {"optim.lr": 0.3, "out_dir": "a"})
    data = to_dict(cfg)
    del data["out_dir"]
    data["data"]["val_size"] = 5000  # null, MNIST's default split, is hashed as what it stands for
    reference = hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert config_hash(cfg) == reference
    assert config_hash(with_overrides(cfg, {"out_dir": "b"})) == reference  # where, not what
    assert config_hash(with_overrides(cfg, {"optim.lr": 0.1})) != reference


def test_configs_in_the_repo_expand(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    seeds = load_batch(repo / "configs" / "sweep-seeds.yaml")
    assert len(seeds.entries) == 12
    assert {e.config.loss.name for e in seeds.entries} == {"ce", "mse", "hinge", "nll-manual"}
    assert {e.config.seed for e in seeds.entries} == {0, 1, 2}
    lr = load_batch(repo / "configs" / "sweep-lr.yaml")
    assert {e.config.loss.name for e in lr.entries} == {"ce", "mse", "hinge", "nll-manual"}
    assert len({e.config.optim.lr for e in lr.entries}) >= 3


# ---------------------------------------------------------------------------------------------
# Tasks: fusion by loss


def _opened(tmp_path, data, **kw):
    batch = load_batch(write_batch(tmp_path / "b.yaml", data), out_dir=tmp_path / "runs")
    return open_batch(batch, None, **kw)


FOUR_BY_THREE = {"name": "f", "grid": {"loss.name": ["ce", "mse", "hinge", "nll-manual"]},
                 "seeds": [0, 1, 2]}


def _tasks(opened, **kw):
    """The plan's tasks as the JSON the workers get."""
    from ce_lab.batches.tasks import task_payload

    return [task_payload(t, opened.state.batch_id) for t in plan_batch(opened, **kw).tasks]


def test_entries_that_may_share_a_stack_are_fused_bounded_by_max_members(tmp_path):
    grid = {"name": "g", "grid": {"loss.name": ["ce", "mse", "hinge", "nll-manual"],
                                  "optim.lr": [0.03, 0.1, 0.3, 1.0, 3.0]}, "seeds": [0, 1]}
    opened = _opened(tmp_path, grid)
    tasks = _tasks(opened, workers=1)
    assert [len(t["entries"]) for t in tasks] == [20, 20]  # one stack per seed
    for t in tasks:
        assert len({c["seed"] for c in t["configs"]}) == 1
        assert len({(c["loss"]["name"], c["optim"]["lr"]) for c in t["configs"]}) == 20
    tasks = _tasks(opened, workers=1, max_members=8)
    assert [len(t["entries"]) for t in tasks] == [8, 8, 8, 8, 4, 4]  # longest first
    assert sorted(i for t in tasks for i in t["entries"]) == list(range(40))


def test_entries_differing_only_in_loss_are_fused(tmp_path):
    opened = _opened(tmp_path, FOUR_BY_THREE)
    tasks = _tasks(opened, workers=1)
    assert [t["entries"] for t in tasks] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert [t["task_id"] for t in tasks] == ["task-000-0-3-6-9", "task-001-1-4-7-10",
                                             "task-002-2-5-8-11"]
    for t in tasks:
        seeds = {c["seed"] for c in t["configs"]}
        assert len(seeds) == 1 and len({c["loss"]["name"] for c in t["configs"]}) == 4
        assert t["group"] == opened.state.batch_id and t["kind"] == "train"
    # Two workers: the last of 3 stacks would leave one idle, so the biggest is halved.
    tasks = _tasks(opened, workers=2)
    assert [t["entries"] for t in tasks] == [[1, 4, 7, 10], [2, 5, 8, 11], [0, 3], [6, 9]]
    assert len(_tasks(opened, workers=2, fuse=False)) == 12
    # Kept whole when asked, or when the number of workers is up to Ray.
    assert [len(t["entries"]) for t in _tasks(opened, workers=2, split="never")] == [4, 4, 4]
    assert [len(t["entries"]) for t in _tasks(opened, workers=None)] == [4, 4, 4]


# ---------------------------------------------------------------------------------------------
# Orchestration against a fake executor that writes run folders like a real run would


def _rerun(tmp_path, data, executor):
    batch = load_batch(tmp_path / "b.yaml", out_dir=tmp_path / "runs")
    previous = find_previous(batch, new=False)
    opened = open_batch(batch, previous)
    return run_fake(opened, executor)


def test_a_failing_entry_leaves_the_others_and_a_rerun_redoes_only_it(tmp_path):
    runs = tmp_path / "runs"
    opened = _opened(tmp_path, TWO_BY_TWO)
    fake = FakeExecutor(runs, capacity=2, outcome={1: "failed", 2: "diverged"})
    result = run_fake(opened, fake)
    assert result.exit_code == 1
    state = read_state(opened.batch_dir)
    assert [e.status for e in state.entries] == ["completed", "failed", "diverged", "completed"]
    assert state.entries[1].error == "boom" and state.status == "failed"
    assert [e.run_dir.startswith("../run-") for e in state.entries] == [True] * 4
    first_dirs = [e.run_dir for e in state.entries]

    again = FakeExecutor(runs, capacity=2)
    result = _rerun(tmp_path, TWO_BY_TWO, again)
    assert result.batch_dir == opened.batch_dir  # the same batch folder continues
    assert [t["entries"] for t in again.started] == [[1]]  # diverged is a result: not rerun
    state = read_state(opened.batch_dir)
    assert [e.status for e in state.entries] == ["completed", "completed", "diverged", "completed"]
    assert state.entries[1].attempts == 2 and state.entries[1].run_dir != first_dirs[1]
    assert [e.run_dir for i, e in enumerate(state.entries) if i != 1] == [
        d for i, d in enumerate(first_dirs) if i != 1]
    assert result.exit_code == 0 and result.skipped == 3


def test_ctrl_c_stops_scheduling_and_a_rerun_resumes_from_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    opened = _opened(tmp_path, TWO_BY_TWO)
    # Finish the first task, then Ctrl-C while the second runs: the rest never starts.
    fake = FakeExecutor(runs, capacity=1, ctrl_c_on_wait=2)
    result = run_fake(opened, fake)
    assert result.interrupted and result.exit_code == 130
    assert len(fake.started) == 2
    state = read_state(opened.batch_dir)
    assert [e.status for e in state.entries] == ["completed", "interrupted", "pending", "pending"]
    assert state.status == "interrupted"
    interrupted_dir = state.entries[1].run_dir

    again = FakeExecutor(runs, capacity=1)
    result = _rerun(tmp_path, TWO_BY_TWO, again)
    kinds = [(t["kind"], t["entries"]) for t in again.started]
    assert kinds == [("resume", [1]), ("train", [2]), ("train", [3])]
    assert again.started[0]["run_dir"] == str(opened.batch_dir / interrupted_dir)
    state = read_state(opened.batch_dir)
    assert [e.status for e in state.entries] == ["completed"] * 4
    assert state.entries[1].run_dir == interrupted_dir  # resumed in place
    assert result.exit_code == 0


def test_a_killed_batch_is_reconciled_with_its_run_folders(tmp_path):
    """A batch killed outright leaves entries "running"; their run folders tell the truth."""
    runs = tmp_path / "runs"
    opened = _opened(tmp_path, TWO_BY_TWO)
    state = opened.state
    fake = FakeExecutor(runs)
    for rec, status in zip(state.entries[:2], ("completed", "interrupted")):
        entry = opened.batch.entries[rec.index]
        task = {"kind": "train", "entries": [rec.index], "configs": [to_dict(entry.config)],
                "group": state.batch_id}
        fake._finish(task, lambda i, s=status: s)
        rec.status = "running"  # what batch.json said when the batch died; no run_dir known
    from ce_lab.batches.store import write_state

    write_state(opened.batch_dir, state)
    again = FakeExecutor(runs)
    _rerun(tmp_path, TWO_BY_TWO, again)
    assert [(t["kind"], t["entries"]) for t in again.started] == [
        ("resume", [1]), ("train", [2]), ("train", [3])]


def test_a_changed_batch_file_keeps_the_entries_it_still_has(tmp_path):
    runs = tmp_path / "runs"
    opened = _opened(tmp_path, {"name": "c", "seeds": [0, 1]})
    run_fake(opened, FakeExecutor(runs))
    write_batch(tmp_path / "b.yaml", {"name": "c", "seeds": [1, 2]})
    again = FakeExecutor(runs)
    batch = load_batch(tmp_path / "b.yaml", out_dir=runs)
    reopened = open_batch(batch, find_previous(batch, new=False))
    assert reopened.dropped == 1 and reopened.batch_dir == opened.batch_dir
    run_fake(reopened, again)
    assert [t["configs"][0]["seed"] for t in again.started] == [2]
    assert yaml.safe_load((opened.batch_dir / "batch.yaml").read_text())["seeds"] == [1, 2]
    # --new starts another folder and runs everything.
    assert find_previous(batch, new=True) is None


def test_a_default_val_size_hashes_as_the_size_it_stands_for():
    """A run written when data.val_size defaulted to 5000 (config.yaml says 5000) is the same
    batch entry as one resolved now (null: a twelfth of MNIST's 60,000); MNIST-1D's null is its
    own 333, and a custom set's null stays null (its size is only known from its files)."""
    new = RunConfig()
    assert new.data.val_size is None
    assert config_hash(new) == config_hash(with_overrides(new, {"data.val_size": 5000}))
    assert config_hash(new) != config_hash(with_overrides(new, {"data.val_size": 4000}))
    one_d = with_overrides(new, {"data.name": "mnist1d"})
    assert config_hash(one_d) == config_hash(with_overrides(one_d, {"data.val_size": 333}))
    custom = with_overrides(new, {"data.name": "custom", "data.path": "x.npz"})
    assert config_hash(custom) != config_hash(with_overrides(custom, {"data.val_size": 5000}))
