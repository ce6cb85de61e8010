"""Hostile config and batch files given to the CLI: alias bombs, deep nesting, huge files, folders.
Each is refused with one line and exit code 2, quickly, and never with a traceback."""

from __future__ import annotations

import pytest

from ce_lab.batches.spec import read_batch_file
from ce_lab.cli.app import app
from ce_lab.errors import ConfigError
from ce_lab.yaml_files import MAX_FILE_BYTES, read_yaml_mapping
from tests.helpers import alias_bomb, finishes, runner


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_alias_bomb_in_config_show_and_a_batch_file_is_one_line(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(alias_bomb(9), encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["config", "show", "-c", str(f)]))
    assert "aliases are expanded" in line
    b = tmp_path / "batch.yaml"
    b.write_text(alias_bomb(9, extra="name: bomb\n"), encoding="utf-8")
    out = finishes(read_batch_file, b)
    assert isinstance(out.get("error"), ConfigError), out
    line = _one_line_error(runner.invoke(app, ["batch", str(b), "--dry-run"]))
    assert "aliases are expanded" in line


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("command", [["config", "show"], ["train"]])
def test_deeply_nested_config_is_a_config_error(tmp_path, command):
    f = tmp_path / "deep.yaml"
    f.write_text(f"seed: {_deep(3000)}\n", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, [*command, "--config", str(f)]))
    assert f"{f}:1: nested deeper than" in line
    deep_block = "".join(f"{' ' * i}k{i}:\n" for i in range(1000)) + f"{' ' * 1000}x\n"
    f.write_text(deep_block, encoding="utf-8")
    line = _one_line_error(runner.invoke(app, [*command, "--config", str(f)]))
    assert "nested deeper than" in line


def test_deeply_nested_batch_base_is_a_config_error(tmp_path):
    b = tmp_path / "batch.yaml"
    b.write_text(f"name: deep\nbase:\n  seed: {_deep(3000)}\n", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["batch", str(b), "--dry-run"]))
    assert "nested deeper than" in line
    (tmp_path / "deep.yaml").write_text(f"seed: {_deep(3000)}\n", encoding="utf-8")
    b.write_text("name: deep\nbase: deep.yaml\n", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["batch", str(b), "--dry-run"]))
    assert "deep.yaml:1: nested deeper than" in line


def test_deeply_nested_set_value_is_not_a_traceback():
    line = _one_line_error(runner.invoke(app, ["config", "show", "--set", f"seed={_deep(3000)}"]))
    assert "--set seed=" in line


def test_config_and_batch_files_over_the_size_limit_are_refused(tmp_path):
    big = "seed: 1\n" + "#" * MAX_FILE_BYTES + "\n"
    f = tmp_path / "big.yaml"
    f.write_text(big, encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["config", "show", "-c", str(f)]))
    assert "larger than 1 MiB" in line and str(f) in line
    b = tmp_path / "batch.yaml"
    b.write_text("name: big\n" + big, encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["batch", str(b), "--dry-run"]))
    assert "larger than 1 MiB" in line
    ok = tmp_path / "ok.yaml"
    ok.write_text("seed: 1\n" + "#" * (MAX_FILE_BYTES - 100) + "\n", encoding="utf-8")
    assert read_yaml_mapping(ok)[0] == {"seed": 1}


def test_a_folder_given_as_batch_file_says_so(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    line = _one_line_error(runner.invoke(app, ["batch", str(plain)]))
    assert f"{plain} is a folder, not a batch file" in line and "not found" not in line
    made = tmp_path / "made"
    made.mkdir()
    (made / "batch.json").write_text("{}", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["batch", str(made)]))
    assert "is a batch folder" in line and f"ce-lab batch --resume {made}" in line
