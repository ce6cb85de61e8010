"""The CLI skeleton: help for every command, the version, the losses table, bad flags and config
errors as one line with exit 2, config show, and a --help that imports nothing heavy. The config
API the commands build on (precedence, round trip): tests/test_configs.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import typer.main

from ce_lab import __version__
from ce_lab.cli.app import app
from ce_lab.config import (
    RunConfig,
    load_config,
)
from ce_lab.losses import LOSSES, loss_names
from tests.helpers import runner, write_dedented


def _run(*args: str):
    """Invoke the CLI in-process; whatever happens, no exception escapes as a traceback."""
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _one_error_line(result, code: int = 2) -> str:
    """The single 'error: ...' line a CeLabError becomes, after checking the exit code."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _command_paths(cmd=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command under the root, found from the click command tree."""
    cmd = cmd if cmd is not None else typer.main.get_command(app)
    paths = [prefix]
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        paths += _command_paths(sub, (*prefix, name))
    return paths


COMMAND_PATHS = _command_paths()


# ---------------------------------------------------------------------------------------------
# Help and version


def test_command_tree_is_discovered():
    # guards the discovery itself: the skeleton's commands must be among what the walk finds
    assert {(), ("losses",), ("config",), ("config", "show")} <= set(COMMAND_PATHS)


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "root")
def test_help_for_every_command(path):
    result = _run(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    assert " ".join(("ce-lab", *path)) in result.stdout


def test_short_help_flag():
    result = _run("-h")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_version():
    result = _run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ce-lab {__version__}"


# ---------------------------------------------------------------------------------------------
# ce-lab losses


def _table_rows(text: str) -> dict[str, tuple[str, str]]:
    """name -> (description, source) from the rich table, joining cells that wrapped."""
    rows: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        cells = line.split("│")
        if len(cells) != 5:  # not a body row (title, rules, header, the options table)
            continue
        name, desc, source = (c.strip() for c in cells[1:4])
        if name:
            current = name
            rows[current] = []
        if current is not None:
            rows[current].append((desc, source))
    return {name: tuple(" ".join(" ".join(p[i] for p in parts).split()) for i in (0, 1))
            for name, parts in rows.items()}


def test_losses_lists_every_registered_loss_with_its_description():
    result = _run("losses")
    assert result.exit_code == 0
    rows = _table_rows(result.stdout)
    assert list(rows) == loss_names()
    for name, spec in LOSSES.items():
        # shown verbatim: the bce formula's "-[...]" must not be eaten as rich markup
        assert rows[name] == (" ".join(spec.description.split()), spec.source)
    assert rows["gce"][1] == "Zhang & Sabuncu, NeurIPS 2018"


# ---------------------------------------------------------------------------------------------
# Bad usage: exit 2, one line, the key named


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["no-such-command"],
        ["config", "show", "--bogus"],
        ["config", "show", "--config"],  # option without its value
        ["losses", "extra-argument"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_flags_exit_2(args):
    result = _run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_set_with_a_non_number_names_the_key():
    line = _one_error_line(_run("config", "show", "--set", "optim.lr=abc"))
    assert "optim.lr" in line
    assert "'abc'" in line


def test_set_unknown_key_suggests_the_right_one():
    line = _one_error_line(_run("config", "show", "--set", "optim.lrr=0.1"))
    assert "unknown key 'optim.lrr'" in line
    assert "did you mean 'optim.lr'?" in line


def test_set_unknown_section_suggests_the_right_one():
    line = _one_error_line(_run("config", "show", "--set", "optimm.lr=0.1"))
    assert "unknown key 'optimm'" in line
    assert "did you mean 'optim'?" in line


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("train.batch_size=abc", "train.batch_size"),
        ("train.epochs=1.5", "train.epochs"),
        ("log.grad_stats=maybe", "log.grad_stats"),
        ("model.hidden=abc", "model.hidden"),
        ("model.activation=gelu", "model.activation"),
        ("optim=3", "optim"),
        ("seed=[1, 2]", "seed"),
    ],
)
def test_set_wrong_type_names_the_key(item, key):
    line = _one_error_line(_run("config", "show", "--set", item))
    assert f"{key}:" in line


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-0.1", "optim.lr"),
        ("optim.lr=.inf", "optim.lr"),  # gt=0 alone would let infinity through
        ("loss.hinge_margin=.nan", "loss.hinge_margin"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.epochs=-1", "train.epochs"),
        ("optim.momentum=1", "optim.momentum"),
        ("model.hidden=[64, 0]", "model.hidden"),
        ("log.thresholds=[0.9, 1.5]", "log.thresholds"),
    ],
)
def test_set_out_of_range_names_the_key(item, key):
    line = _one_error_line(_run("config", "show", "--set", item))
    assert f"{key}:" in line


def test_set_without_equals_sign():
    line = _one_error_line(_run("config", "show", "--set", "optim.lr"))
    assert "dotted.key=value" in line


def test_set_unknown_loss_lists_valid_losses():
    line = _one_error_line(_run("config", "show", "--set", "loss.name=softmax"))
    assert "loss.name" in line
    for name in loss_names():
        assert name in line


# ---------------------------------------------------------------------------------------------
# Bad config files


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write_dedented(tmp_path, "bad.yaml", """\
        seed: 1
        optim:
          lr: 0.1
         momentum: 0.9
        """)  # line 4 is indented by one space: neither in nor out of optim
    line = _one_error_line(_run("config", "show", "--config", str(path)))
    assert f"{path}:4:" in line
    assert "malformed YAML" in line


def test_yaml_top_level_list(tmp_path):
    path = write_dedented(tmp_path, "list.yaml", "- seed\n- 1\n")
    line = _one_error_line(_run("config", "show", "--config", str(path)))
    assert str(path) in line
    assert "mapping" in line and "list" in line


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    line = _one_error_line(_run("config", "show", "--config", str(path)))
    assert "not found" in line and str(path) in line


def test_config_path_is_a_folder(tmp_path):
    line = _one_error_line(_run("config", "show", "--config", str(tmp_path)))
    assert str(tmp_path) in line


def test_unknown_key_in_yaml_names_file_and_line(tmp_path):
    path = write_dedented(tmp_path, "unk.yaml", """\
        seed: 1
        optim:
          lr: 0.2
          momentun: 0.9
        """)
    line = _one_error_line(_run("config", "show", "--config", str(path)))
    assert f"{path}:4:" in line
    assert "unknown key 'optim.momentun'" in line
    assert "did you mean 'optim.momentum'?" in line


def test_bad_value_in_yaml_names_file_line_and_key(tmp_path):
    path = write_dedented(tmp_path, "val.yaml", """\
        train:
          epochs: 2
          batch_size: 0
        """)
    line = _one_error_line(_run("config", "show", "--config", str(path)))
    assert f"{path}:3:" in line
    assert "train.batch_size" in line


def test_config_show_prints_the_resolved_yaml(tmp_path):
    path = write_dedented(tmp_path, "ok.yaml", "optim:\n  lr: 0.25\n")
    result = _run("config", "show", "--config", str(path), "--set", "train.epochs=9")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "shown.yaml"
    out.write_text(result.stdout, encoding="utf-8")
    cfg = load_config(out)
    assert cfg.optim.lr == 0.25
    assert cfg.train.epochs == 9
    assert cfg.train.batch_size == RunConfig().train.batch_size


# ---------------------------------------------------------------------------------------------
# Startup cost: no heavy imports for --help; python -m ce_lab works


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_help_does_not_import_heavy_modules():
    # Render the help of every command in a fresh interpreter, then report what got imported.
    paths = [list(p) for p in COMMAND_PATHS]
    code = textwrap.dedent(f"""\
        import sys
        from ce_lab.cli.app import app
        for path in {paths!r}:
            try:
                app([*path, "--help"])
            except SystemExit as e:
                assert e.code in (0, None), (path, e.code)
        heavy = [m for m in ("torch", "matplotlib", "numpy", "plotly") if m in sys.modules]
        print("HEAVY=" + ",".join(heavy))
        """)
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="


def test_python_dash_m_ce_lab():
    proc = subprocess.run(
        [sys.executable, "-m", "ce_lab", "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert "Traceback" not in proc.stderr

    proc = subprocess.run(
        [sys.executable, "-m", "ce_lab", "--version"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ce-lab {__version__}"
