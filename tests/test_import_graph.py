"""The structure of the ce_lab package: no import cycle among its modules, no module over 400 lines,
no class over 200.

The import graph is read from the source (ast), not from a running interpreter, so an import that
only some code path reaches counts as much as one at the top of a module. How it is modelled:

- every ``import`` and ``from ... import`` counts, inside functions and ``try`` blocks included;
  only those under ``if TYPE_CHECKING:`` do not (they never run);
- ``from ce_lab.x import y`` is an edge to the module ``ce_lab.x.y`` when that is a module, else to
  ``ce_lab.x`` (for a package: its ``__init__``); relative imports are resolved the same way;
- importing ``ce_lab.x.y`` is an edge to ``ce_lab.x.y`` alone, not to the packages above it. Python
  does run ``ce_lab/x/__init__.py`` first, but a package that imports its own submodules (as
  ``ce_lab.losses`` does) would then form a "cycle" with each of them although nothing can go
  wrong: a cycle is only reported when a module asks a package's ``__init__`` itself for a name;
- names loaded by ``importlib.import_module`` (the lazy ``__getattr__`` of ``ce_lab`` and
  ``ce_lab.runs``) are not edges: they load on attribute access, after every import has finished.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
# Modules allowed over MAX_LINES for now, with why; the test fails once one of them is back under
# the limit (so that it leaves this list) or another module goes over.
OVER_THE_LIMIT: dict[str, str] = {}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (file ``path``) imports, as modelled above."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit_node(other)
            else:
                visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    found.add(f"{source}.{alias.name}")
                elif source in modules:
                    found.add(source)
        else:
            visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_files(root, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (``[a, b, ..., a]``) per group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongly_connected(v: str) -> None:  # Tarjan; the graph is a few hundred nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongly_connected(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongly_connected(v)
    return [_shortest_cycle(graph, group) for group in sorted(groups)]


def _shortest_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"{group} is not a cycle")


def _cycles_text(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in cycles)


# ---------------------------------------------------------------------------------------------
# The package


def test_no_import_cycle_among_ce_lab_modules():
    graph = import_graph(ROOT, "ce_lab")
    assert len(graph) > 50 and "ce_lab.losses.registry" in graph["ce_lab.losses.classic"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles among ce_lab modules:\n" + _cycles_text(cycles)


def test_safe_io_is_a_leaf():
    """Every module may use safe I/O without a cycle: of ce_lab it imports only the exceptions,
    which import nothing."""
    graph = import_graph(ROOT, "ce_lab")
    assert graph["ce_lab.safe_io"] == {"ce_lab.errors"}
    assert graph["ce_lab.errors"] == set()


def test_the_loss_registry_imports_no_loss():
    graph = import_graph(ROOT, "ce_lab")
    assert not {m for m in graph["ce_lab.losses.registry"] if m.startswith("ce_lab.losses")}


def test_no_module_is_over_400_lines():
    lengths = {str(p.relative_to(ROOT)): p.read_bytes().count(b"\n")
               for p in module_files(ROOT, "ce_lab").values()}
    over = {path: n for path, n in lengths.items() if n > MAX_LINES}
    unexpected = {p: n for p, n in over.items() if p not in OVER_THE_LIMIT}
    assert not unexpected, f"modules over {MAX_LINES} lines: {unexpected}"
    back_under = sorted(set(OVER_THE_LIMIT) - set(over))
    assert not back_under, f"{back_under} no longer over {MAX_LINES} lines: remove from OVER_THE_LIMIT"


MAX_CLASS_LINES = 200


def long_classes(source: str, limit: int = MAX_CLASS_LINES) -> dict[str, int]:
    """The classes (at any depth) of ``source`` longer than ``limit`` lines, with their lengths."""
    return {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.ClassDef) and n.end_lineno - n.lineno + 1 > limit}


def test_no_class_is_over_200_lines():
    over = {f"{p.relative_to(ROOT)}:{name}": n for p in module_files(ROOT, "ce_lab").values()
            for name, n in long_classes(p.read_text(encoding="utf-8")).items()}
    assert not over, f"classes over {MAX_CLASS_LINES} lines: {over}"


def test_the_class_check_counts_a_class_s_whole_body():
    source = "class Small:\n    x = 1\n\nclass Big:\n" + "    y = 1\n" * 5 + "\ndef f(): pass\n"
    assert long_classes(source, limit=5) == {"Big": 6}
    assert long_classes(source, limit=6) == {}


# ---------------------------------------------------------------------------------------------
# The checker itself, on a small package written here


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


HARMLESS = {
    "pkg/__init__.py": "",
    "pkg/a.py": "from pkg import b\n",  # pkg.b is a module: an edge to it, not to pkg
    "pkg/b.py": ("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from pkg.a import thing\n"),  # never runs
    # a package importing its submodules, which import each other by their full names
    "pkg/sub/__init__.py": "from pkg.sub.one import x\nfrom .two import y\n",
    "pkg/sub/one.py": "import pkg.sub.two\nx = 1\n",
    "pkg/sub/two.py": "y = 2\n",
}


def test_the_checker_finds_no_cycle_where_there_is_none(tmp_path):
    _write_package(tmp_path, HARMLESS)
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": set(),
                     "pkg.sub": {"pkg.sub.one", "pkg.sub.two"}, "pkg.sub.one": {"pkg.sub.two"},
                     "pkg.sub.two": set()}
    assert find_cycles(graph) == []


@pytest.mark.parametrize(("files", "cycle"), [
    # an import inside a function closes the loop a -> b -> a
    ({"pkg/b.py": "def f():\n    from pkg.a import thing\n"}, ["pkg.a", "pkg.b", "pkg.a"]),
    # a relative import, in an else branch of TYPE_CHECKING (which runs)
    ({"pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n"
                  "else:\n    from . import a\n"}, ["pkg.a", "pkg.b", "pkg.a"]),
    # a submodule asking its package's __init__ for a name the __init__ imports from it
    ({"pkg/sub/two.py": "from pkg.sub import x\ny = 2\n"},
     ["pkg.sub", "pkg.sub.two", "pkg.sub"]),
])
def test_a_planted_cycle_is_found_and_printed(tmp_path, files, cycle):
    _write_package(tmp_path, HARMLESS | files)
    cycles = find_cycles(import_graph(tmp_path, "pkg"))
    assert cycles == [cycle]
    assert _cycles_text(cycles) == " -> ".join(cycle)
