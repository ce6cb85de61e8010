"""``ce-lab xent --p ... --q ...`` (or ``--binary Y P``): cross-entropy = entropy + KL."""

from __future__ import annotations

from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console
from ce_lab.cli.theory._options import (
    FormatOpt,
    NormalizeOpt,
    OutputFormat,
    ToleranceOpt,
    check_tolerance,
    emit_json,
)
from ce_lab.errors import UsageError


@cli_errors
def xent(
    p: Annotated[
        str | None,
        typer.Option("--p", metavar="P1,P2,...", show_default=False,
                     help="The true distribution p, comma-separated, e.g. --p 1,0,0 or "
                          "--p 0.7,0.1,0.1,0.1 (fractions such as 1/3 work)."),
    ] = None,
    q: Annotated[
        str | None,
        typer.Option("--q", metavar="Q1,Q2,...", show_default=False,
                     help="The predicted distribution q, same outcomes in the same order."),
    ] = None,
    binary: Annotated[
        tuple[str, str] | None,
        typer.Option("--binary", metavar="Y P", show_default=False,
                     help="Two classes instead: label Y (0 or 1, or a soft label in [0, 1]) and "
                          "predicted probability P of class 1; evaluates "
                          "-[Y log P + (1 - Y) log(1 - P)]."),
    ] = None,
    normalize: NormalizeOpt = False,
    tolerance: ToleranceOpt = 1e-6,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Cross-entropy H(p, q), entropy H(p) and KL(p || q), and the check H(p) + KL = H(p, q)."""
    from ce_lab.theory.information import (
        binary_report,
        parse_number,
        parse_values,
        xent_report,
    )

    check_tolerance(tolerance)
    if binary is not None:
        if p is not None or q is not None:
            raise UsageError("give either --p and --q, or --binary Y P, not both")
        r = binary_report(parse_number(binary[0], "--binary Y"),
                          parse_number(binary[1], "--binary P"))
    else:
        if p is None or q is None:
            raise UsageError("give --p and --q (comma-separated probabilities), or --binary Y P")
        r = xent_report(parse_values([p], "--p"), parse_values([q], "--q"),
                        normalize=normalize, tolerance=tolerance)

    if format_ is OutputFormat.json:
        emit_json(r.to_dict())
        return
    from ce_lab.theory.render import render_xent

    render_xent(r, console)
