"""``ce-lab stability``: where each way of computing cross-entropy turns inf, NaN or wrong."""

from __future__ import annotations

from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console
from ce_lab.cli.choices import shown
from ce_lab.cli.theory._options import FormatOpt, OutputFormat, emit_json
from ce_lab.theory.stability import DEFAULT_SCALES


@cli_errors
def stability(
    scales: Annotated[
        str | None,
        typer.Option("--scales", metavar="S1,S2,...", show_default=False,
                     help="Logit scales, comma-separated (default "
                          f"{','.join(map(shown, DEFAULT_SCALES))}). "
                          "The logits are scale * (1, 8/9, ..., 0), so the gap between the "
                          "largest and smallest logit equals the scale."),
    ] = None,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Loss and gradient of five ways to compute cross-entropy, in float32 and float64.

    Each is checked against a float64 log_softmax reference on the same logits and marked where
    it turns inf, NaN, or wrong (off by more than 1e-6 + 1e-4 |reference|). The first failing
    scale of each is then located by bisection.
    """
    from ce_lab.theory import stability as st
    from ce_lab.theory.information import parse_values

    grid = parse_values([scales], "--scales") if scales is not None else st.DEFAULT_SCALES
    r = st.stability(grid)

    if format_ is OutputFormat.json:
        emit_json(r.to_dict())
        return
    from ce_lab.theory.render import render_stability

    render_stability(r, console)
