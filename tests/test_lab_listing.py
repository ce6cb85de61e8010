"""ce_lab/lab/listing.py and ce_lab/runs/leaves.py: the config keys that differ between the runs
listed, and filtering runs by config value (``ce-lab runs --where``, ``load_runs(where=...)``),
from the runs index's interned leaves; the index still follows the folders."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from ce_lab.errors import ParamError
from ce_lab.lab.listing import list_runs, matches
from ce_lab.runs.leaves import ABSENT, Leaves
from tests.helpers import read_index, write_index
from tests.run_factory import make_run


def _three(out: Path) -> dict[str, Path]:
    return {
        "a": make_run(out, "ce", 0, started="2026-11-20T10:00:00+00:00", name="a"),
        "b": make_run(out, "mse", 1, started="2026-11-21T10:00:00+00:00", name="b",
                      overrides={"optim.lr": 0.5, "train.epochs": 2}),
        "c": make_run(out, "hinge", 0, started="2026-11-22T10:00:00+00:00", name="c",
                      overrides={"optim.lr": 0.1, "data.label_noise": 0.2}),
    }


def _ids(listing) -> list[str]:
    return [e.path.name for e in listing.entries]


def test_the_columns_are_the_keys_that_differ_between_the_runs_listed(tmp_path):
    out = tmp_path / "runs"
    _three(out)
    everything = list_runs(out)
    # seed and loss.name have columns of their own; out_dir and the like never count
    assert everything.keys == ["data.label_noise", "optim.lr", "train.epochs"]
    assert everything.values == [
        {"data.label_noise": 0.2, "optim.lr": 0.1, "train.epochs": 3},
        {"data.label_noise": 0.0, "optim.lr": 0.5, "train.epochs": 2},
        {"data.label_noise": 0.0, "optim.lr": 0.1, "train.epochs": 3}]
    assert list_runs(out, loss=["ce", "hinge"]).keys == ["data.label_noise"]  # lr equal there
    assert list_runs(out, last=1).keys == []  # one run: nothing differs
    again = list_runs(out)  # from the index now: the same answer
    assert (again.keys, again.values, _ids(again)) == (everything.keys, everything.values,
                                                      _ids(everything))


def test_where_matches_numbers_by_value_and_combines_with_and(tmp_path):
    out = tmp_path / "runs"
    _three(out)
    assert _ids(list_runs(out, where={"optim.lr": 0.1})) == ["c", "a"]
    assert _ids(list_runs(out, where=[("optim.lr", "1e-1")])) == ["c", "a"]  # as --set reads it
    assert _ids(list_runs(out, where={"train.epochs": 2.0})) == ["b"]
    assert _ids(list_runs(out, where=[("optim.lr", 0.1), ("data.label_noise", 0)])) == ["a"]
    assert _ids(list_runs(out, where=[("optim.lr", 0.1), ("optim.lr", 0.5)])) == []
    assert _ids(list_runs(out, where={"optim.name": "sgd", "model.hidden": [256]}, last=2)) == [
        "c", "b"]
    assert _ids(list_runs(out, where={"loss.name": "mse"})) == ["b"]
    narrowed = list_runs(out, where={"optim.lr": 0.1})
    assert narrowed.total == 3 and narrowed.keys == ["data.label_noise"]


def test_matching_rules():
    assert matches(0.1, 0.10) and matches(0.1, "1e-1") and matches(3, 3.0) and matches(3, "3")
    assert not matches(0.1, 0.11) and not matches(1, True) and not matches(True, 1)
    assert matches(True, True) and matches("sgd", "sgd") and not matches("sgd", "SGD")
    assert matches([256, 128], [256.0, 128]) and not matches([256], [256, 256])
    assert matches(None, None) and not matches(None, 0) and matches(math.nan, "nan")


def test_a_bad_where_is_a_usage_error_naming_what_was_meant(tmp_path):
    out = tmp_path / "runs"
    _three(out)
    with pytest.raises(ParamError, match=r"no run under .* has the config key 'lr'; did you mean "
                                         r"'optim.lr'\?"):
        list_runs(out, where={"lr": 0.1})
    with pytest.raises(ParamError, match=r"'optim.lrr'; did you mean 'optim.lr'\?"):
        list_runs(out, where={"optim.lrr": 0.1})
    with pytest.raises(ParamError, match=r"where optim.lr='fast': optim.lr is a number in every"):
        list_runs(out, where={"optim.lr": "fast"})
    with pytest.raises(ParamError, match=r"nesterov=1: optim.nesterov is true or false"):
        list_runs(out, where={"optim.nesterov": 1})
    for bad in ("optim.lr=0.1", {"optim..lr": 1}, [("optim.lr",)], {1: 2}):
        with pytest.raises(ParamError, match="^where must be a mapping of dotted config keys"):
            list_runs(out, where=bad)
    assert _ids(list_runs(out, where={"train.max_steps": None})) == ["c", "b", "a"]


def test_the_index_keeps_the_leaves_and_follows_the_folders(tmp_path):
    out = tmp_path / "runs"
    runs = _three(out)
    list_runs(out)
    index, lines = read_index(out)
    tables = Leaves.from_json(index["configs"])
    row = index["runs"]["b"]["leaves"]
    assert tables.value(tables.ids(row, "optim.lr")) == 0.5
    assert index["runs"]["b"]["row"]["steps"] == 600
    # A config edited in place (a new stamp): read again, the new value listed and matched.
    config = yaml.safe_load((runs["a"] / "config.yaml").read_text())
    config["optim"]["lr"] = 0.5
    (runs["a"] / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert _ids(list_runs(out, where={"optim.lr": 0.5})) == ["b", "a"]
    # A run removed: its values leave the index's tables too.
    import shutil

    shutil.rmtree(runs["c"])
    assert list_runs(out).keys == ["train.epochs"]  # a and b now share lr 0.5 and no noise
    tables = Leaves.from_json(read_index(out)[0]["configs"])
    assert '0.2' not in tables.values  # c's label noise


def test_forged_leaves_or_rows_are_not_trusted(tmp_path):
    out = tmp_path / "runs"
    runs = _three(out)
    list_runs(out)
    index, lines = read_index(out)
    index["runs"]["a"]["leaves"] = [10 ** 6]  # no such value
    index["runs"]["b"]["row"]["steps"] = "many"  # not what a summary.json may hold
    index["runs"]["c"]["rest"] = len(lines)  # no such line
    write_index(out, index, lines)
    listing = list_runs(out)
    assert listing.values[1]["optim.lr"] == 0.5 and listing.values[2]["optim.lr"] == 0.1
    assert listing.values[0]["data.label_noise"] == 0.2 and listing.entries[0].summary["steps"] == 600
    assert [e.summary.get("steps") for e in listing.entries] == [600, 600, 600]
    index, lines = read_index(out)
    index["configs"] = {"keys": "optim.lr"}  # tables broken: no entry is trusted
    write_index(out, index, lines)
    assert list_runs(out, where={"optim.lr": 0.5}).entries[0].path == runs["b"]


def test_leaves_tables():
    leaves = Leaves()
    a = leaves.intern({"optim": {"lr": 0.1}, "seed": 1})
    b = leaves.intern({"optim": {"lr": 0.1, "momentum": 0.9}, "seed": True})
    assert leaves.keys == ["optim.lr", "seed", "optim.momentum"]
    assert len(a) == 2 and b[0] == a[0] and b[1] != a[1]  # 1 and true are not one value
    assert leaves.differing([a, b]) == ["seed", "optim.momentum"]  # a lacks momentum
    assert leaves.differing([a, b], ignore={"seed"}) == ["optim.momentum"]
    assert leaves.ids(a, "optim.momentum") == ABSENT and leaves.value(ABSENT) is None
    tables, rows = leaves.packed({"b": b})
    again = Leaves.from_json(tables)
    assert [again.value(i) for i in rows["b"]] == [0.1, True, 0.9]
    assert Leaves.from_json({"keys": ["a", "a"], "values": []}) is None
    assert not leaves.valid([0, "1"]) and not leaves.valid([len(leaves.values)])


def test_an_entry_that_fails_the_checks_is_dropped_even_when_its_folder_cannot_be_read(tmp_path):
    out = tmp_path / "runs"
    runs = _three(out)
    list_runs(out)
    index, lines = read_index(out)
    index["runs"]["a"]["leaves"] = [10 ** 6]  # forged, and its folder now unreadable:
    index["runs"]["c"]["rest"] = None
    write_index(out, index, lines)
    (runs["a"] / "meta.json").write_text("{not json")
    (runs["c"] / "meta.json").write_text("[]")
    listing = list_runs(out)
    assert _ids(listing) == ["b"] and len(listing.skipped) == 2
    assert set(read_index(out)[0]["runs"]) == {"b"}  # neither written back
