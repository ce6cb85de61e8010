"""``ce-lab saturation``: |d loss / d logit| against how right the prediction already is."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console
from ce_lab.cli.choices import shown
from ce_lab.cli.theory._options import FormatOpt, OutputFormat, emit_json
from ce_lab.errors import UsageError
from ce_lab.theory.saturation import DEFAULT_PROBS


@cli_errors
def saturation(
    probs: Annotated[
        str | None,
        typer.Option("--probs", metavar="P1,P2,...", show_default=False,
                     help="Predicted probabilities of the true class for the table rows, "
                          "comma-separated, each in (0, 1) (default "
                          f"{','.join(map(shown, DEFAULT_PROBS[:4]))},...,"
                          f"{','.join(map(shown, DEFAULT_PROBS[-4:]))})."),
    ] = None,
    hinge_margin: Annotated[
        float, typer.Option("--hinge-margin", show_default=False, help="The hinge margin m (default 1.0).")
    ] = 1.0,
    collapse: Annotated[
        float,
        typer.Option("--collapse", show_default=False,
                     help="Mark MSE's gradient as collapsed below this fraction of its maximum "
                          "(default 0.1)."),
    ] = 0.1,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", show_default=False,
                     help="PNG to write (default saturation.png; a suffix such as .svg or .pdf "
                          "picks that format)."),
    ] = Path("saturation.png"),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write the PNG.")] = False,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """|d loss / d logit| of one output unit against the predicted probability of the true class.

    One unit with logit z and p = sigmoid(z), true label 1; gradients by autograd (float64)
    through ce-lab's own losses: mse (on sigmoid), bce, ce (softmax over the logits 0 and z) and
    hinge (margin m on z). Marks where MSE + sigmoid's gradient collapses; writes a PNG plot.
    """
    from ce_lab.theory.information import parse_values
    from ce_lab.theory.saturation import plot as plot_saturation
    from ce_lab.theory.saturation import saturation as compute

    if not (hinge_margin > 0 and math.isfinite(hinge_margin)):
        raise UsageError(f"--hinge-margin must be a positive finite number, not {hinge_margin:g}")
    if not 0 < collapse < 1:
        raise UsageError(f"--collapse must lie in (0, 1), not {collapse:g}")
    if not no_plot:
        output = _plot_path(output)
    grid = parse_values([probs], "--probs") if probs is not None else DEFAULT_PROBS
    r = compute(grid, hinge_margin=hinge_margin, collapse_fraction=collapse)
    plot_path = None if no_plot else plot_saturation(r, output)

    if format_ is OutputFormat.json:
        emit_json({**r.to_dict(), "plot": None if plot_path is None else str(plot_path)})
        return
    from ce_lab.theory.render import render_saturation

    render_saturation(r, console, plot_path)


def _plot_path(output: Path) -> Path:
    """The file the plot really goes to: matplotlib adds .png to a name without a suffix."""
    if str(output).strip() in ("", ".") or output.name in ("", ".", ".."):
        raise UsageError(f"--output must name a file, not {str(output)!r}")
    if not output.suffix:
        return output.with_name(output.name + ".png")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if output.suffix[1:].lower() not in formats:
        raise UsageError(f"--output {output}: cannot write a {output.suffix} file; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return output
