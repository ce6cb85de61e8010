"""report.html's tables: the shown tables, the paired differences, the configs that differ
between the runs, and the runs with links to their folders.

Cells come from the same functions as the terminal and Markdown tables (``ce_lab.render.cells``:
``shown_tables``, ``paired_headers``/``paired_cells``), so a column added there (a new metric, an
adjusted p-value) appears here too. Every text is escaped: run ids, loss and group names and
config values come from run folders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from ce_lab.comparison.build import ComparisonTable, show
from ce_lab.comparison.paired import PairedDiff
from ce_lab.config import flatten
from ce_lab.render.cells import (
    ONE_SEED,
    PAIRED_TITLE,
    paired_cells,
    paired_headers,
    paired_note,
    shown_tables,
    shows_paired,
)
from ce_lab.runs.record import RunRecord

# A run's own path is not a setting it differs in
NOT_SETTINGS = ("out_dir",)


def _lines(lines: Iterable[str]) -> str:
    return "<br>".join(escape(str(x)) for x in lines)


def sortable(headers: Sequence[Sequence[str]], rows: Iterable[Sequence[Sequence[str]]],
             numeric: Sequence[bool] | None = None, caption: str | None = None) -> str:
    """A table whose header cells sort it on click (the page's script); each header and cell
    is a list of lines. ``numeric``: the columns sorted by the number a cell starts with."""
    numeric = numeric or [False] * len(headers)
    out = ['<table class="sortable">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(
        f'<th class="{"num" if n else "txt"}" title="click to sort">{_lines(h)}</th>'
        for h, n in zip(headers, numeric)) + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{"num" if n else "txt"}">{_lines(c)}</td>'
                                    for c, n in zip(row, numeric)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def main_tables(table: ComparisonTable) -> str:
    parts = []
    for name, cols in shown_tables(table):
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(sortable([c.header for c in cols], ([c.cell(r) for c in cols] for r in table.rows),
                              [c.numeric for c in cols]))
    if table.aggregated:
        parts.append("<p class=\"note\">mean ± sample std over seeds; n runs per row.</p>")
    parts += [f'<p class="note">note: {escape(n)}</p>' for n in table.notes]
    return "\n".join(parts)


def seed_count(records: Sequence[RunRecord]) -> int:
    return len({r.seed for r in records if r.seed is not None})


def paired_table(diffs: Sequence[PairedDiff], reference: str | None,
                 records: Sequence[RunRecord]) -> str:
    """The paired differences against ``reference``, with one line instead where they cannot
    have an interval (one seed) or there is no reference."""
    if reference is None:
        return "<p>No paired differences: no reference loss among the runs.</p>"
    if not diffs:
        return "<p>No paired differences: no seed ran both a loss and the reference.</p>"
    if not shows_paired(diffs):  # the console's and report.md's line, word for word
        return f'<p class="one-seed">{escape(ONE_SEED)}.</p>'
    headers = paired_headers(diffs)
    text_cols = {"loss", "vs", "metric", "verdict"}
    rows = ([[c] for c in paired_cells(d, "vs" in headers)] for d in diffs)
    return (f"<h3>{escape(PAIRED_TITLE)}: loss − {escape(reference)}</h3>\n"
            + sortable([[h] for h in headers], rows, [h not in text_cols for h in headers])
            + f'\n<p class="note">{escape(paired_note(diffs))}.</p>')


def run_href(record: RunRecord, comp_dir: Path) -> str:
    """The run folder relative to the page (a link that survives moving the whole tree)."""
    from ce_lab.render.data import relative_path

    rel = Path(relative_path(record.path, comp_dir))
    return quote(rel.as_posix()) + "/" if not rel.is_absolute() else rel.as_uri() + "/"


def run_link(record: RunRecord, comp_dir: Path) -> str:
    return f'<a href="{escape(run_href(record, comp_dir))}">{escape(record.run_id)}</a>'


def differing(records: Sequence[RunRecord]) -> list[str]:
    """The flat config keys whose values are not the same in every run (the seed and the loss
    among them), in config order."""
    flats = [flatten(r.config) for r in records]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [k for k in keys if k not in NOT_SETTINGS
            and len({show(f.get(k)) for f in flats}) > 1]


def configs_table(records: Sequence[RunRecord], comp_dir: Path) -> str:
    keys = differing(records)
    if not keys:
        return "<p>Every run has the same config.</p>"
    head = ['<table class="sortable"><thead><tr><th class="txt">run</th>'
            + "".join(f'<th class="txt">{escape(k)}</th>' for k in keys) + "</tr></thead><tbody>"]
    for r in records:
        flat = flatten(r.config)
        head.append(f'<tr><td class="txt">{run_link(r, comp_dir)}</td>'
                    + "".join(f'<td class="txt">{escape(show(flat.get(k)))}</td>' for k in keys)
                    + "</tr>")
    head.append("</tbody></table>")
    return "\n".join(head)


def runs_list(table: ComparisonTable, comp_dir: Path) -> str:
    items = []
    for row in table.rows:
        for r in row.records:
            items.append(f"<li>{run_link(r, comp_dir)} — {escape(str(r.loss))}, seed "
                         f"{escape(str(r.seed))}, {escape(r.status)}</li>")
    return "<ul>" + "\n".join(items) + "</ul>"


def skipped_list(skipped: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in skipped) + "</ul>"
