"""ce_lab/render/fit.py: tables that fit an 80-column pipe without wrapping a number (what
``ce-lab runs`` and ``compare`` print through it: tests/cli/test_runs.py)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from ce_lab.render.fit import fit, natural_width, print_fitted

# --- fitting a table to the width ----------------------------------------------------------------

def _table(n_cols: int, n_rows: int = 3) -> Table:
    t = Table(title="t")
    t.add_column("label")
    for c in range(1, n_cols):
        t.add_column(f"column {c}", justify="right")
    for r in range(n_rows):
        t.add_row(f"row-{r}", *(f"{1234.5678 * (r + 1) * c:.4f}" for c in range(1, n_cols)))
    return t


def _render(parts) -> str:
    buf = io.StringIO()
    print_fitted(Console(file=buf, width=80, color_system=None), parts)
    return buf.getvalue()


def test_a_table_that_fits_is_left_as_it_is():
    t = _table(3)
    assert natural_width(t) <= 80 and fit(t, 80) == [t]


def test_a_slightly_wide_table_drops_its_last_columns_with_a_note():
    t = _table(7)
    assert natural_width(t) > 80
    text = _render([t])
    assert "(not shown at this width: column 6" in text
    assert all(len(line) <= 80 for line in text.splitlines() if "not shown" not in line)
    for r in range(3):  # every number shown is whole, on one line
        assert f"{1234.5678 * (r + 1) * 1:.4f}" in text


def test_a_much_wider_table_becomes_records_and_never_wraps_a_number():
    t = _table(14)
    text = _render([t])
    assert "row-1" in text and "  column 13: " in text
    for r in range(3):
        for c in range(1, 14):
            value = f"{1234.5678 * (r + 1) * c:.4f}"
            assert f"  column {c}: {value}" in text.splitlines()


# --- which columns go first ----------------------------------------------------------------------


def _ranked(importance: list[int]):
    from ce_lab.render.fit import RankedTable

    t = RankedTable(title="t")
    t.add_column("label")
    for c, k in enumerate(importance, start=1):
        t.add_column(f"column {c}", justify="right", importance=k)
    for r in range(3):
        t.add_row(f"row-{r}", *(f"{1234.5678 * (r + 1) * c:.4f}" for c in range(1, 7)))
    return t


def test_a_ranked_table_drops_its_least_important_columns_first_and_names_them():
    t = _ranked([3, 0, 3, 1, 0, 3])  # columns 2 and 5 matter least (5, the rightmost, first)
    assert natural_width(t) == 85
    parts = fit(t, 80)  # one column less is enough
    assert [c.header for c in parts[0].columns] == [
        "label", "column 1", "column 2", "column 3", "column 4", "column 6"]
    assert parts[1].plain.startswith("(not shown at this width: column 5; ")
    parts = fit(t, 70)  # two
    assert [c.header for c in parts[0].columns] == [
        "label", "column 1", "column 3", "column 4", "column 6"]
    assert parts[1].plain.startswith("(not shown at this width: column 2, column 5; ")
    text = _render([t])
    assert "column 6" in text and all(len(line) <= 80 for line in text.splitlines())
    # equal importance: the rightmost first, as a plain Table
    same = fit(_ranked([1] * 6), 80)
    assert [c.header for c in same[0].columns] == [c.header for c in fit(_table(7), 80)[0].columns]


def test_a_ranked_table_that_fits_is_printed_as_it_is():
    t = _ranked([3, 0, 3, 1, 0, 3])
    assert fit(t, 200) == [t]
    wide = io.StringIO()
    Console(file=wide, width=200, color_system=None).print(t)
    assert _render_at(t, 200) == wide.getvalue()  # byte for byte what rich prints


def _render_at(t, width: int) -> str:
    buf = io.StringIO()
    print_fitted(Console(file=buf, width=width, color_system=None), [t])
    return buf.getvalue()
