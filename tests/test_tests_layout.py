"""The test suite's own layout.

No test module imports another one: shared fixtures live in tests/conftest.py, shared helpers in
tests/helpers.py (and references in tests/float64_refs.py), so that running one test file never
runs (or depends on) the import of another.

Tests follow the package (issue 18 §6): the unit tests of a module sit in its own test file, and
only tests/cli/ drives the command line, so the end-to-end set stays separate and small.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CLI_TESTS = TESTS / "cli"

# The names of the shared helper modules (tests/*.py that are no test module) that drive the CLI:
# importing one is driving the CLI. test_the_cli_helpers_are_all_named keeps the list whole.
CLI_HELPERS = {"runner", "cli_outputs", "tensorboard_scalars", "write_expected"}


def imported_test_modules(source: str) -> list[str]:
    """The test modules (``tests.test_*``) that ``source`` imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tests.test_")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("tests.test_"):
                found.append(node.module)
            elif node.module == "tests":
                found += [f"tests.{a.name}" for a in node.names if a.name.startswith("test_")]
    return found


def test_the_check_finds_every_spelling():
    source = ("import tests.test_a\nfrom tests.test_b import x\nfrom tests import test_c, helpers\n"
              "def f():\n    from tests.test_d import y\n"
              "from tests.helpers import rows\nfrom tests import conftest\n")
    assert imported_test_modules(source) == ["tests.test_a", "tests.test_b", "tests.test_c",
                                           "tests.test_d"]


def test_no_test_module_imports_another():
    offenders = {str(p.relative_to(TESTS)): found for p in sorted(TESTS.rglob("*.py"))
                 if (found := imported_test_modules(p.read_text(encoding="utf-8")))}
    assert not offenders, f"import from tests/helpers.py or tests/conftest.py instead: {offenders}"


def cli_uses(source: str) -> list[str]:
    """How ``source`` drives the command line: a call of ``.invoke`` (the ``cli`` fixture's, or any
    CliRunner's), ``CliRunner`` itself, a test taking the ``cli`` fixture, a CLI-driving helper
    (``CLI_HELPERS``) imported from tests, or a process started as ``python -m ce_lab`` or
    ``ce-lab``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "invoke":
            found.append((line, ".invoke(...)"))
        elif isinstance(node, ast.Name) and node.id == "CliRunner" or (
                isinstance(node, ast.alias) and node.name == "CliRunner"):
            found.append((line, "CliRunner"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                and any(a.arg == "cli" for a in node.args.args):
            found.append((line, f"the cli fixture in {node.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests"):
            found += [(line, f"{a.name} from {node.module}") for a in node.names
                      if a.name in CLI_HELPERS]
        elif isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if any(a == "-m" and b in ("ce_lab", "ce_lab.__main__") for a, b in zip(words, words[1:])) \
                    or words[:1] == ["ce-lab"]:
                found.append((line, "a ce-lab process"))
    return [f"line {n}: {what}" for n, what in sorted(found)]


def test_the_cli_check_finds_every_spelling():
    source = ("from typer.testing import CliRunner\n"
              "from tests.helpers import runner, rows\n"
              "def test_a(cli, tmp_path):\n    cli.invoke(app, ['train'])\n"
              "def test_b():\n    CliRunner().invoke(app, [])\n"
              "def test_c():\n    subprocess.run([sys.executable, '-m', 'ce_lab', 'train'])\n"
              "def test_d():\n    subprocess.Popen(('ce-lab', '--help'))\n"
              "def test_e():\n    from tests.format0_outputs import cli_outputs\n")
    assert [use.split(": ", 1)[1] for use in cli_uses(source)] == [
        "CliRunner", "runner from tests.helpers", "the cli fixture in test_a", ".invoke(...)",
        ".invoke(...)", "CliRunner", "a ce-lab process", "a ce-lab process",
        "cli_outputs from tests.format0_outputs"]
    # The batch worker and a plain interpreter are processes, but not the command line.
    assert cli_uses("subprocess.run([sys.executable, '-m', 'ce_lab.batches.worker', 't.json'])\n"
                    "subprocess.run([sys.executable, '-c', 'import ce_lab'])\n"
                    "def test_f(tiny_sets, tmp_path):\n    from tests.helpers import rows\n") == []


def test_the_cli_helpers_are_all_named():
    """A helper module's function or object that drives the CLI, itself or through another such
    helper, is in CLI_HELPERS, so importing it counts as driving the CLI."""
    nodes = {}
    for path in sorted(TESTS.glob("*.py")):
        if not path.name.startswith("test_") and path.name != "conftest.py":
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                name = getattr(node, "name", None) or next(
                    (t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)), None)
                if name:
                    nodes[name] = (path.name, node)
    driving = {name for name, (_, node) in nodes.items()
               if cli_uses(ast.unparse(node)) or "CliRunner(" in ast.unparse(node)}
    while more := {name for name, (_, node) in nodes.items() if name not in driving and any(
            isinstance(n, ast.Name) and n.id in driving for n in ast.walk(node))}:
        driving |= more
    assert driving - CLI_HELPERS == set(), (
        f"add to CLI_HELPERS: {sorted((nodes[n][0], n) for n in driving - CLI_HELPERS)}")
    assert "runner" in driving  # the check sees the shared CliRunner


def test_only_tests_in_tests_cli_drive_the_cli():
    offenders = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        if CLI_TESTS in path.parents or path.name == "test_tests_layout.py":
            continue
        if found := cli_uses(path.read_text(encoding="utf-8")):
            offenders[str(path.relative_to(TESTS))] = found
    assert not offenders, (
        "a test that drives the CLI belongs in tests/cli/; test the module or the API directly "
        f"elsewhere: {offenders}")
