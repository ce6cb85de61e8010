"""Issue 20, unbounded growth: a grid counted before it is expanded (§4), a checkpoint's declared
sizes checked before torch allocates them (§5), linear bookkeeping and listing (§6) and read caps
that follow from what the tool writes (§7). The CLI's side is in tests/cli/test_faults_growth.py."""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

import ce_lab
from ce_lab.batches.plan import open_batch
from ce_lab.batches.sizes import DEFAULT_MAX_ENTRIES, state_bound
from ce_lab.batches.spec import load_batch
from ce_lab.batches.store import (
    BATCH_COPY,
    BATCH_JSON,
    EVENTS,
    BatchState,
    EntryRecord,
    read_state,
    record_entries,
    write_state,
)
from ce_lab.config import with_overrides
from ce_lab.errors import ConfigError, ParamError, UsageError
from ce_lab.runs.index import INDEX
from ce_lab.runs.listing import list_runs
from ce_lab.safe_io import MAX_JSON_BYTES
from tests.helpers import FakeExecutor, InterruptAt, read_index, run_fake, write_batch, write_index
from tests.run_factory import make_run

# --- §4: the grid is counted before anything is expanded ----------------------------------------

# 10**9 entries in a file of about 1 KB: nine keys of ten values each.
BILLION = {"name": "huge", "grid": {f"optim.{key}": [round(0.1 * (i + 1), 1) for i in range(10)]
                                    for key in ("lr", "momentum", "weight_decay", "beta1", "beta2",
                                                "min_lr", "nesterov", "eps", "dampening")}}


def test_a_billion_entry_grid_is_refused_at_once_naming_its_count(tmp_path):
    f = write_batch(tmp_path / "b.yaml", BILLION)
    start = time.perf_counter()
    with pytest.raises(ParamError) as e:
        ce_lab.batch(f, dry_run=True)
    assert time.perf_counter() - start < 1.0
    assert "1,000,000,000 entries" in str(e.value) and "100,000" in str(e.value)
    assert "max_entries" in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 2
    assert not (tmp_path / "runs").exists()  # nothing written


def test_max_entries_raises_or_lowers_the_cap_and_the_count_is_the_expansions(tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "x", "base": {"train": {"epochs": 1}},
        "runs": [{"model.hidden": [16]}, {"model.hidden": [8]}],
        "grid": {"loss.name": ["ce", "mse", "mae"]}, "seeds": [0, 1]})
    assert len(load_batch(f).entries) == 12
    with pytest.raises(ParamError, match=r"12 entries .*over the limit of 11"):
        ce_lab.batch(f, dry_run=True, max_entries=11, out_dir=tmp_path / "runs")
    planned = ce_lab.batch(f, dry_run=True, max_entries=12, out_dir=tmp_path / "runs")
    assert len(planned.entries) == 12
    with pytest.raises(ParamError, match="max_entries"):
        ce_lab.batch(f, dry_run=True, max_entries=0)
    assert DEFAULT_MAX_ENTRIES == 100_000


# --- §5: a checkpoint's declared sizes are checked before anything is allocated ---------------

def _zip_bomb(path: Path, inflated: int) -> None:
    """A zip of ``inflated`` zero bytes, deflated to a few hundred KB: what torch would inflate."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with z.open("archive/data/0", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(inflated >> 20):
                member.write(chunk)


def test_a_zip_bomb_checkpoint_is_refused_before_torch_reads_it(cfg, data, tmp_path):
    from ce_lab.training import resume, train

    cut = train(with_overrides(cfg, {"train.epochs": 3}), data=data, reporter=InterruptAt(10))
    assert cut.status == "interrupted"
    ckpt = cut.run_dir / "checkpoint.pt"
    _zip_bomb(ckpt, 256 << 20)
    assert ckpt.stat().st_size < 2 << 20  # small on disk, 256 MiB once inflated
    with pytest.raises(UsageError) as e:
        resume(cut.run_dir, data=data)
    message = str(e.value)
    assert "cannot resume from this checkpoint" in message and "declares 268,435,4" in message
    assert "\n" not in message and e.value.exit_code == 2
    assert json.loads((cut.run_dir / "meta.json").read_text())["status"] == "interrupted"


def test_a_real_checkpoint_is_well_inside_its_bound(cfg, data):
    import torch

    from ce_lab.training import train
    from ce_lab.training.checkpoint import check_declared_sizes

    cut = train(with_overrides(cfg, {"train.epochs": 3, "optim.name": "adam"}), data=data,
                reporter=InterruptAt(10))
    ckpt = cut.run_dir / "checkpoint.pt"
    saved = torch.load(ckpt, weights_only=True)
    model_bytes = sum(t.numel() * t.element_size() for t in saved["model"].values())
    # weights + Adam's two moments + the RNG states: under the bound, which is
    # 2 x (1 + 4) x the weights + 4 MiB
    check_declared_sizes(ckpt, 10 * model_bytes + (4 << 20))
    with pytest.raises(ValueError, match="more than the"):
        check_declared_sizes(ckpt, ckpt.stat().st_size - 1)
    legacy = ckpt.with_name("legacy.pt")
    torch.save(saved, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="no zip archive"):
        check_declared_sizes(legacy, 10 * model_bytes + (4 << 20))


# --- §6b: batch bookkeeping appends, and reads back exactly --------------------------------------

def _opened(tmp_path: Path, data: dict):
    f = write_batch(tmp_path / "b.yaml", data)
    return open_batch(load_batch(f, out_dir=tmp_path / "runs"), None)


def test_entries_starting_and_ending_append_to_the_log_instead_of_rewriting_batch_json(tmp_path):
    opened = _opened(tmp_path, {"name": "log", "runs": [{"train.batch_size": b}
                                                       for b in (16, 32, 48, 64)]})
    path = opened.batch_dir / BATCH_JSON
    inode = path.stat().st_ino
    seen: list[tuple[str, int, str, int]] = []

    def on_event(kind, rec, state):
        # what a reader sees at this moment: the entry as the batch has it, from the log
        on_disk = read_state(opened.batch_dir).entries[rec.index]
        seen.append((kind, rec.index, on_disk.status, path.stat().st_ino))

    from ce_lab.batches.execute import execute
    from ce_lab.batches.tasks import plan_batch

    fake = FakeExecutor(tmp_path / "runs", capacity=1, outcome={2: "failed"})
    execute(opened, plan_batch(opened, workers=1), fake, on_event=on_event, poll_seconds=0)
    assert [(k, i, s) for k, i, s, _ in seen] == [
        ("start", 0, "running"), ("end", 0, "completed"), ("start", 1, "running"),
        ("end", 1, "completed"), ("start", 2, "running"), ("end", 2, "failed"),
        ("start", 3, "running"), ("end", 3, "completed")]
    assert {ino for *_, ino in seen} == {inode}  # batch.json was not rewritten meanwhile
    assert not (opened.batch_dir / EVENTS).exists()  # folded in at the end
    state = json.loads(path.read_text())
    assert [e["status"] for e in state["entries"]] == ["completed", "completed", "failed",
                                                       "completed"]
    assert state["status"] == "failed" and state["seq"] == 8


def _state(n: int) -> BatchState:
    return BatchState("batch-big-1", "big", "then", "then", None,
                      entries=[EntryRecord(i, {"seed": i}, f"{i:064x}") for i in range(n)])


def _big_batch_dir(tmp_path: Path, n: int) -> Path:
    batch_dir = tmp_path / "batch-big-1"
    batch_dir.mkdir()
    write_batch(batch_dir / BATCH_COPY, {"name": "big", "seeds": list(range(n))})
    return batch_dir


def test_a_crash_mid_append_or_mid_compaction_reads_back_exactly(tmp_path):
    batch_dir = _big_batch_dir(tmp_path, 3)
    state = _state(3)
    write_state(batch_dir, state)
    rec = state.entries[1]
    rec.status, rec.run_dir = "running", "../run-1"
    record_entries(batch_dir, state, [rec])
    rec.status = "completed"
    record_entries(batch_dir, state, [rec])
    assert read_state(batch_dir).entries[1].status == "completed"
    # killed in the middle of the next line: the line is cut short and ignored
    with open(batch_dir / EVENTS, "a", encoding="utf-8") as f:
        f.write('{"seq":3,"updated":"x","entry":{"index":1,"status":"fail')
    back = read_state(batch_dir)
    assert [asdict(e) for e in back.entries] == [asdict(e) for e in state.entries]
    # killed after batch.json was rewritten but before the log was removed: its lines are
    # older than batch.json's seq and are not applied again over a later change
    log = (batch_dir / EVENTS).read_text()
    rec.status = "interrupted"
    write_state(batch_dir, state)
    (batch_dir / EVENTS).write_text(log)
    assert read_state(batch_dir).entries[1].status == "interrupted"


def test_a_recorded_error_is_cut_to_its_bound(tmp_path):
    opened = _opened(tmp_path, {"name": "err", "seeds": [0]})

    class Verbose(FakeExecutor):
        def _finish(self, task, status_for):
            return [r | {"error": "x" * 50_000}
                    for r in super()._finish(task, lambda i: "failed")]

    run_fake(opened, Verbose(tmp_path / "runs"))
    error = read_state(opened.batch_dir).entries[0].error
    assert len(error) == 1000 and error.endswith("…")


# --- §7: batch.json's read cap follows from the batch it records -------------------------------

def test_a_batch_json_past_one_mib_reads_back(tmp_path):
    n = 6_000
    batch_dir = _big_batch_dir(tmp_path, n)
    state = _state(n)
    for rec in state.entries:
        rec.status, rec.run_dir, rec.log = "completed", f"../20261205-000000-ce-{rec.index:04x}", (
            f"logs/task-{rec.index:05d}.log")
    write_state(batch_dir, state)
    assert (batch_dir / BATCH_JSON).stat().st_size > 2 * MAX_JSON_BYTES
    back = read_state(batch_dir)
    assert [asdict(e) for e in back.entries] == [asdict(e) for e in state.entries]
    assert state_bound(batch_dir / BATCH_COPY) >= (batch_dir / BATCH_JSON).stat().st_size


def test_a_batch_json_larger_than_its_batch_implies_is_still_refused(tmp_path):
    batch_dir = _big_batch_dir(tmp_path, 2)
    state = _state(2)
    write_state(batch_dir, state)
    data = json.loads((batch_dir / BATCH_JSON).read_text())
    (batch_dir / BATCH_JSON).write_text(json.dumps(data | {"pad": "x" * (2 * MAX_JSON_BYTES)}))
    with pytest.raises(UsageError, match=r"unreadable batch.json .*limit"):
        read_state(batch_dir)


# --- §6a: thresholds -------------------------------------------------------------------------

def test_log_thresholds_are_capped_at_100_values(tmp_path):
    from ce_lab.config import RunConfig

    ok = with_overrides(RunConfig(), {"log.thresholds": [i / 100 for i in range(1, 101)]})
    assert len(ok.log.thresholds) == 100
    with pytest.raises(ConfigError, match="at most 100"):
        with_overrides(RunConfig(), {"log.thresholds": [i / 1000 for i in range(1, 102)]})


def test_fitting_a_wide_table_measures_it_a_logarithmic_number_of_times(monkeypatch):
    from rich.table import Table

    from ce_lab.render import fit as fitting

    table = Table(title="wide")
    for c in range(600):
        table.add_column(f"col{c}")
    table.add_row(*(f"{c:06d}" for c in range(600)))
    calls = []
    real = fitting.natural_width
    monkeypatch.setattr(fitting, "natural_width", lambda t: calls.append(1) or real(t))
    parts = fitting.fit(table, 4_600)
    kept = len(parts[0].columns)
    assert 400 <= kept < 600
    assert real(parts[0]) <= 4_600 < real(fitting._copy(table, list(range(kept + 1))))  # the most
    assert "not shown at this width: col" in parts[1].plain
    assert len(calls) <= 3 + (600).bit_length()  # not one measure per column dropped


# --- §6c: the run listing reads only what changed --------------------------------------------

def test_the_run_listing_is_cached_beside_the_folders_and_a_stale_entry_is_read_again(tmp_path):
    out = tmp_path / "runs"
    a = make_run(out, "ce", started="2026-11-20T10:00:00+00:00")
    b = make_run(out, "mse", started="2026-11-21T10:00:00+00:00")
    first, skipped = list_runs(out)
    assert [e.path for e in first] == [b, a] and skipped == []
    assert (out / INDEX).is_file()
    again, _ = list_runs(out)
    assert [(e.path, e.meta, e.config, e.summary, e.status) for e in again] == [
        (e.path, e.meta, e.config, e.summary, e.status) for e in first]
    # The folders stay the truth: a meta.json rewritten, a run removed, a new one.
    meta = json.loads((a / "meta.json").read_text())
    (a / "meta.json").write_text(json.dumps(meta | {"status": "failed", "group": "g2"}))
    import shutil

    shutil.rmtree(b)
    c = make_run(out, "mae", started="2026-11-22T10:00:00+00:00")
    now, _ = list_runs(out)
    assert [e.path for e in now] == [c, a]
    assert (now[1].status, now[1].group) == ("failed", "g2")
    assert set(read_index(out)[0]["runs"]) == {a.name, c.name}


def test_a_forged_or_broken_index_is_not_trusted(tmp_path):
    out = tmp_path / "runs"
    a = make_run(out, "ce")
    list_runs(out)
    index, lines = read_index(out)
    index["runs"][a.name]["meta"]["pid"] = "not a pid"  # fails the check meta.json gets
    write_index(out, index, lines)
    (entry,), _ = list_runs(out)
    assert entry.meta.get("pid") != "not a pid"  # read from the folder instead
    index, lines = read_index(out)
    at = index["runs"][a.name]["rest"]
    rest = json.loads(lines[at])
    rest["summary"]["steps"] = "many"  # a summary.json with this is refused: read the folder
    lines[at] = json.dumps(rest)
    write_index(out, index, lines)
    (entry,), _ = list_runs(out)
    assert entry.summary["steps"] == json.loads((a / "summary.json").read_text())["steps"]
    (out / INDEX).write_text("{not json")
    (entry,), _ = list_runs(out)
    assert entry.loss == "ce"
    assert yaml.safe_load((a / "config.yaml").read_text())["loss"]["name"] == "ce"
