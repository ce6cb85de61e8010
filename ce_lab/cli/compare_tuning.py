"""``ce-lab compare --tune-lr`` and ``--best-of KEY``: the options, their checks, what is said.

Thin: the choosing is ``ce_lab.comparison.tuning``, the orchestration ``ce_lab.lab.tuning``.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ce_lab.cli._common import err_console, fail
from ce_lab.cli.choices import shown
from ce_lab.comparison.tuning import (
    DEFAULT_CRITERION,
    Criterion,
    Tuning,
    fmt_value,
    key_name,
    shared_rate_line,
)
from ce_lab.lab.params import DEFAULT_LR_GRID
from ce_lab.shown import rich_cell


class Select(str, Enum):
    auc = Criterion.auc.value
    final_val_acc = Criterion.final_val_acc.value


TuneLrOpt = Annotated[
    bool,
    typer.Option("--tune-lr", help="Tune each loss's learning rate on validation first."),
]
LrGridOpt = Annotated[
    str | None,
    typer.Option("--lr-grid", help="Rates --tune-lr tries (default "
                 f"{', '.join(map(shown, DEFAULT_LR_GRID))}).", show_default=False),
]
SelectOpt = Annotated[
    Select | None,
    typer.Option("--select", help="How a rate is scored on validation (default "
                 f"{DEFAULT_CRITERION.value}).", show_default=False),
]
TuneSeedsOpt = Annotated[
    str | None,
    typer.Option("--tune-seeds", help="Seeds the rates are chosen on (default: the smallest "
                 "seed not in --seeds).", show_default=False),
]
BestOfOpt = Annotated[
    str | None,
    typer.Option("--best-of", metavar="KEY", help="Runs on disk: each loss at its best value "
                 "of KEY, e.g. optim.lr.", show_default=False),
]


def check_tuning_flags(*, on_disk: bool, tune_lr: bool, lr_grid: str | None, select_given: bool,
                       tune_seeds: str | None, best_of: str | None) -> None:
    """One line and exit 2 for a tuning option where it does not apply."""
    if on_disk and tune_lr:
        raise fail("--tune-lr trains; with runs on disk use --best-of optim.lr", 2)
    if not on_disk and best_of is not None:
        raise fail("--best-of chooses among runs on disk (--group BATCH, --last N or run "
                   "folders); to train and tune use --tune-lr", 2)
    if not tune_lr and lr_grid is not None:
        raise fail("--lr-grid only applies with --tune-lr", 2)
    if not (tune_lr or best_of) and (select_given or tune_seeds is not None):
        given = [n for n, v in (("--select", select_given), ("--tune-seeds", tune_seeds))
                 if v not in (None, False)]
        raise fail(f"{', '.join(given)} only apply with --tune-lr or --best-of", 2)


def say_tuning(tuning: Tuning) -> None:
    """Each loss's chosen value on stderr, and a warning line for each at the edge of its grid."""
    name = key_name(tuning.key)
    chosen = ", ".join(f"{c.cell} {fmt_value(c.chosen)}" for c in tuning.cells)
    err_console.print(f"tuned {name} (by {tuning.criterion.value} on validation, seed(s) "
                      f"{', '.join(map(str, tuning.seeds))}): {rich_cell(chosen)}",
                      highlight=False, soft_wrap=True)
    for w in tuning.warnings():
        err_console.print(f"[yellow]warning:[/yellow] {rich_cell(w)}", highlight=False,
                          soft_wrap=True)


def shared_lr_line(configs) -> str | None:
    """The one line an untuned training compare says when every loss shares one rate."""
    return shared_rate_line(c.optim.lr for cfgs in configs.values() for c in cfgs)


def tuning_inputs(lr, set_items, lr_grid: str | None,
                  tune_seeds: str | None) -> tuple[list[float] | None, list[int] | None]:
    """--tune-lr's grid and tuning seeds parsed, before any data is fetched (exit 2)."""
    from ce_lab.cli import _parse

    if lr is not None or any(item.split("=", 1)[0].strip() == "optim.lr" for item in set_items):
        raise fail("--tune-lr chooses each loss's rate from --lr-grid; --lr and --set optim.lr "
                   "do not apply", 2)
    return _parse.lr_grid(lr_grid), _parse.seeds(tune_seeds, "tune_seeds")
