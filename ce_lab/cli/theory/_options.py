"""What the theory commands share: the --format, --normalize and --tolerance options, JSON."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ce_lab.errors import UsageError


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", show_default=False,
                 help='table or json (default table). JSON writes non-finite numbers as the '
                      'strings "inf", "-inf", "nan".'),
]
NormalizeOpt = Annotated[
    bool,
    typer.Option("--normalize", help="Divide the values by their sum instead of refusing values "
                 "that do not sum to 1 (default: refuse)."),
]
ToleranceOpt = Annotated[
    float,
    typer.Option("--tolerance", show_default=False,
                 help="How far from 1 a sum may be, in [0, 1) (default 1e-6)."),
]


def emit_json(payload: dict) -> None:
    from ce_lab.theory.jsonsafe import dumps

    typer.echo(dumps(payload))


def check_tolerance(tolerance: float) -> None:
    # A tolerance of 1 or more would pass values that are no distribution (negative entropy).
    if not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance must lie in [0, 1), not {tolerance:g}")
