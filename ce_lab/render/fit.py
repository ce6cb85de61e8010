"""Rich tables that stay readable in a narrow terminal or an 80-column pipe.

rich squeezes a table that is wider than the console by wrapping its cells, down to one word a
line, numbers included. Instead: a table that fits is shown as it is; one that fits once a few of
its columns are dropped is shown without them, with a note naming them; any other is shown as
records, one block per row with a ``header: value`` line per column. No cell is ever wrapped.

Which columns go first: a ``RankedTable`` says how important each column is (the comparison's
columns take it from the metric registry's ``importance``), and the least important go first,
the rightmost of equals first; a plain Table drops its last columns.
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


class RankedTable(Table):
    """A Table whose columns each have an importance (``add_column(..., importance=k)``): when
    it must drop columns to fit, ``fit`` drops the least important first. It prints as a Table."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.importance: list[int] = []

    def add_column(self, *args, importance: int = 0, **kwargs) -> None:
        super().add_column(*args, **kwargs)
        self.importance.append(importance)


def drop_order(table: Table, keep: int) -> list[int]:
    """The indices of the columns that may be dropped, the first to drop first: by importance
    (a RankedTable's; a plain Table's are all equal), the rightmost of equals first."""
    importance = getattr(table, "importance", None) or [0] * len(table.columns)
    return sorted(range(keep, len(table.columns)), key=lambda i: (importance[i], -i))


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


def _copy(table: Table, columns: list[int]) -> Table:
    """The table with only ``columns`` (indices, in table order)."""
    out = Table(title=table.title, caption=table.caption, show_lines=table.show_lines,
                box=table.box, show_header=table.show_header)
    for i in columns:
        col = table.columns[i]
        out.add_column(col.header, justify=col.justify, no_wrap=True)
    copy_cells(table, out, columns)  # every row at once: fit copies tables of 10,000 rows
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
    order = drop_order(table, keep)
    most = n - max(keep + 1, n - int(n * MAX_DROPPED_SHARE))  # columns that may go

    def without(k: int) -> Table:
        gone = set(order[:k])
        return _copy(table, [i for i in range(n) if i not in gone])

    # The fewest columns dropped that fit. A table only narrows as columns are dropped, so bisect:
    # trying every count from 1 up measured a copy of the table each time, which made a table of
    # thousands of columns (one per threshold) quadratic.
    lo, hi = 1, most
    if lo > hi:
        return [as_records(table, width, keep)]
    if natural_width(without(lo)) > width:  # most often dropping one is enough
        if lo == hi or natural_width(without(hi)) > width:
            return [as_records(table, width, keep)]
        lo += 1
        while lo < hi:
            mid = (lo + hi) // 2
            if natural_width(without(mid)) <= width:
                hi = mid
            else:
                lo = mid + 1
    gone = sorted(order[:lo])
    dropped = ", ".join(_header(table.columns[i]) for i in gone)
    note = _wrap(f"(not shown at this width: {dropped}; {hint})", width)
    return [without(lo), Text("\n".join(note), style="dim", overflow="ignore")]


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
