"""Long plain tables drawn without rich's per-cell layout, to the same bytes rich draws.

rich lays a table out by measuring every cell (through a Padding and a Text each) and draws it by
rendering every cell again: 10,000 rows of ``ce-lab runs`` took ~12 s, and fitting the table to
the terminal measured it twice more. A table of one-line text cells with no box, no style and the
default padding is simple enough to draw directly: each column as wide as its widest cell plus one
space each side, each cell padded to that width. For such a table with more than ``FAST_ROWS`` rows
the title and header are still drawn by rich (a copy of the table with the measured widths fixed
and no rows), and the rows as plain lines. Any other table, and every short one, is left to rich,
so what ordinary tables look like does not depend on this module; tests/test_render_fit.py checks
that its rows are byte for byte rich's, in colour and without.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment, Segments
from rich.table import Row, Table
from rich.text import Text

# Below this many rows rich draws the table, as it always did (it is fast enough there).
FAST_ROWS = 200


def _plain(console: Console, cell: object) -> str | None:
    """The text a str cell shows (markup and emoji codes applied), or None when rich would give
    it a style, a second line or spacing of its own: then rich draws the table."""
    if not isinstance(cell, str):
        return None
    text = cell
    if "[" in cell or ":" in cell:
        rendered = console.render_str(cell, highlight=False)
        if rendered.spans or rendered.style:
            return None
        text = rendered.plain
    if not text.isprintable() or text != text.strip():
        return None
    return text


def _simple(table: Table) -> bool:
    """A table whose rows are drawn as plain padded cells: no box, lines, styles or widths set."""
    if (table.box is not None or table.show_lines or table.leading or table.show_footer
            or table.expand or table.width is not None or table.min_width is not None
            or table.row_styles or table.caption or not table.pad_edge or table.collapse_padding
            or Padding.unpack(table.padding) != (0, 1, 0, 1) or (table.style or "none") != "none"):
        return False
    return all(not c.style and c.justify in ("left", "right") and c.width is None
               and c.min_width is None and c.max_width is None and c.ratio is None
               and not c.highlight for c in table.columns) and all(
        r.style is None and not r.end_section for r in table.rows)


def _cells(console: Console, table: Table) -> list[list[str]] | None:
    """Every column's cells as shown, or None if one is not plain (see ``_plain``)."""
    columns = []
    for column in table.columns:
        cells = column._cells
        # The cells joined by a character no printable cell holds, checked at once.
        text = "\0".join(cells) if set(map(type, cells)) <= {str} else "["
        if not ("[" in text or ":" in text or " \0" in text or "\0 " in text
                or text[:1] == " " or text[-1:] == " " or text.count("\0") != len(cells) - 1
                or not text.replace("\0", "").isprintable()):
            columns.append(cells)  # all plain text: shown as it is (the checks of _plain, at once)
            continue
        shown = [_plain(console, c) for c in cells]
        if None in shown:
            return None
        columns.append(shown)
    return columns


def _layout(table: Table, console: Console | None = None) -> tuple[list[int], list[list[str]]] | None:
    """(each column's content width, its cells) of a long simple table, else None."""
    if len(table.rows) <= FAST_ROWS or not table.columns or not _simple(table):
        return None
    console = console or Console(width=100_000, file=None, color_system=None)
    columns = _cells(console, table)
    if columns is None:
        return None
    wide = Console(width=100_000, file=None, color_system=None)
    widths = []
    for column, cells in zip(table.columns, columns):
        header = Measurement.get(wide, wide.options, column.header).maximum if table.show_header else 0
        # Printable ASCII takes one cell a character: len, in C, instead of cell_len per cell.
        widths.append(max(header, max(map(len if _ascii(cells) else cell_len, cells), default=0)))
    return widths, columns


def _ascii(cells: list[str]) -> bool:
    return "".join(cells).isascii()


def copy_cells(source: Table, target: Table, columns: Sequence[int]) -> None:
    """Fill ``target``'s columns (``source``'s at the indices ``columns``, added already) with
    ``source``'s cells as plain text, every row at once: what ``add_row`` row by row does, without
    its cost per row (``fit`` copies a table of 10,000 rows a few times while it bisects)."""
    for src, dst in zip((source.columns[i] for i in columns), target.columns):
        dst._cells = [c.plain if isinstance(c, Text) else str(c) for c in src._cells]
    target.rows = [Row() for _ in source.rows]


def fast_width(table: Table) -> int | None:
    """The width rich measures for a long simple table (every column's widest cell plus its
    padding), without rich measuring each cell; None for any other table."""
    layout = _layout(table)
    return None if layout is None else sum(w + 2 for w in layout[0])


def _head(table: Table, widths: list[int]) -> Table:
    """The table's title and header alone, its columns fixed at ``widths``."""
    head = Table(title=table.title, box=None, show_header=table.show_header,
                 title_style=table.title_style, title_justify=table.title_justify,
                 header_style=table.header_style)
    for column, width in zip(table.columns, widths):
        head.add_column(column.header, justify=column.justify, no_wrap=column.no_wrap,
                        header_style=column.header_style, width=width)
    return head


def _padded(cells: list[str], width: int, justify: str) -> list[str]:
    """A column's cells with their padding: one space each side, the rest on the side away from
    ``justify``."""
    if _ascii(cells):
        return [f" {c.ljust(width)} " for c in cells] if justify == "left" else [
            f" {c.rjust(width)} " for c in cells]
    gaps = [" " * (width - cell_len(c)) for c in cells]
    return [f" {c}{g} " for c, g in zip(cells, gaps)] if justify == "left" else [
        f" {g}{c} " for c, g in zip(cells, gaps)]


def print_fast(console: Console, table: Table) -> bool:
    """Draw a long simple table (see the module's doc) and say True; False (nothing drawn) for
    any other table, which the caller prints with rich. Only for a table that fits the console."""
    layout = _layout(table, console)
    if layout is None or sum(w + 2 for w in layout[0]) > console.width:
        return False
    widths, columns = layout
    if table.title or table.show_header:
        console.print(_head(table, widths))
    padded = [_padded(cells, width, column.justify)
              for cells, width, column in zip(columns, widths, table.columns)]
    line = Segment.line()
    lines = [part for row in zip(*padded) for part in (Segment("".join(row)), line)]
    console.print(Segments(lines), crop=False)
    return True
