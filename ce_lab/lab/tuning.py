"""Each loss at its own learning rate: tune before a comparison (``--tune-lr``), or choose
among runs on disk (``--best-of KEY``).

``tune`` trains every loss at every rate of the grid, fused per tuning seed (the stack holds
per-member rates, ``ce_lab.training.fusion``), and chooses each loss's rate on the validation
split (``ce_lab.comparison.tuning``); ``ce_lab.lab.comparing`` then trains the chosen rates on
the evaluation seeds. ``best_of`` does the choosing for runs already on disk (a batch that swept
the rate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.comparison.tuning import (
    DEFAULT_CRITERION,
    LR_KEY,
    Criterion,
    Tuning,
    check_swept,
    chosen_records,
    select,
)
from ce_lab.errors import ParamError
from ce_lab.runs.names import TUNING_CSV, TUNING_FOLDER

if TYPE_CHECKING:
    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.config import RunConfig
    from ce_lab.lab.comparing import CompareRequest
    from ce_lab.runs.record import RunRecord



@dataclass
class Tuned:
    """A tuning's choice (None when it was interrupted), its runs, and the lines of tuning runs
    that could not be read back."""

    tuning: Tuning | None
    outcomes: list[Any]
    skipped: list[str] = field(default_factory=list)


def tune(request: CompareRequest, comp_dir: Path, *, reporter: Any = None,
         resuming: bool = False) -> Tuned:
    """Tune each loss's rate on the request's tuning seeds (validation only).

    The tuning runs live in COMPARISON/tuning/ with the group "<comparison>-tuning", apart from
    the evaluation runs. NoValidMember (exit 1) when a loss has no rate that counts; tuning.csv
    is written first, so what each member did can be read."""
    from ce_lab.comparison.tuning import NoValidMember
    from ce_lab.lab.stacks import load_outcomes, train_or_resume

    spec = request.tune
    assert spec is not None
    from ce_lab.safe_io import refuse_link

    tuning_dir = comp_dir / TUNING_FOLDER
    refuse_link(tuning_dir)  # a link there would send the tuning runs elsewhere
    grid_cfgs = tuning_configs(request.base, request.losses, spec.tune_seeds, spec.lr_grid,
                               request.loss_overrides, tuning_dir)
    outcomes, interrupted = train_or_resume(grid_cfgs, f"{comp_dir.name}-{TUNING_FOLDER}",
                                            tuning_dir, reporter=reporter,
                                            max_members=request.max_members, resuming=resuming)
    records, skipped = load_outcomes(outcomes)
    if interrupted or not records:
        return Tuned(None, outcomes, skipped)
    try:
        tuning = select(records, LR_KEY, spec.criterion, context_keys=())  # one cell per loss
    except NoValidMember as e:
        _write_points(records, spec.criterion, comp_dir)
        raise NoValidMember(f"{e}; every tuning member: {comp_dir / TUNING_CSV}") from None
    tuning.eval_seeds = list(request.seeds)
    unread = [loss for loss in request.losses if loss not in tuning.chosen()]
    if unread:  # every tuning run of a loss failed before it wrote a summary
        raise NoValidMember(f"{', '.join(unread)}: no tuning run could be read back "
                            f"({'; '.join(skipped) or 'none finished'})")
    return Tuned(tuning, outcomes, skipped)


def tuning_configs(base: RunConfig, losses: Sequence[str], tune_seeds: Sequence[int],
                   lr_grid: Sequence[float], overrides: Mapping[str, Mapping[str, Any]],
                   tuning_dir: Path) -> dict[int, list[RunConfig]]:
    """Every loss at every rate, per tuning seed: one list per seed, fused into one stack."""
    from ce_lab.config import with_overrides
    from ce_lab.lab.stacks import build_configs

    by_seed = build_configs(base, losses, tune_seeds, overrides)
    return {seed: [with_overrides(c, {LR_KEY: lr, "out_dir": str(tuning_dir)})
                   for c in cfgs for lr in lr_grid]
            for seed, cfgs in by_seed.items()}


def _write_points(records: Sequence[RunRecord], criterion: Criterion, comp_dir: Path) -> None:
    """tuning.csv of a tuning that chose nothing, so what each member did can be read."""
    from ce_lab.comparison.tuning import tuning_points
    from ce_lab.render.tuning import tuning_csv
    from ce_lab.safe_io import atomic_write_text

    points = tuning_points(records, LR_KEY)
    atomic_write_text(comp_dir / TUNING_CSV,
                      tuning_csv(Tuning(LR_KEY, criterion, [], points, []), comp_dir))


def best_of(
    records: Sequence[RunRecord],
    comp_dir: Path,
    key: str = LR_KEY,
    *,
    criterion: Criterion = DEFAULT_CRITERION,
    tune_seeds: Sequence[int] | None = None,
    reference: str | None = None,
    sort: str | None = None,
    plots: bool = True,
    skipped: Sequence[str] = (),
    html: bool = True,
) -> tuple[ComparisonResult, Tuning]:
    """Each loss at its own best ``key`` among runs on disk (a batch that swept it), chosen on
    validation, then compared as usual with the tuning rendered beside it.

    ``tune_seeds``: choose on these seeds and compare the others (which the choice never saw);
    None: choose and compare on the same runs (the report says its validation numbers are then
    optimistic). ParamError when the runs did not sweep ``key``; NoValidMember when a loss has
    no value that counts.
    """
    from ce_lab.comparison.compare import write_comparison

    check_swept(records, key)
    pool = list(records)
    evaluated = pool
    if tune_seeds is not None:
        pool = [r for r in records if r.seed in set(tune_seeds)]
        evaluated = [r for r in records if r.seed not in set(tune_seeds)]
        if not pool:
            raise ParamError(f"«tune_seeds» {','.join(map(str, tune_seeds))}: no run has "
                             "such a seed")
        if not evaluated:
            raise ParamError("«tune_seeds» names every seed of the runs: none is left to compare")
    tuning = select(pool, key, criterion, widen=f"the batch's grid of {key}")
    if tune_seeds is not None:
        tuning.eval_seeds = sorted({r.seed for r in evaluated if r.seed is not None})
    chosen = chosen_records(evaluated, tuning)
    result = write_comparison(chosen, comp_dir, reference=reference, sort=sort, plots=plots,
                              skipped=skipped, tuning=tuning, html=html)
    return result, tuning
