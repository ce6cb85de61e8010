"""Regression tests from a UX review: bad input gets one line and the right exit code, never a
traceback, and the numbers stay right at the edges (subnormal q, overflowing sums)."""

from __future__ import annotations

import math

import pytest

from ce_lab.cli.app import app
from ce_lab.config import RunConfig, resolve_config
from ce_lab.data.fetch import cache_problems, import_folder
from ce_lab.data.files import raw_dir
from ce_lab.errors import ConfigError, DataError
from ce_lab.theory.information import kl_divergence
from tests.helpers import runner
from tests.mnist_fixture import tiny_table


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [".a=1", "a.=1", "model..hidden=1", "optim. =1"])
def test_set_with_an_empty_key_part_is_refused_by_name(item):
    line = _one_line_error(runner.invoke(app, ["config", "show", "--set", item]), 2)
    assert f"--set {item}" in line and "empty part" in line


def test_unknown_key_from_set_names_the_set_item():
    line = _one_line_error(runner.invoke(app, ["config", "show", "--set", "optim.lrr=1"]), 2)
    assert "--set optim.lrr=1" in line and "unknown key 'optim.lrr'" in line
    assert "did you mean 'optim.lr'" in line


def test_duplicate_keys_in_a_config_file_are_refused_with_the_line(tmp_path):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("seed: 1\noptim:\n  lr: 0.1\n  lr: 0.2\n", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["config", "show", "-c", str(cfg)]), 2)
    assert f"{cfg}:4" in line and "duplicate key 'optim.lr'" in line
    top = tmp_path / "dup-top.yaml"
    top.write_text("seed: 1\nseed: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dup-top.yaml:2: duplicate key 'seed'"):
        resolve_config(top)


def test_seed_beyond_what_torch_accepts_is_a_config_error():
    line = _one_line_error(
        runner.invoke(app, ["config", "show", "--set", "seed=99999999999999999999999"]), 2)
    assert "seed" in line and "less than or equal to" in line
    assert RunConfig(seed=2**63 - 1).seed == 2**63 - 1


# --- theory ------------------------------------------------------------------------------------


def test_kl_with_a_subnormal_q_is_finite_and_the_identity_holds():
    q = 1e-320  # p/q overflows to inf, but ln p - ln q does not
    assert math.isclose(kl_divergence([1.0, 0.0], [q, 1 - q]), -math.log(q), rel_tol=1e-12)
    result = runner.invoke(app, ["xent", "--binary", "1", "1e-320", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"identity_holds": true' in result.stdout
    table = runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "1e-320,1"])
    assert table.exit_code == 0 and ": holds" in table.stdout and "FAILS" not in table.stdout


@pytest.mark.parametrize("args", [
    ["entropy", "1e308", "1e308", "--normalize"],
    ["entropy", "1e308", "1e308"],
    ["xent", "--p", "1e308,1e308", "--q", "0.5,0.5", "--normalize"],
])
def test_sums_that_overflow_are_a_usage_error(args):
    line = _one_line_error(runner.invoke(app, args), 2)
    assert "largest float" in line


@pytest.mark.parametrize("tolerance", ["inf", "1", "10"])
def test_a_tolerance_that_lets_any_sum_through_is_refused(tolerance):
    line = _one_line_error(
        runner.invoke(app, ["entropy", "2", "2", "--tolerance", tolerance]), 2)
    assert "--tolerance" in line


def test_saturation_infinite_hinge_margin_is_a_usage_error():
    line = _one_line_error(runner.invoke(
        app, ["saturation", "--probs", "0.5", "--no-plot", "--hinge-margin", "inf"]), 2)
    assert "--hinge-margin" in line


def test_saturation_output_with_an_unknown_format_is_a_usage_error(tmp_path):
    line = _one_line_error(runner.invoke(
        app, ["saturation", "--probs", "0.5", "--output", str(tmp_path / "x.txt")]), 2)
    assert "x.txt" in line and ".png" in line
    assert not (tmp_path / "x.txt").exists()


def test_saturation_output_without_suffix_reports_the_file_it_wrote(tmp_path):
    result = runner.invoke(app, ["saturation", "--probs", "0.5", "--output",
                                 str(tmp_path / "plot")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plot.png").is_file()
    assert f"wrote {tmp_path / 'plot.png'}" in result.stdout


# --- data --------------------------------------------------------------------------------------


def test_import_into_a_cache_that_cannot_be_created_is_one_line(tmp_path, tiny_mnist):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write the MNIST cache"):
        import_folder(raw_dir(tiny_mnist), blocker, tiny_table(tiny_mnist))
    # Through the CLI (real MNIST md5s, so the tiny files stop earlier): still one line, exit 1.
    result = runner.invoke(app, ["data", "import", str(raw_dir(tiny_mnist)),
                                 "--data-dir", str(blocker)])
    _one_line_error(result, 1)


def test_an_unreadable_cache_file_is_a_problem_not_a_crash(tmp_path, tiny_mnist, monkeypatch):
    import ce_lab.data.fetch as fetch

    def unreadable(path, md5, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fetch, "file_md5_ok", unreadable)
    problems = cache_problems(raw_dir(tiny_mnist), True, tiny_table(tiny_mnist))
    assert set(problems.values()) == {"unreadable (Permission denied)"}

    import ce_lab.data.files as files

    monkeypatch.setattr(files, "file_md5_ok", unreadable)
    result = runner.invoke(app, ["data", "status", "--data-dir", str(tiny_mnist)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stdout.count("unreadable (Permission denied)") == 4
