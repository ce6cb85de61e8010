"""The comparison as rich Tables for the terminal (multi-line cells keep them narrow)."""

from __future__ import annotations

from collections.abc import Sequence

from ce_lab.comparison.build import ComparisonTable
from ce_lab.comparison.paired import PairedDiff
from ce_lab.render.cells import (
    PAIRED_IMPORTANCE,
    PAIRED_TITLE,
    paired_cells,
    paired_headers,
    paired_note,
    shown_tables,
)
from ce_lab.shown import rich_cell


def to_rich(table: ComparisonTable, title: str = "comparison") -> list:
    """The shown tables as rich Tables."""
    from rich.markup import escape

    from ce_lab.render.fit import RankedTable

    caption = "mean ± sample std over seeds; n runs per row" if table.aggregated else None
    out = []
    for name, cols in shown_tables(table):
        t = RankedTable(title=f"{title}: {name}", caption=caption, show_lines=True)
        for c in cols:
            t.add_column(escape("\n".join(c.header)), justify="right" if c.numeric else "left",
                         importance=c.importance)
        for row in table.rows:  # text, not markup (labels come from run folders); lines printable
            t.add_row(*(escape("\n".join(c.cell(row))) for c in cols))
        out.append(t)
    return out


def paired_to_rich(diffs: Sequence[PairedDiff], reference: str):
    from ce_lab.render.fit import RankedTable

    headers = paired_headers(diffs)
    out = RankedTable(title=f"{PAIRED_TITLE}: loss - {rich_cell(reference)}",
                      caption=paired_note(diffs))
    for h in headers:
        out.add_column(h, justify="left" if h in ("loss", "vs", "metric", "verdict") else "right",
                       importance=PAIRED_IMPORTANCE.get(h, 9))
    for d in diffs:
        out.add_row(*(rich_cell(c) for c in paired_cells(d, "vs" in headers)))
    return out
