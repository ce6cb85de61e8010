"""One look per loss, shared by every plot of a comparison (static PNGs and report.html).

A loss keeps its colour, dash and marker in every figure of one comparison, so a reader who
learns "mse is orange, dashed" on the accuracy plot can find mse on the gradient plot without
reading the legend again. Dashes and markers differ as well as colours so that two curves that
coincide (ce and nll-manual are identical until one diverges) stay visible, and so the plots
survive greyscale printing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# matplotlib's tab10 (also plotly's "D3" palette): the default colours people already know.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# Matplotlib dash names; report.html maps them to plotly's names of the same pattern.
DASHES = ("solid", "dashed", "dashdot", "dotted")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class LossStyle:
    color: str
    dash: str
    marker: str


def loss_styles(names: Sequence[str]) -> dict[str, LossStyle]:
    """A style per distinct name, in order of first appearance.

    The dash cycles faster than the colour repeats, so the 11th loss (tab10 wraps) still differs
    from the 1st by its dash."""
    styles: dict[str, LossStyle] = {}
    for name in names:
        if name in styles:
            continue
        i = len(styles)
        styles[name] = LossStyle(COLORS[i % len(COLORS)], DASHES[i % len(DASHES)],
                                 MARKERS[i % len(MARKERS)])
    return styles
