"""A newcomer's slips, answered in one line (exit 2) that says what was meant.

Typer would answer ``--loss msee`` with a five-line box listing the choices, and
``--set optim.lr 0.1`` with "unexpected extra argument"; these checks run first and say instead
``did you mean 'mse'?`` or ``the form is KEY=VALUE``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand


def check_loss(ctx: typer.Context, value: str | None) -> str | None:
    """``--loss``: a registered loss name, or one line with the closest one (exit 2)."""
    from ce_lab.cli._output import fail
    from ce_lab.losses import loss_names

    if value is None or ctx.resilient_parsing or value in loss_names():
        return value  # resilient parsing: shell completion, which must never fail
    from ce_lab.suggest import unknown_name

    raise fail(unknown_name("loss", [value], loss_names()), 2)


def _is_int(token: str) -> bool:
    return token.isdigit()


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_loss(token: str) -> bool:
    from ce_lab.losses import loss_names

    return token in loss_names()


# Options whose one value is a comma-separated list: what a word after it must look like to be
# taken for the rest of that list (a run folder, e.g., does not).
LISTS = {"seeds": _is_int, "tune_seeds": _is_int, "losses": _is_loss, "lr_grid": _is_float}
# Options whose value is KEY=VALUE, and how their help writes it.
PAIRS = {"set_": "KEY=VALUE", "set_loss": "LOSS:KEY=VALUE"}


def option_slip(params, args: list[str]) -> str | None:
    """One line for a value split over several words, or None: ``--set optim.lr 0.1`` (the form
    is KEY=VALUE), ``--seeds 0 1 2`` (a comma-separated list). Click would read the words after
    the first as arguments: "unexpected extra argument", or, to ``compare``, run folders."""
    opts = {o: p.name for p in params if p.name in LISTS or p.name in PAIRS for o in p.opts}
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":  # what follows is arguments only
            return None
        option, eq, value = token.partition("=")
        if eq and option.startswith("--") and option in opts:
            after = i + 1
        elif token in opts and i + 1 < len(args):
            option, value, after = token, args[i + 1], i + 2
        else:
            i += 1
            continue
        name = opts[option]
        strays = []
        while (after < len(args) and not args[after].startswith("-")
               and (name in PAIRS or LISTS[name](args[after]))
               and not (name in LISTS and Path(args[after]).exists())):
            strays.append(args[after])
            after += 1
            if name in PAIRS:
                break
        if strays and name in PAIRS and "=" not in value:
            return (f"{option} takes {PAIRS[name]} as one word: write {option} "
                    f"{value.rstrip(':')}={strays[0]}, not {option} {value} {strays[0]}")
        if strays and name in LISTS:
            return (f"{option} takes one comma-separated list: write {option} "
                    f"{','.join([value, *strays])}, not {option} {' '.join([value, *strays])}")
        i = after
    return None


class HintedCommand(TyperCommand):
    """A command that answers ``option_slip`` in one line (exit 2) before click parses."""

    def parse_args(self, ctx, args):
        if not ctx.resilient_parsing and not set(args) & set(ctx.help_option_names):
            message = option_slip(self.params, args)
            if message:
                from ce_lab.cli._output import fail

                raise fail(message, 2)
        return super().parse_args(ctx, args)
