"""report.html: a comparison as one self-contained, interactive page (docs/report.md).

It opens from the file system with no network and no server: the plotting library, the style
sheet and the few lines of script that sort the tables are all inlined.

Why plotly: it is a well-kept library (plotly.py, MIT) whose figures carry hover values, legend
toggles (a click on a loss hides its mean, band and seeds together), zoom and log axes with no code
of ours, and it inlines its whole JavaScript with one call (``get_plotlyjs()``, about 4.8 MB, the
bulk of the page); the data travel as base64 typed arrays, so a 4-loss, 3-seed comparison adds a
few hundred KB. Altair/Vega-Lite inline a smaller runtime but would need three more packages, and
hand-written SVG would have none of the interaction. plotly is imported only when a page is
written (never by ``import ce_lab`` or ``ce-lab --help``).

- ``page``: the page's frame, style and sorting script
- ``setting``: the paragraph on what was compared and how (rates tuned or shared, seeds, data)
- ``figures``: the interactive curves, sensitivity and reliability diagrams
- ``tables``: the shown and paired tables, the configs that differ, the runs with links
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ce_lab.comparison.build import ComparisonTable
    from ce_lab.comparison.paired import PairedDiff
    from ce_lab.comparison.tuning import Tuning
    from ce_lab.render.style import LossStyle


def render_html(title: str, table: ComparisonTable, diffs: Sequence[PairedDiff],
                reference: str | None, skipped: Sequence[str], comp_dir: Path,
                tuning: Tuning | None = None, styles: Mapping[str, LossStyle] | None = None) -> str:
    """The page's text (write it with ``ce_lab.safe_io.atomic_write_text``)."""
    from ce_lab.render.html.page import render_page

    return render_page(title, table, diffs, reference, skipped, Path(comp_dir), tuning, styles)
