"""The test suite's own layout: no test module imports another one. Shared fixtures live in
tests/conftest.py, shared helpers in tests/helpers.py (and references in tests/float64_refs.py), so
that running one test file never runs (or depends on) the import of another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


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
