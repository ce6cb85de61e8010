"""Hostile or empty data through the CLI: a test set of 0 images, a hostile IDX file in an import
folder or the cache, and the progress lines a data error used to print before its one error line."""

from __future__ import annotations

import gzip

import pytest

from ce_lab.cli.app import app
from ce_lab.data.files import raw_dir
from tests.helpers import HOSTILE_IDX, runner
from tests.mnist_fixture import TINY_VAL_SIZE, write_tiny_mnist

# --- an empty test set -------------------------------------------------------------------------


def _data_args(root):
    return ["--set", f"data.root={root}", "--set", "data.verify_md5=false",
            "--set", f"data.val_size={TINY_VAL_SIZE}", "--device", "cpu"]


def test_a_test_set_of_no_images_is_refused_before_training(tmp_path):
    root = write_tiny_mnist(tmp_path / "mnist", n_test=0)
    result = runner.invoke(app, ["train", "--epochs", "1", *_data_args(root),
                                 "--out-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "t10k-images-idx3-ubyte" in lines[0] and "no images" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


# --- a data error is one line ------------------------------------------------------------------


def test_a_data_error_prints_only_the_error_line(tmp_path):
    """Off a terminal the fetch progress is not drawn: no '- check the cache' line, no blank."""
    result = runner.invoke(app, ["train", "--epochs", "1", "--set", f"data.root={tmp_path / 'e'}",
                                 "--set", "data.download=false"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: MNIST not found"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- a hostile file where an IDX file should be ------------------------------------------------


def _gzip_bomb(path):
    """A small .gz that decompresses to 65 MiB, over the 64 MiB bound of an IDX file."""
    path.unlink(missing_ok=True)
    with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
        for _ in range(65):
            f.write(b"\0" * (1 << 20))


@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX) + ["gzip-bomb"])
def test_a_hostile_idx_file_in_a_data_import_folder_is_one_data_error_line(spoil, tmp_path):
    src = raw_dir(write_tiny_mnist(tmp_path / "src"))
    (HOSTILE_IDX.get(spoil) or _gzip_bomb)(src / "train-images-idx3-ubyte")
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["data", "import", str(src), "--data-dir", str(cache)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte" in lines[0], result.stderr
    assert ("limit" if spoil == "gzip-bomb" else "not a regular file") in lines[0]
    assert not raw_dir(cache).exists() or not any(raw_dir(cache).iterdir())  # nothing imported


@pytest.mark.parametrize("verify_md5", [True, False], ids=["md5", "headers"])
@pytest.mark.parametrize("spoil", sorted(HOSTILE_IDX))
def test_a_hostile_idx_file_in_the_cache_is_one_data_error_line(spoil, verify_md5, tmp_path):
    root = write_tiny_mnist(tmp_path / "mnist")
    HOSTILE_IDX[spoil](raw_dir(root) / "train-images-idx3-ubyte")
    result = runner.invoke(app, ["train", "--epochs", "1", "--set", f"data.root={root}",
                                 "--set", f"data.verify_md5={str(verify_md5).lower()}",
                                 "--set", "data.download=false", "--device", "cpu",
                                 "--out-dir", str(tmp_path / "runs")])
    # With verify_md5 off the files are one's own data set: exit 2, never fetched over (issue 20).
    assert result.exit_code == (1 if verify_md5 else 2), result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte not a regular file" in lines[0], lines
