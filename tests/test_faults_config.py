"""Hostile config and batch files: alias bombs, deep nesting, huge files, folders. Each is refused
with one line and exit code 2, quickly, and never with a traceback."""

from __future__ import annotations

import threading

import pytest
import yaml

from ce_lab.batches.spec import read_batch_file
from ce_lab.cli.app import app
from ce_lab.errors import ConfigError
from ce_lab.yaml_files import MAX_FILE_BYTES, read_yaml_mapping
from tests.helpers import runner

HANG_GUARD_S = 5.0  # a guard against hanging, not a speed assertion


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _alias_bomb(levels: int, extra: str = "") -> str:
    """Under 1 KB; each level is 9 aliases of the one before, so it expands to 9**levels."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    return extra + "\n".join(lines) + "\n"


def _finishes(fn, *args):
    """What ``fn(*args)`` raised or returned, run in a thread the test does not wait on forever."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG_GUARD_S)
    assert not t.is_alive(), f"{fn.__name__} still running after {HANG_GUARD_S} s"
    return out


@pytest.mark.parametrize("levels", [9, 10])
def test_alias_bomb_in_a_config_file_is_refused_quickly(tmp_path, levels):
    f = tmp_path / "bomb.yaml"
    f.write_text(_alias_bomb(levels), encoding="utf-8")
    assert f.stat().st_size < 1024
    out = _finishes(read_yaml_mapping, f)
    assert isinstance(out.get("error"), ConfigError), out
    assert "aliases are expanded" in str(out["error"]) and str(f) in str(out["error"])


def test_alias_bomb_in_config_show_and_a_batch_file_is_one_line(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(_alias_bomb(9), encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["config", "show", "-c", str(f)]))
    assert "aliases are expanded" in line
    b = tmp_path / "batch.yaml"
    b.write_text(_alias_bomb(9, extra="name: bomb\n"), encoding="utf-8")
    out = _finishes(read_batch_file, b)
    assert isinstance(out.get("error"), ConfigError), out
    line = _one_line_error(runner.invoke(app, ["batch", str(b), "--dry-run"]))
    assert "aliases are expanded" in line


def test_a_mapping_alias_bomb_under_batch_runs_is_refused(tmp_path):
    lines = ["name: bomb", "m0: &m0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1}"]
    for i in range(1, 9):
        keys = ", ".join(f"k{j}: *m{i - 1}" for j in range(9))
        lines.append(f"m{i}: &m{i} {{{keys}}}")
    lines.append("runs: [*m8]")
    b = tmp_path / "batch.yaml"
    b.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = _finishes(read_batch_file, b)
    assert isinstance(out.get("error"), ConfigError), out


def test_a_recursive_alias_is_refused(tmp_path):
    f = tmp_path / "loop.yaml"
    f.write_text("seed: &s [1, *s]\n", encoding="utf-8")
    out = _finishes(read_yaml_mapping, f)
    assert isinstance(out.get("error"), ConfigError), out
    assert "refers to itself" in str(out["error"])


def test_modest_anchors_and_aliases_still_work(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("model: &m {hidden: [8, 4]}\nlog: {thresholds: &t [0.5, 0.9]}\n"
                 "optim: {<<: {lr: 0.2}}\n", encoding="utf-8")
    data, marks = read_yaml_mapping(f)
    assert data["model"]["hidden"] == [8, 4] and data["optim"]["lr"] == 0.2
    assert marks[("log", "thresholds")] == 2


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


def test_the_bomb_would_really_be_big():
    """The test input is what it claims: loaded by reference it is small, expanded it is not."""
    data = yaml.safe_load(_alias_bomb(4))
    assert len(data["l3"]) == 9 and len(data["l3"][0][0][0]) == 9
