"""``ce-lab losses``: the registry as a table, and every loss's options with their defaults."""

from __future__ import annotations

from ce_lab.cli._common import console


def losses() -> None:
    """List every loss ce-lab can train with, its formula, and its options (loss.<key>)."""
    from rich.table import Table
    from rich.text import Text

    from ce_lab.losses import LOSSES

    table = Table(title="losses")
    table.add_column("name", style="bold")
    table.add_column("what it computes")
    table.add_column("source")
    for spec in LOSSES.values():
        # plain text: "[...]" is not markup
        table.add_row(spec.name, Text(spec.description), Text(spec.source))
    console.print(table)

    options = Table(title="loss options (set with --set loss.KEY=VALUE or in the config's loss:)")
    options.add_column("loss", style="bold")
    options.add_column("key")
    options.add_column("default")
    options.add_column("what it sets")
    for spec in LOSSES.values():
        for key, field in (spec.options.model_fields if spec.options else {}).items():
            options.add_row(spec.name, f"loss.{key}", Text(str(field.default)),
                            Text(field.description or ""))
    if options.row_count:
        console.print(options)
