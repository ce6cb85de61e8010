"""Hostile config and batch files at their readers: alias bombs (sequence, mapping, recursive),
refused quickly with a ConfigError, while modest anchors still work. Through the CLI (one line,
exit code 2, never a traceback): tests/cli/test_faults_config.py."""

from __future__ import annotations

import pytest
import yaml

from ce_lab.batches.spec import read_batch_file
from ce_lab.errors import ConfigError
from ce_lab.yaml_files import read_yaml_mapping
from tests.helpers import alias_bomb, finishes


@pytest.mark.parametrize("levels", [9, 10])
def test_alias_bomb_in_a_config_file_is_refused_quickly(tmp_path, levels):
    f = tmp_path / "bomb.yaml"
    f.write_text(alias_bomb(levels), encoding="utf-8")
    assert f.stat().st_size < 1024
    out = finishes(read_yaml_mapping, f)
    assert isinstance(out.get("error"), ConfigError), out
    assert "aliases are expanded" in str(out["error"]) and str(f) in str(out["error"])


def test_a_mapping_alias_bomb_under_batch_runs_is_refused(tmp_path):
    lines = ["name: bomb", "m0: &m0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1}"]
    for i in range(1, 9):
        keys = ", ".join(f"k{j}: *m{i - 1}" for j in range(9))
        lines.append(f"m{i}: &m{i} {{{keys}}}")
    lines.append("runs: [*m8]")
    b = tmp_path / "batch.yaml"
    b.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = finishes(read_batch_file, b)
    assert isinstance(out.get("error"), ConfigError), out


def test_a_recursive_alias_is_refused(tmp_path):
    f = tmp_path / "loop.yaml"
    f.write_text("seed: &s [1, *s]\n", encoding="utf-8")
    out = finishes(read_yaml_mapping, f)
    assert isinstance(out.get("error"), ConfigError), out
    assert "refers to itself" in str(out["error"])


def test_modest_anchors_and_aliases_still_work(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("model: &m {hidden: [8, 4]}\nlog: {thresholds: &t [0.5, 0.9]}\n"
                 "optim: {<<: {lr: 0.2}}\n", encoding="utf-8")
    data, marks = read_yaml_mapping(f)
    assert data["model"]["hidden"] == [8, 4] and data["optim"]["lr"] == 0.2
    assert marks[("log", "thresholds")] == 2


def test_the_bomb_would_really_be_big():
    """The test input is what it claims: loaded by reference it is small, expanded it is not."""
    data = yaml.safe_load(alias_bomb(4))
    assert len(data["l3"]) == 9 and len(data["l3"][0][0][0]) == 9
