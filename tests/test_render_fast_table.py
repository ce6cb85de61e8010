"""ce_lab/render/fast_table.py: a long plain table drawn to the very bytes rich draws, the
fitting (columns dropped, records) decided as rich's measurement decides it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from ce_lab.render import fast_table
from ce_lab.render.fit import natural_width, print_fitted


def _table(rows: int = 50, title: str = "50 of 60 runs under /tmp/a folder/runs") -> Table:
    """A table like ``ce-lab runs``': text and numbers, wide characters, escaped markup, emoji
    codes, a dash for a missing value, left and right columns."""
    t = Table(title=title, box=None)
    for name, right in (("run", False), ("loss", False), ("optim.lr", True), ("status", False),
                        ("seed", True), ("val acc", True), ("group", False)):
        t.add_column(name, justify="right" if right else "left")
    for i in range(rows):
        t.add_row(f"20261120-{i:06d}-ce-{i:04x}", ("ce", "double-softmax", "mse")[i % 3],
                  ("0.1", "0.316", "1")[i % 3],
                  "completed (stalled)" if i % 7 == 0 else "diverged",
                  str(i), f"{0.9 + i / 1000:.4f}",
                  ("—", r"cmp-\[x]:y", "グループ", ":smile: g")[i % 4])
    return t


def _drawn(table: Table, width: int, fast: bool, colour: bool, monkeypatch) -> str:
    monkeypatch.setattr(fast_table, "FAST_ROWS", 10 if fast else 10 ** 9)
    buf = io.StringIO()
    console = (Console(file=buf, width=width, force_terminal=True, color_system="truecolor")
               if colour else Console(file=buf, width=width, color_system=None))
    print_fitted(console, [table])
    return buf.getvalue()


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("width", [40, 70, 80, 95, 200])
def test_a_long_table_is_drawn_byte_for_byte_as_rich_draws_it(width, colour, monkeypatch):
    # 40: records; 70, 80: trailing columns dropped with a note; 95, 200: the whole table.
    rich_drawn = _drawn(_table(), width, fast=False, colour=colour, monkeypatch=monkeypatch)
    fast_drawn = _drawn(_table(), width, fast=True, colour=colour, monkeypatch=monkeypatch)
    assert fast_drawn == rich_drawn
    assert rich_drawn.count("\n") > 50


def test_the_fast_path_draws_the_rows_and_measures_as_rich(monkeypatch):
    monkeypatch.setattr(fast_table, "FAST_ROWS", 10)
    table = _table()
    assert fast_table.fast_width(table) == natural_width(table)
    buf = io.StringIO()
    assert fast_table.print_fast(Console(file=buf, width=200, color_system=None), table)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 52 and "cmp-[x]:y" in lines[3] and "グループ" in lines[4]


def test_short_tables_and_styled_cells_are_left_to_rich(monkeypatch):
    console = Console(file=io.StringIO(), width=200, color_system=None)
    assert fast_table.FAST_ROWS >= 50
    assert not fast_table.print_fast(console, _table(50))  # an ordinary table: rich as ever
    assert fast_table.fast_width(_table(50)) is None
    monkeypatch.setattr(fast_table, "FAST_ROWS", 10)
    styled = _table()
    styled.add_row("[red]x[/red]", *["y"] * 6)  # a style of its own: rich draws it
    assert not fast_table.print_fast(console, styled)
    for odd in ("two\nlines", " spaced", "tab\there", "nul\0"):  # rich's own wrapping/spacing
        other = _table()
        other.add_row(odd, *["y"] * 6)
        assert not fast_table.print_fast(console, other), odd
    boxed = Table("a", title="boxed")
    for i in range(20):
        boxed.add_row(str(i))
    assert not fast_table.print_fast(console, boxed)
    assert console.file.getvalue() == ""  # nothing drawn when it says no
