"""``ce-lab losses``: the registry as a table."""

from __future__ import annotations

from ce_lab.cli._common import console


def losses() -> None:
    """List every loss ce-lab can train with, and its formula."""
    from rich.table import Table
    from rich.text import Text

    from ce_lab.losses import LOSSES

    table = Table(title="losses")
    table.add_column("name", style="bold")
    table.add_column("what it computes")
    for spec in LOSSES.values():
        table.add_row(spec.name, Text(spec.description))  # plain text: "[...]" is not markup
    console.print(table)
