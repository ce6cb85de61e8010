"""The comparison as GitHub Markdown: the shown tables (lines joined by <br>) and the paired table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ce_lab.comparison.build import ComparisonTable
from ce_lab.comparison.paired import PairedDiff
from ce_lab.render.cells import (
    ONE_SEED,
    PAIRED_TITLE,
    paired_cells,
    paired_headers,
    paired_note,
    shown_tables,
    shows_paired,
)
from ce_lab.shown import printable


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_markdown(table: ComparisonTable, diffs: Sequence[PairedDiff] = (),
                reference: str | None = None) -> str:
    """The shown tables and the paired differences as GitHub Markdown."""
    parts = []
    for name, cols in shown_tables(table):
        parts.append(f"**{name}**\n\n" + md_table(
            [" ".join(c.header) for c in cols],
            (["<br>".join(c.cell(row)) for c in cols] for row in table.rows),
        ))
    text = "\n".join(parts)
    if table.aggregated:
        text += "\nmean ± sample std over seeds; n runs per row.\n"
    if diffs and not shows_paired(diffs):
        text += f"\n{ONE_SEED}.\n"
    elif diffs:
        headers = paired_headers(diffs)
        text += f"\n**{PAIRED_TITLE}: loss - {printable(reference)}** ({paired_note(diffs)})\n\n"
        text += md_table(headers, (paired_cells(d, "vs" in headers) for d in diffs))
    return text
