"""Rich tables that stay readable in a narrow terminal or an 80-column pipe.

rich squeezes a table that is wider than the console by wrapping its cells, down to one word a
line, numbers included. Instead: a table that fits is shown as it is; one that fits once a few of
its last columns are dropped is shown without them, with a note naming them; any other is shown
as records, one block per row with a ``header: value`` line per column. No cell is ever wrapped.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ce_lab.render.fast_table import copy_cells, fast_width, print_fast

# Dropping columns is the answer only while most of the table is left: past this share, records.
MAX_DROPPED_SHARE = 1 / 3


def natural_width(table: Table) -> int:
    """The width the table takes with no cell wrapped."""
    quick = fast_width(table)  # a long plain table: its cells measured once, not through rich
    if quick is not None:
        return quick
    wide = Console(width=100_000, file=None, color_system=None)
    return Measurement.get(wide, wide.options, table).maximum


def _text(renderable: object) -> str:
    return renderable.plain if isinstance(renderable, Text) else str(renderable)


def _rows(table: Table) -> list[list[str]]:
    columns = [[_text(c) for c in col.cells] for col in table.columns]
    return [list(row) for row in zip(*columns)]


def _copy(table: Table, keep: int) -> Table:
    out = Table(title=table.title, caption=table.caption, show_lines=table.show_lines,
                box=table.box, show_header=table.show_header)
    for col in table.columns[:keep]:
        out.add_column(col.header, justify=col.justify, no_wrap=True)
    copy_cells(table, out, keep)  # every row at once: fit copies tables of 10,000 rows
    return out


def _header(col) -> str:
    return " ".join(_text(col.header).split())


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Prose wrapped at spaces only: a word (``0.9512``, ``optim.lr=0.05``, ``2/2``) is never
    split, and a line that fits is left whole."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [text]


def as_records(table: Table, width: int = 80, keep: int = 1) -> RenderableType:
    """One block per row: its first ``keep`` cells as the block's title (``ce optim.lr=0.1``),
    then ``header: value`` lines (a multi-line cell on one line, its lines joined by " / "; a
    longer line wraps at spaces)."""
    lines: list[tuple[str, str]] = []  # (text, style)
    if table.title:
        lines.append((_text(table.title), "bold"))
    headers = [_header(c) for c in table.columns]
    for row in _rows(table):
        cells = [" ".join(c.split()) for c in row]
        title = [cells[0], *(f"{h}={c}" for h, c in zip(headers[1:keep], cells[1:keep]))]
        lines.append(("", ""))
        lines.append((" ".join(title), "bold"))
        for h, cell in zip(headers[keep:], row[keep:]):
            line = f"  {h}: {' / '.join(cell.splitlines())}"
            lines.extend((part, "") for part in _wrap(line, width, "      "))
    if table.caption:
        lines.extend((part, "dim") for part in _wrap(_text(table.caption), width))
    return Group(*(Text(text, style=style, overflow="ignore") for text, style in lines))


def fit(table: Table, width: int, keep: int = 1,
        hint: str = "see --format csv or a wider terminal") -> list[RenderableType]:
    """``table`` made to fit ``width`` columns without wrapping a cell (see the module's doc);
    ``keep``: how many leading columns identify a row and are never dropped; ``hint``: where the
    dropped columns can be seen, for the note."""
    if natural_width(table) <= width:
        return [table]
    n = len(table.columns)
    least = max(keep + 1, n - int(n * MAX_DROPPED_SHARE))
    # The most leading columns that fit. A table only narrows as columns are dropped, so bisect:
    # trying every count from n - 1 down measured a copy of the table each time, which made a
    # table of thousands of columns (one per threshold) quadratic.
    lo, hi = least, n - 1
    if lo > hi:
        return [as_records(table, width, keep)]
    if natural_width(_copy(table, hi)) > width:  # most often dropping the last one is enough
        if lo == hi or natural_width(_copy(table, lo)) > width:
            return [as_records(table, width, keep)]
        hi -= 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if natural_width(_copy(table, mid)) <= width:
                lo = mid
            else:
                hi = mid - 1
    else:
        lo = hi
    dropped = ", ".join(_header(c) for c in table.columns[lo:])
    note = _wrap(f"(not shown at this width: {dropped}; {hint})", width)
    return [_copy(table, lo), Text("\n".join(note), style="dim", overflow="ignore")]


def print_fitted(console: Console, renderables: Iterable[RenderableType], keep: int = 1,
                 **fit_kwargs) -> None:
    """Print each renderable, tables fitted to ``console``'s width."""
    for r in renderables:
        if isinstance(r, Table):
            for part in fit(r, console.width, keep, **fit_kwargs):
                if not (isinstance(part, Table) and print_fast(console, part)):
                    console.print(part, soft_wrap=not isinstance(part, Table))
        else:
            console.print(r)
