"""``ce-lab entropy P1 P2 ...``: the entropy of a distribution, and its maximum."""

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

# Negative numbers must reach the validator (and its one-line message), not be taken for options.
NUMBERS_CONTEXT = {"ignore_unknown_options": True}


@cli_errors
def entropy(
    values: Annotated[
        list[str],
        typer.Argument(metavar="P1 P2 ...", show_default=False,
                       help="The probabilities, e.g. 0.7 0.1 0.1 0.1 (also 0.7,0.1,0.1,0.1; "
                            "fractions such as 1/3 are accepted)."),
    ],
    normalize: NormalizeOpt = False,
    tolerance: ToleranceOpt = 1e-6,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Entropy H(p) = -Σ p_i log p_i in bits and nats, and the maximum for that many outcomes."""
    from ce_lab.theory.information import entropy_report, parse_values

    check_tolerance(tolerance)
    for v in values:  # unknown options arrive here too, so that -0.1 is a (negative) value
        if v.startswith("--"):
            raise UsageError(f"no such option: {v}")
    r = entropy_report(parse_values(values, "entropy"), normalize=normalize,
                       tolerance=tolerance)
    if format_ is OutputFormat.json:
        emit_json(r.to_dict())
        return
    from ce_lab.theory.render import render_entropy

    render_entropy(r, console)
