"""Text from disk or from the user, made safe to show: the one place that decides how.

``printable`` (``rich_cell`` for rich markup): what a renderer (a table, a CSV on stdout, a
one-line message) shows of a string read from a run folder. A ``run_id``, ``loss`` or ``group``
in a planted meta.json can hold an escape sequence (ESC ``[2J`` clears the screen, OSC 8 makes
links, a bidi override reorders what follows); each such character is shown escaped, as Python
writes it (``\\x1b``), never sent.

``capped`` / ``quoted``: a value echoed back in an error line, cut to its first
``MAX_SHOWN`` characters with its length (a 10,000-character batch name is not echoed whole).

Plain Python (rich only inside ``rich_cell``), importing nothing of ce_lab, so any module may
use it.
"""

from __future__ import annotations

from typing import Any

MAX_SHOWN = 100  # characters of a value echoed in a message


def _escaped(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: Any) -> str:
    """``text`` (made a str) with every character that is not printable escaped: control
    characters (ESC, BEL, CR, newlines, DEL, the C1 range), format characters (bidi overrides,
    zero-width ones) and line separators. Printable text comes back unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def rich_cell(text: Any) -> str:
    """``printable(text)`` with rich's markup escaped: for a rich table cell or a markup line,
    where ``[link=...]`` in a name from disk would otherwise become an escape sequence too."""
    from rich.markup import escape

    text = printable(text)
    # escape changes only a "[" and a trailing backslash: most cells have neither (a listing
    # of 10,000 runs makes 40,000 of them)
    return text if "[" not in text and not text.endswith("\\") else escape(text)


def capped(text: Any, limit: int = MAX_SHOWN) -> str:
    """``text`` (made a str, made printable), or its first ``limit`` characters and how long it is:
    ``aaaa… (10,000 characters)``."""
    text = str(text)
    if len(text) <= limit:
        return printable(text)
    return f"{printable(text[:limit])}… ({len(text):,} characters)"


def quoted(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` as a message echoes it, capped as ``capped`` caps: ``'aaaa'…
    (10,000 characters)`` for a long string."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit + 2 else f"{text[:limit]}… ({len(text):,} characters)"
