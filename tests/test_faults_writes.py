"""Issue 20, §1-§3 and §12 (escape sequences, capped echoes): where ce-lab writes and what it shows.

- §1: with ``data.verify_md5: false`` the IDX files in ``data.root`` are the user's own: a bad one
  is one line naming it (exit 2), never replaced by a fetched MNIST.
- §2: no write into a run, comparison or batch folder follows a symbolic link planted there (nor
  opens a FIFO): each is refused with one line naming the path; the link's target is unchanged and
  the link itself is neither followed nor removed.
- §3: a name read from disk becomes part of a path only once ``plain_name`` has checked it.
- §12: names from disk are shown with their control characters escaped (``ce_lab.shown``), and a
  long value is echoed capped.

The CLI side of the same promises is tests/cli/test_faults_writes.py.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest

from ce_lab.errors import DataError, OwnDataError, UnsafeName
from ce_lab.safe_io import (
    LinkRefused,
    atomic_write_text,
    ensure_dir,
    open_for_writing,
    write_json,
)

KEPT = "not ce-lab's: must stay as it is\n"


def plant(path: Path, outside: Path) -> Path:
    """A symbolic link at ``path`` to a file in ``outside``; returns that target."""
    outside.mkdir(exist_ok=True)
    target = outside / f"target-of-{path.name}"
    target.write_text(KEPT)
    path.symlink_to(target)
    return target


def assert_refused(e: pytest.ExceptionInfo, path: Path, target: Path) -> None:
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "symbolic link" in message, message
    assert e.value.exit_code == 2
    assert target.read_text() == KEPT  # not written, not truncated
    assert path.is_symlink() and os.readlink(path) == str(target)  # neither followed nor removed


# --- §2: the write primitives ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "a", "wb", "ab"])
def test_open_for_writing_never_follows_a_link(mode, tmp_path):
    path = tmp_path / "metrics.csv"
    target = plant(path, tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        open_for_writing(path, mode)
    assert_refused(e, path, target)


def test_a_dangling_link_is_refused_too_and_creates_nothing(tmp_path):
    path = tmp_path / "eval.csv"
    path.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(LinkRefused):
        open_for_writing(path, "w")
    assert not (tmp_path / "would-be-created").exists()


@pytest.mark.parametrize("write", [lambda p: write_json(p, {"a": 1}),
                                   lambda p: atomic_write_text(p, "x")], ids=["json", "text"])
def test_an_atomic_write_refuses_a_link_and_leaves_no_temp_file(write, tmp_path):
    path = tmp_path / "meta.json"
    target = plant(path, tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        write(path)
    assert_refused(e, path, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "outside"]


def test_a_fifo_where_a_file_is_written_is_refused_without_blocking(tmp_path):
    path = tmp_path / "metrics.csv"
    os.mkfifo(path)
    with pytest.raises(LinkRefused, match="it is a FIFO"):
        open_for_writing(path, "a")  # O_NONBLOCK: no wait for a reader


def test_a_linked_sub_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "logs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LinkRefused, match="logs: it is a symbolic link"):
        ensure_dir(tmp_path / "logs")
    assert ensure_dir(tmp_path / "fresh").is_dir()


# --- §2: every writer of a run, comparison and batch folder -------------------------------------


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "o_excl"])
def test_a_planted_run_lock_link_is_refused_and_its_target_kept(flock, tmp_path, monkeypatch):
    from ce_lab.runs import lock

    if not flock:
        monkeypatch.setattr(lock, "fcntl", None)
    target = plant(tmp_path / ".lock", tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        lock.RunLock.acquire(tmp_path)
    assert_refused(e, tmp_path / ".lock", target)


def test_releasing_a_lock_replaced_by_a_link_removes_only_the_link(tmp_path):
    from ce_lab.runs.lock import RunLock

    held = RunLock.acquire(tmp_path)
    (tmp_path / ".lock").unlink()
    target = plant(tmp_path / ".lock", tmp_path / "outside")
    held.release()
    assert not os.path.lexists(tmp_path / ".lock") and target.read_text() == KEPT


def test_a_planted_batch_lock_link_is_refused(tmp_path):
    from ce_lab.batches.store import locked

    target = plant(tmp_path / ".lock", tmp_path / "outside")
    with pytest.raises(LinkRefused) as e, locked(tmp_path):
        pass
    assert_refused(e, tmp_path / ".lock", target)


@pytest.mark.parametrize("resumed", [False, True], ids=["new", "resumed"])
def test_a_csv_log_refuses_a_link(resumed, tmp_path):
    from ce_lab.runs.files import CsvLog

    path = tmp_path / "metrics.csv"
    target = plant(path, tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        CsvLog(path, ["step", "loss"], keep_until_step=0 if resumed else None)
    assert_refused(e, path, target)


@pytest.mark.parametrize("name", [".checkpoint.pt.tmp", "checkpoint.pt"])
def test_a_checkpoint_is_never_written_through_a_link(name, cfg, tmp_path):
    import torch

    from ce_lab.training import checkpoint
    from ce_lab.training.stack import Stack

    stack = Stack([cfg], torch.device("cpu"), 2, 784, 10)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    target = plant(run_dir / name, tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        checkpoint.save(stack, 0, checkpoint.LoopState(), 0, 0.0, run_dir)
    assert_refused(e, run_dir / name, target)
    assert {p.name for p in run_dir.iterdir()} == {name}  # no temp file left beside it


def _task(task_id: str = "task-0") -> dict:
    return {"task_id": task_id, "kind": "train", "entries": [0]}


@pytest.mark.parametrize("suffix", [".task.json", ".log"])
def test_a_batch_worker_file_link_is_refused_before_a_worker_starts(suffix, tmp_path):
    from ce_lab.batches.local import LocalExecutor

    ex = LocalExecutor(tmp_path)
    path = tmp_path / "logs" / f"task-0{suffix}"
    target = plant(path, tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        ex.start(_task())
    assert_refused(e, path, target)
    assert ex.running() == 0


def test_a_linked_logs_folder_of_a_batch_is_refused(tmp_path):
    from ce_lab.batches.local import LocalExecutor

    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "logs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LinkRefused, match="logs: it is a symbolic link"):
        LocalExecutor(tmp_path)
    assert not any(outside.iterdir())


def test_a_comparison_file_link_is_refused(tmp_path):
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.record import load_run
    from tests.run_factory import make_run

    records = [load_run(make_run(tmp_path / "runs", loss)) for loss in ("ce", "mse")]
    comp = tmp_path / "runs" / "compare-x"
    comp.mkdir()
    target = plant(comp / "table.csv", tmp_path / "outside")
    with pytest.raises(LinkRefused) as e:
        write_comparison(records, comp, plots=False)
    assert_refused(e, comp / "table.csv", target)


# Writes that are not into a run, comparison or batch folder, with why they may use plain calls.
ALLOWED_PLAIN_WRITES = {
    "ce_lab/safe_io.py",  # the one place that opens files for writing
    "ce_lab/data/files.py",  # the MNIST cache: md5-verified files renamed into place
    "ce_lab/cli/compare_cmd.py",  # --output FILE: a path the user names
    "ce_lab/theory/saturation.py",  # --output PNG of `ce-lab saturation`: a path the user names
    "ce_lab/progress.py",  # os.devnull, opened to silence a closed pipe
}


MEMORY = ("buf",)  # an io.BytesIO: serialised in memory, then written through safe_io


def _mode(node: ast.Call, at: int) -> str:
    given = [k.value for k in node.keywords if k.arg == "mode"] + node.args[at:at + 1]
    return given[0].value if given and isinstance(given[0], ast.Constant) else ""


def _plain_writes(path: Path) -> list[str]:
    """The calls in ``path`` that write, create or rename a file without ce_lab.safe_io."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        kind = None
        if name in ("write_text", "write_bytes"):
            kind = name
        elif name == "savefig" or (name, owner) == ("save", "torch"):
            at = 0 if name == "savefig" else 1
            if not (len(args) > at and ast.unparse(args[at]) in MEMORY):
                kind = "savefig" if name == "savefig" else "torch.save"
        elif (name, owner) == ("open", "os"):
            kind = "os.open"
        elif name == "open" and set(_mode(node, 1 if owner in ("", "io") else 0)) & set("wax+"):
            kind = "open"
        elif name in ("replace", "rename") and (owner == "os" or (len(args) == 1
                                                                 and not node.keywords)):
            kind = name  # Path.replace / os.replace; str.replace takes two arguments
        if kind:
            found.append((node.lineno, f"{path}:{node.lineno} {kind}"))
    return [hit for _, hit in sorted(found)]


def test_every_write_into_a_folder_goes_through_safe_io():
    """A new ``open(path, "w")`` or ``.write_text`` would write through a planted link: writers
    use ce_lab.safe_io (open_for_writing, open_fd, atomic_write_*, write_json, ensure_dir)."""
    root = Path(__file__).resolve().parent.parent
    found = [hit for p in sorted((root / "ce_lab").rglob("*.py"))
             if str(p.relative_to(root)) not in ALLOWED_PLAIN_WRITES
             for hit in _plain_writes(p)]
    assert not found, "write through ce_lab.safe_io instead:\n" + "\n".join(found)


def test_the_check_of_plain_writes_finds_each_kind(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('import os\nopen(p, "w")\nopen(p, mode="ab")\nopen(p)\nopen(p, "rb")\n'
                   'q.open("a")\np.write_text("x")\nos.open(p, 1)\nos.replace(a, b)\n'
                   'tmp.replace(p)\ntorch.save(x, path)\ntorch.save(x, buf)\nfig.savefig(p)\n'
                   'fig.savefig(buf)\n"a".replace("b", "c")\nreplace(col, cell=f)\n')
    kinds = [h.split()[-1] for h in _plain_writes(src)]
    assert kinds == ["open", "open", "open", "write_text", "os.open", "replace", "replace",
                     "torch.save", "savefig"]


# --- §3: names from disk -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "../../etc", "/abs/path", "a/b", "a\\b",
                                  "a\0b", 5, None])
def test_a_name_from_disk_that_is_not_plain_is_refused(name):
    from ce_lab.runs.names import plain_name

    with pytest.raises(UnsafeName) as e:
        plain_name(name, "runs/x: meta.json's run_id")
    message = str(e.value)
    assert message.startswith("runs/x: meta.json's run_id ") and "not a plain file name" in message
    assert "\n" not in message and "\0" not in message and e.value.exit_code == 2


@pytest.mark.parametrize("name", ["20261123-100000-ce-ab12", "run.1", "ce_x-y", "é…"])
def test_a_plain_name_passes(name):
    from ce_lab.runs.names import plain_name

    assert plain_name(name, "run_id") == name


# --- §1: one's own IDX files ----------------------------------------------------------------------


def _own_data(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    from ce_lab.data.files import raw_dir
    from tests.mnist_fixture import write_tiny_mnist

    root = write_tiny_mnist(tmp_path / "own")
    path = raw_dir(root) / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])  # cut short by an interrupted copy
    return root, {p.name: p.read_bytes() for p in raw_dir(root).iterdir()}


class Source:
    """A source that would write a good tiny MNIST over the folder; counts its calls."""

    def __init__(self, good: Path):
        from ce_lab.data.fetch import Source as FetchSource

        self.good, self.calls = good, 0
        self.source = FetchSource("fake mirror", self.fetch)

    def fetch(self, raw: Path, reporter) -> None:
        from ce_lab.data.files import MNIST_FILES, raw_dir

        self.calls += 1
        for f in MNIST_FILES:
            shutil.copyfile(raw_dir(self.good) / f.name, raw / f.name)


def test_a_bad_file_of_ones_own_data_is_an_error_never_fetched_over(tmp_path, tiny_mnist):
    from ce_lab.data.fetch import ensure_mnist
    from ce_lab.data.files import raw_dir

    root, before = _own_data(tmp_path)
    mirror = Source(tiny_mnist)
    with pytest.raises(OwnDataError) as e:
        ensure_mnist(root, verify_md5=False, sources=[mirror.source])
    message = str(e.value)
    assert "\n" not in message and e.value.exit_code == 2 and isinstance(e.value, DataError)
    assert str(raw_dir(root)) in message and "t10k-images-idx3-ubyte" in message
    assert "truncated" in message and "verify_md5" in message
    assert mirror.calls == 0
    assert {p.name: p.read_bytes() for p in raw_dir(root).iterdir()} == before


def test_ones_own_data_with_a_file_missing_is_not_completed_with_mnist(tmp_path, tiny_mnist):
    from ce_lab.data.fetch import ensure_mnist
    from ce_lab.data.files import raw_dir

    root, _ = _own_data(tmp_path)
    (raw_dir(root) / "t10k-images-idx3-ubyte").unlink()
    kept = {p.name: p.read_bytes() for p in raw_dir(root).iterdir()}
    mirror = Source(tiny_mnist)
    with pytest.raises(OwnDataError, match="t10k-images-idx3-ubyte missing"):
        ensure_mnist(root, verify_md5=False, sources=[mirror.source])
    assert mirror.calls == 0 and {p.name: p.read_bytes() for p in raw_dir(root).iterdir()} == kept


def test_an_empty_data_root_is_still_filled_with_verify_md5_off(tmp_path, tiny_mnist):
    from ce_lab.data.fetch import ensure_mnist
    from tests.mnist_fixture import tiny_table

    mirror = Source(tiny_mnist)
    found = ensure_mnist(tmp_path / "empty", verify_md5=False, sources=[mirror.source],
                         expected=tiny_table(tiny_mnist))
    assert (found.source, mirror.calls) == ("fake mirror", 1)


def test_no_fetch_note_is_given_for_ones_own_files(tmp_path):
    from ce_lab.config import DataConfig
    from ce_lab.data.fetch import fetch_note

    root, _ = _own_data(tmp_path)
    assert fetch_note(DataConfig(root=root, verify_md5=False)) is None
    assert "fetching MNIST" in fetch_note(DataConfig(root=tmp_path / "empty", verify_md5=False))


# --- §12: what is shown --------------------------------------------------------------------------


def test_printable_escapes_every_control_character_and_keeps_the_rest():
    from ce_lab.shown import printable

    assert printable("ce-smooth ± 0.1 — é 日本") == "ce-smooth ± 0.1 — é 日本"
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("\x1b]8;;http://x\x07link\x1b]8;;\x07") == (
        "\\x1b]8;;http://x\\x07link\\x1b]8;;\\x07")
    assert printable("x\ry\nz\tw\x7f\x9b") == "x\\x0dy\\x0az\\x09w\\x7f\\x9b"
    assert printable("abc\u202edef") == "abc\\u202edef"
    assert printable(None) == "None"


def test_rich_cell_is_text_not_markup():
    from rich.console import Console

    from ce_lab.shown import rich_cell

    console = Console(record=True, width=200, color_system="truecolor")
    console.print(rich_cell("[link=http://evil]ce[/link]\x1b[31m"))
    assert "\x1b]8" not in console.export_text(styles=True, clear=False)  # no OSC 8 link
    assert console.export_text().strip() == "[link=http://evil]ce[/link]\\x1b[31m"


def test_a_long_value_is_echoed_capped():
    from ce_lab.shown import capped, quoted

    long = "n" * 10_000
    assert quoted(long) == f"{'n' * 100!r}… (10,000 characters)"
    assert capped(long) == f"{'n' * 100}… (10,000 characters)"
    assert quoted("short") == "'short'" and quoted(0.5) == "0.5" and capped("x\x1b") == "x\\x1b"


def test_a_config_error_caps_the_value_it_echoes():
    from ce_lab.batches.spec import BatchFile
    from ce_lab.config import ConfigError, validate_model

    with pytest.raises(ConfigError) as e:
        validate_model(BatchFile, {"name": "b" * 10_000}, "batch.yaml")
    message = str(e.value)
    assert len(message) < 400 and "(10,000 characters)" in message and "name" in message


def test_an_unknown_name_is_echoed_capped():
    from ce_lab.suggest import unknown_name

    message = unknown_name("loss", ["x" * 10_000], ["ce", "mse"])
    assert len(message) < 300 and "(10,000 characters)" in message
    assert unknown_name("loss", ["msee"], ["ce", "mse"]) == (
        "unknown loss 'msee' — did you mean 'mse'?")


def test_json_output_of_a_name_from_disk_carries_no_raw_control_character():
    assert "\x1b" not in json.dumps({"run": "a\x1b[2J"})  # ensure_ascii: what --format json relies on
