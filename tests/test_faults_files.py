"""What ce-lab writes may not fit, and what it reads back is untrusted: every writer on a full disk
(a 3 MiB tmpfs, where this sandbox lets root mount one) is one error and keeps the old file, a plot
that does not fit leaves nothing behind, a hostile md5 stamp in the data cache is ignored.
Hostile run folders against the commands: tests/cli/test_faults_files.py."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import (
    dev_zero,
    directory,
    fifo,
    fill,
    text_spoiler,
)
from tests.run_factory import make_run

# --- a full disk, a read-only folder -----------------------------------------------------------

def test_every_writer_turns_a_full_disk_into_one_line_and_keeps_the_old_file(small_fs):
    from ce_lab.batches.store import BatchState, write_state
    from ce_lab.runs.files import CsvLog
    from ce_lab.safe_io import WriteError, write_json

    write_json(small_fs / "summary.json", {"status": "completed"})
    log = CsvLog(small_fs / "metrics.csv", ["step", "loss"])
    fill(small_fs)
    with pytest.raises(WriteError, match=r"^no space left on device while writing .*metrics.csv$"):
        for step in range(100_000):  # buffered: the flush of some row finds the disk full
            log.write({"step": step, "loss": 0.5})
    with pytest.raises(WriteError, match="no space left on device"):
        log.close()  # what was still buffered does not fit either
    with pytest.raises(WriteError, match=r"^no space left on device while writing .*summary"):
        write_json(small_fs / "summary.json", {"status": "failed", "pad": "x" * 100_000})
    assert json.loads((small_fs / "summary.json").read_text()) == {"status": "completed"}
    with pytest.raises(WriteError, match="no space left on device while writing .*batch.json"):
        write_state(small_fs, BatchState("b", "b", "now", "now", None, entries=[]))
    assert not list(small_fs.glob(".*.tmp"))  # temp files removed


@pytest.mark.parametrize("spoil", [fifo, directory, dev_zero,
                                   text_spoiler("[1]"), text_spoiler('{"f": [1]}'),
                                   text_spoiler("x" * (2 << 20))],
                         ids=["fifo", "directory", "devzero", "list", "entry-list", "huge"])
def test_a_hostile_md5_stamp_file_in_the_data_cache_is_ignored(spoil, tmp_path):
    import time

    from ce_lab.data.files import STAMP_NAME, file_md5_ok, md5_file

    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(path, (old, old))
    (tmp_path / STAMP_NAME).write_text("{}")
    spoil(tmp_path / STAMP_NAME)
    assert file_md5_ok(path, md5_file(path))  # hashed again, never hangs or raises
    assert not file_md5_ok(path, "0" * 32)


def test_a_plot_that_does_not_fit_leaves_no_partial_png_and_no_temp_file(small_fs, tmp_path):
    from ce_lab.render.plots import plot_loss
    from ce_lab.runs.record import load_run
    from ce_lab.safe_io import WriteError

    groups = [("ce", [load_run(make_run(tmp_path / "runs", "ce"))])]
    (small_fs / "loss.png").write_bytes(b"old")  # a plot of an earlier comparison
    fill(small_fs)
    with pytest.raises(WriteError, match=r"^no space left on device while writing .*loss.png$"):
        plot_loss(groups, small_fs / "loss.png")
    assert (small_fs / "loss.png").read_bytes() == b"old"
    with pytest.raises(WriteError, match="no space left on device"):
        plot_loss(groups, small_fs / "new.png")
    assert not (small_fs / "new.png").exists()
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler", "loss.png"]  # no temp file
