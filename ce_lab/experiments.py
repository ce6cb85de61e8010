"""Experiments built from training and comparing: tune each loss's learning rate, then compare.

``tune_then_compare`` trains every loss at every rate of a grid, fused per tuning seed (the
stack holds per-member rates, ``ce_lab.training.fusion``), chooses each loss's rate on the
validation split (``ce_lab.comparison.tuning``), trains the chosen rates on the evaluation seeds
and writes the comparison with its tuning (tuning.csv, the sensitivity plot, the report's Tuning
section, comparison.json ``tuned``). ``best_of`` does the choosing for runs already on disk (a
batch that swept the rate). Plain functions: the CLI parses and renders, these decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.comparison.compare import (
    TrainedComparison,
    build_configs,
    load_outcomes,
    parse_csv_list,
    train_and_compare,
    train_seeds,
    write_comparison,
)
from ce_lab.comparison.tuning import (
    DEFAULT_CRITERION,
    LR_KEY,
    Criterion,
    Tuning,
    check_swept,
    chosen_records,
    select,
)
from ce_lab.errors import UsageError
from ce_lab.runs.folder import create_comparison_dir
from ce_lab.runs.names import TUNING_CSV, TUNING_FOLDER

if TYPE_CHECKING:
    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.config import RunConfig
    from ce_lab.runs.record import RunRecord

# Half-decades from 0.01 to 10, measured on MNIST (1 epoch, the default model, sgd): the best
# rates were ce 0.316, hinge 1, mse 3.16 (by validation AUC), nll-manual diverged from 1 up,
# and every loss had fallen to or near chance at 10 (ce from 1), so no best sits on an edge.
DEFAULT_LR_GRID = (0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0)


def parse_lr_grid(text: str | None) -> list[float]:
    """``0.1,0.3,1`` -> sorted distinct positive rates; UsageError (exit 2) otherwise."""
    if text is None:
        return list(DEFAULT_LR_GRID)
    try:
        grid = [float(p) for p in parse_csv_list(text)]
    except ValueError:
        raise UsageError(f"--lr-grid expects comma-separated numbers, got {text!r}") from None
    if not grid or any(not math.isfinite(v) or v <= 0 for v in grid):
        raise UsageError(f"--lr-grid expects positive learning rates, got {text!r}")
    if len(set(grid)) != len(grid):
        raise UsageError(f"--lr-grid names a rate twice: {text}")
    return sorted(grid)


def default_tune_seeds(eval_seeds: Sequence[int]) -> list[int]:
    """One seed not among the evaluation seeds: the smallest such (0, 1, ...)."""
    seed = 0
    while seed in eval_seeds:
        seed += 1
    return [seed]


def check_tune_seeds(tune_seeds: Sequence[int], eval_seeds: Sequence[int]) -> None:
    shared = sorted(set(tune_seeds) & set(eval_seeds))
    if shared:
        raise UsageError(f"--tune-seeds and --seeds share seed(s) {', '.join(map(str, shared))}: "
                         "rates chosen on a seed would be evaluated on it")


@dataclass
class TunedComparison(TrainedComparison):
    tuning: Tuning | None = None
    tuning_dir: Path | None = None
    tuning_outcomes: list[Any] | None = None


def tune_then_compare(
    base: RunConfig,
    losses: Sequence[str],
    seeds: Sequence[int],
    *,
    lr_grid: Sequence[float] = DEFAULT_LR_GRID,
    criterion: Criterion = DEFAULT_CRITERION,
    tune_seeds: Sequence[int] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    reference: str | None = None,
    sort: str | None = None,
    plots: bool = True,
    reporter: Any = None,
    on_dir: Callable[[Path, str], None] | None = None,
    on_tuned: Callable[[Tuning], None] | None = None,
    max_members: int | None = None,
) -> TunedComparison:
    """Tune each loss's rate on ``tune_seeds`` (validation only), then train the chosen rates on
    ``seeds`` and compare them, paired against the reference loss.

    The tuning runs live in COMPARISON/tuning/ with the group "<comparison>-tuning"; the
    evaluation runs under ``base.out_dir`` with the comparison's group, as an untuned compare's.
    NoValidMember (exit 1) when a loss has no rate that counts; tuning.csv is written first.
    """
    from ce_lab.comparison.tuning import NoValidMember

    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    for loss, keys in overrides.items():
        if LR_KEY in keys:
            raise UsageError(f"--set-loss {loss}:{LR_KEY} conflicts with --tune-lr, which "
                             "chooses each loss's rate")
    tune_seeds = list(tune_seeds) if tune_seeds is not None else default_tune_seeds(seeds)
    check_tune_seeds(tune_seeds, seeds)
    comp_dir = create_comparison_dir(base.out_dir)
    group = comp_dir.name
    tuning_dir = comp_dir / TUNING_FOLDER
    if on_dir is not None:
        on_dir(comp_dir, group)

    grid_cfgs = tuning_configs(base, losses, tune_seeds, lr_grid, overrides, tuning_dir)
    tuning_outcomes, interrupted = train_seeds(grid_cfgs, f"{group}-{TUNING_FOLDER}",
                                               reporter=reporter, max_members=max_members)
    records, skipped = load_outcomes(tuning_outcomes)
    if interrupted or not records:
        return TunedComparison(None, [], interrupted, None, tuning_dir, tuning_outcomes)
    try:
        tuning = select(records, LR_KEY, criterion, context_keys=())  # one cell per loss
    except NoValidMember as e:
        _write_points(records, criterion, comp_dir)
        raise NoValidMember(f"{e}; every tuning member: {comp_dir / TUNING_CSV}") from None
    tuning.eval_seeds = list(seeds)
    if on_tuned is not None:
        on_tuned(tuning)
    chosen = tuning.chosen()
    unread = [loss for loss in losses if loss not in chosen]
    if unread:  # every tuning run of a loss failed before it wrote a summary
        raise NoValidMember(f"{', '.join(unread)}: no tuning run could be read back "
                            f"({'; '.join(skipped) or 'none finished'})")
    for loss in losses:
        overrides.setdefault(loss, {})[LR_KEY] = chosen[loss]
    configs = build_configs(base, losses, seeds, overrides)
    trained = train_and_compare(configs, base.out_dir, reference=reference, sort=sort,
                                plots=plots, reporter=reporter, max_members=max_members,
                                comp_dir=comp_dir, tuning=tuning)
    if trained.result is not None:
        trained.result.skipped[:0] = skipped  # tuning runs that could not be read back
    return TunedComparison(trained.result, trained.outcomes, trained.interrupted, tuning,
                           tuning_dir, tuning_outcomes)


def tuning_configs(base: RunConfig, losses: Sequence[str], tune_seeds: Sequence[int],
                   lr_grid: Sequence[float], overrides: Mapping[str, Mapping[str, Any]],
                   tuning_dir: Path) -> dict[int, list[RunConfig]]:
    """Every loss at every rate, per tuning seed: one list per seed, fused into one stack."""
    from ce_lab.config import with_overrides

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
) -> tuple[ComparisonResult, Tuning]:
    """Each loss at its own best ``key`` among runs on disk (a batch that swept it), chosen on
    validation, then compared as usual with the tuning rendered beside it.

    ``tune_seeds``: choose on these seeds and compare the others (which the choice never saw);
    None: choose and compare on the same runs (the report says its validation numbers are then
    optimistic). UsageError when the runs did not sweep ``key``; NoValidMember when a loss has no
    value that counts.
    """
    check_swept(records, key)
    pool = list(records)
    evaluated = pool
    if tune_seeds is not None:
        pool = [r for r in records if r.seed in set(tune_seeds)]
        evaluated = [r for r in records if r.seed not in set(tune_seeds)]
        if not pool:
            raise UsageError(f"--tune-seeds {','.join(map(str, tune_seeds))}: no run has "
                             "such a seed")
        if not evaluated:
            raise UsageError("--tune-seeds names every seed of the runs: none is left to compare")
    tuning = select(pool, key, criterion, widen=f"the batch's grid of {key}")
    if tune_seeds is not None:
        tuning.eval_seeds = sorted({r.seed for r in evaluated if r.seed is not None})
    chosen = chosen_records(evaluated, tuning)
    result = write_comparison(chosen, comp_dir, reference=reference, sort=sort, plots=plots,
                              skipped=skipped, tuning=tuning)
    return result, tuning

