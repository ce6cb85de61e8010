"""The commands the README tells a reader to run are ones ce-lab accepts, the options `--help`
lists in short are documented in full in docs/, and `compare --help` stays short.

The README's commands are parsed by the real command line (click's parser, every option's
callback) without running them: a renamed option or a batch file that moved fails here, not on a
reader's first try.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from ce_lab.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = typer.main.get_command(app)


def parse(argv: list[str]):
    """The context of the (sub)command ``argv`` names, its options parsed; nothing runs. (Typer
    vendors its click, so groups are told by what they do.)"""
    ctx = COMMAND.make_context("ce-lab", list(argv), resilient_parsing=False)
    cmd = COMMAND
    while hasattr(cmd, "resolve_command"):
        # the subcommand's name is held apart from ctx.args (click 8.2 calls it _protected_args)
        name, sub, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return ctx


def readme_commands() -> list[str]:
    """The ce-lab commands a reader is told to run: the first command's last step and every
    ``$ ce-lab ...`` line of a console block."""
    first = re.search(r"^```bash\n(.*?)^```", README, re.M | re.S).group(1).strip()
    lines = [first.split(" && ")[-1]]
    lines += re.findall(r"^\$ (ce-lab .*?)\s*(?:#.*)?$", README, re.M)
    return lines


def test_the_readme_names_commands_to_run():
    commands = readme_commands()
    assert commands[0] == "ce-lab compare --tune-lr --epochs 1"
    assert len(commands) >= 4  # the first command and the experiments worth running next


@pytest.mark.parametrize("line", readme_commands())
def test_each_readme_command_parses_and_its_files_exist(line):
    argv = shlex.split(line)[1:]
    ctx = parse(argv)
    assert ctx.command.name == argv[0]
    for value in ctx.params.values():  # a file the README names is in the repository
        if isinstance(value, Path) and str(value) in argv:
            assert (ROOT / value).is_file(), value


def test_a_mistyped_option_does_not_parse():
    with pytest.raises(Exception) as raised:
        parse(["compare", "--tune-lrr"])
    assert type(raised.value).__name__ == "NoSuchOption"


@pytest.mark.parametrize("command, page", [("compare", "compare.md"), ("batch", "batches.md")])
def test_every_option_is_documented_in_full(command, page):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    sub = COMMAND.commands[command]
    missing = [opt for p in sub.params if p.param_type_name == "option"
               for opt in p.opts + p.secondary_opts
               if opt.startswith("--") and opt != "--help" and f"`{opt}" not in text]
    assert not missing, f"docs/{page} does not describe {missing}"


def test_compare_help_is_short_and_points_at_the_full_page(cli):
    result = cli.invoke(app, ["compare", "--help"], terminal_width=80)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) <= 100, len(result.stdout.splitlines())
    assert "docs/compare.md" in result.stdout
