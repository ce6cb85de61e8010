"""The two consoles every command prints to, and ``fail``: one red line on stderr. Apart from
``_common`` so that modules it imports (``hints``) can fail too without an import cycle."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from ce_lab.shown import printable

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line on stderr; return the Exit to raise."""
    # One line, whatever the message held, with no control character (a name from disk may
    # carry an escape sequence).
    first = printable(" ".join(str(message).split()))
    err_console.print(f"[red]error:[/red] {escape(first)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)
