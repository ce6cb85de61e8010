"""IDX parsing/writing, md5 checks with their stamp, and atomic writes (ce_lab.data.idx/files)."""

from __future__ import annotations

import gzip
import os
import struct
import time

import numpy as np
import pytest

from ce_lab.data.files import (
    STAMP_NAME,
    atomic_write,
    file_md5_ok,
    md5_file,
)
from ce_lab.data.idx import idx_bytes, parse_idx, read_idx
from ce_lab.errors import DataError
from tests.mnist_fixture import tiny_mnist_arrays


def reference_idx(array: np.ndarray, magic: int) -> bytes:
    """IDX written by hand from the format description, independent of ce_lab's writer."""
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) \
        + array.astype(np.uint8).tobytes()


def test_writer_matches_the_format_for_images_and_labels():
    images, labels = tiny_mnist_arrays(7, seed=3)
    assert idx_bytes(images) == reference_idx(images, 2051)
    assert idx_bytes(labels) == reference_idx(labels, 2049)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_read_genuine_idx_files(tmp_path, compress):
    images, labels = tiny_mnist_arrays(25, seed=1)
    for name, array, magic in (("img", images, 2051), ("lbl", labels, 2049)):
        data = reference_idx(array, magic)
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if compress else data)
        got = read_idx(path)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, array)


def test_truncated_idx_is_rejected():
    images, _ = tiny_mnist_arrays(5, seed=0)
    data = idx_bytes(images)
    with pytest.raises(DataError, match="truncated"):
        parse_idx(data[:-1], "x")
    with pytest.raises(DataError, match="truncated"):
        parse_idx(data + b"\0", "x")
    with pytest.raises(DataError, match="not a uint8 IDX"):
        parse_idx(b"\x89PNG\r\n\x1a\n" + data, "x")


def test_md5_mismatch_and_truncation_are_detected(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"some bytes of data")
    good = md5_file(path)
    assert file_md5_ok(path, good)
    path.write_bytes(b"some bytes of dat")  # truncated
    assert not file_md5_ok(path, good)
    assert not file_md5_ok(tmp_path / "absent", good)


def test_stamp_skips_rehash_but_never_hides_a_change(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    good = md5_file(path)
    old = time.time() - 3600
    os.utime(path, (old, old))  # an old file: its result may be remembered
    assert file_md5_ok(path, good)
    assert path.name in (tmp_path / STAMP_NAME).read_text()
    assert file_md5_ok(path, good)  # answered from the stamp
    with open(path, "r+b") as f:  # one byte changed in place, same size
        f.write(b"y")
    assert not file_md5_ok(path, good)
    path.write_bytes(b"x" * 999)
    os.utime(path, (old, old))  # even with the old mtime back, a truncation is seen
    assert not file_md5_ok(path, good)


def test_fresh_file_is_not_stamped(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_md5_ok(path, md5_file(path))
    assert not (tmp_path / STAMP_NAME).exists()


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    atomic_write(path, [b"ab", b"cd"])
    assert path.read_bytes() == b"abcd"
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.bin"]


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    def chunks():
        yield b"first half"
        raise OSError("disk full")

    fresh = tmp_path / "fresh.bin"
    with pytest.raises(OSError, match="disk full"):
        atomic_write(fresh, chunks())
    assert list(tmp_path.iterdir()) == []

    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old content")
    with pytest.raises(OSError):
        atomic_write(kept, chunks())
    assert kept.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.bin"]
