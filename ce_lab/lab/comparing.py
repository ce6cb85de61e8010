"""Train losses side by side and compare them: the one path from a typed request to a
comparison folder, for ``ce-lab compare`` and ``ce_lab.compare`` alike.

``plan_comparison`` checks every argument (ParamError naming the parameter) and returns a
``CompareRequest``; ``run_comparison`` makes the folder, records the request in it
(request.json, so ``resume_comparison`` can finish an interrupted one), tunes each loss's rate
first when asked (``ce_lab.lab.tuning``), trains each seed's configs fused, and writes the
comparison only when every member has ended: an interrupted comparison writes no tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import ParamError
from ce_lab.lab import params, stacks
from ce_lab.runs.folder import Status

if TYPE_CHECKING:
    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.comparison.tuning import Criterion, Tuning
    from ce_lab.config import RunConfig

LR_KEY = "optim.lr"


@dataclass
class TuneSpec:
    """How each loss's rate is chosen before the comparison (``--tune-lr``)."""

    lr_grid: list[float]
    criterion: Criterion
    tune_seeds: list[int]


@dataclass
class CompareRequest:
    """A checked comparison to train: every loss for every seed from ``base``."""

    base: RunConfig
    losses: list[str]
    seeds: list[int]
    loss_overrides: dict[str, dict[str, Any]]
    reference: str | None = None
    sort: str | None = None
    plots: bool = True
    max_members: int | None = None
    tune: TuneSpec | None = None
    html: bool = True  # report.html beside report.md

    def configs(self, seeds: Sequence[int] | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[int, list[RunConfig]]:
        """One config per (seed, loss): the base, that seed and loss, then its overrides."""
        return stacks.build_configs(self.base, self.losses, self.seeds if seeds is None else seeds,
                             self.loss_overrides if overrides is None else overrides)


@dataclass
class TrainedComparison:
    """What a training comparison produced: the result (None when interrupted or when no run
    finished), every run's outcome, and with tuning its choice and runs."""

    comp_dir: Path
    result: ComparisonResult | None
    outcomes: list[Any]  # ce_lab.training.RunOutcome
    interrupted: bool
    tuning: Tuning | None = None
    tuning_outcomes: list[Any] | None = None

    @property
    def tuning_dir(self) -> Path:
        from ce_lab.lab.tuning import TUNING_FOLDER

        return self.comp_dir / TUNING_FOLDER

    @property
    def failed(self) -> list[Any]:
        return [o for o in [*(self.tuning_outcomes or []), *self.outcomes]
                if o.status == Status.FAILED]


def plan_comparison(base: RunConfig, losses: Any, seeds: Any = None, *,
                    loss_overrides: Any = None, reference: Any = None, sort: Any = None,
                    plots: bool = True, max_members: Any = None, tune_lr: bool = False,
                    lr_grid: Any = None, select: Any = None, tune_seeds: Any = None,
                    html: bool = True) -> CompareRequest:
    """Check a comparison's arguments before anything is fetched or written."""
    from ce_lab.comparison.build import check_sort_key

    names = params.loss_list(losses)
    seed_list = params.seed_list(seeds) or [base.seed]
    overrides = params.loss_overrides(loss_overrides, names)
    ref = params.reference(reference, names)
    if params.optional_str(sort, "sort", "a column name") is not None:
        check_sort_key(sort, base.log.thresholds)
    members = None if max_members is None else params.positive_int(max_members, "max_members")
    tune = None
    if tune_lr:
        for loss, keys in overrides.items():
            if LR_KEY in keys:
                raise ParamError(f"«loss_overrides» {loss}:{LR_KEY} conflicts with «tune_lr», "
                                 "which chooses each loss's rate")
        tune = TuneSpec(params.lr_grid(params.DEFAULT_LR_GRID if lr_grid is None else lr_grid),
                        params.criterion("auc" if select is None else select),
                        params.tune_seeds(tune_seeds, seed_list))
    else:
        given = [n for n, v in (("lr_grid", lr_grid), ("select", select),
                                ("tune_seeds", tune_seeds)) if v is not None]
        if given:
            raise ParamError(f"{', '.join(f'«{n}»' for n in given)} only apply with «tune_lr»")
    request = CompareRequest(base, names, seed_list, overrides, ref, sort, plots, members, tune,
                             bool(html))
    request.configs()  # a loss_overrides value the config refuses: now, not after a tuning
    return request


def run_comparison(request: CompareRequest, *, reporter: Any = None,
                   on_dir: Callable[[Path, str], None] | None = None,
                   on_tuned: Callable[[Tuning], None] | None = None) -> TrainedComparison:
    """Train the request in a new comparison folder and write the comparison; with
    ``request.tune``, tune each loss's rate first. ``on_dir(comp_dir, group)`` is called as the
    folder is made, ``on_tuned(tuning)`` once the rates are chosen."""
    from ce_lab.lab import request_file
    from ce_lab.runs.folder import create_comparison_dir

    comp_dir = create_comparison_dir(request.base.out_dir)
    request_file.write(comp_dir, request)
    if on_dir is not None:
        on_dir(comp_dir, comp_dir.name)
    return _complete(request, comp_dir, reporter=reporter, on_tuned=on_tuned)


def resume_comparison(comp_dir: Path | str, *, reporter: Any = None,
                      on_tuned: Callable[[Tuning], None] | None = None,
                      request: CompareRequest | None = None) -> TrainedComparison:
    """Finish an interrupted comparison: members that ended are kept, interrupted ones resume
    from their checkpoints, those never started are trained; then the comparison is written,
    with the numbers an uninterrupted comparison would have. ``request``: the folder's, when
    the caller has read it already (``load_request``)."""
    comp_dir = Path(comp_dir)
    if request is None:
        request = load_request(comp_dir)
    return _complete(request, comp_dir, reporter=reporter, on_tuned=on_tuned, resuming=True)


def load_request(comp_dir: Path | str) -> CompareRequest:
    """The request a comparison folder was started with (request.json), checked again."""
    from ce_lab.lab import request_file

    fields = request_file.read(Path(comp_dir))
    return plan_comparison(fields.pop("base"), fields.pop("losses"), fields.pop("seeds"), **fields)


def _complete(request: CompareRequest, comp_dir: Path, *, reporter: Any,
              on_tuned: Callable[[Tuning], None] | None, resuming: bool = False) -> TrainedComparison:
    overrides = request.loss_overrides
    tuning = tuning_outcomes = None
    tuning_skipped: list[str] = []
    if request.tune is not None:
        from ce_lab.lab.tuning import tune

        tuned = tune(request, comp_dir, reporter=reporter, resuming=resuming)
        tuning_outcomes, tuning_skipped = tuned.outcomes, tuned.skipped
        if tuned.tuning is None:  # interrupted while tuning: nothing compared
            return TrainedComparison(comp_dir, None, [], True, None, tuning_outcomes)
        tuning = tuned.tuning
        if on_tuned is not None:
            on_tuned(tuning)
        chosen = tuning.chosen()
        overrides = {loss: {**overrides.get(loss, {}), LR_KEY: chosen[loss]}
                     for loss in request.losses}
    configs = request.configs(overrides=overrides)
    outcomes, interrupted = stacks.train_or_resume(configs, comp_dir.name, request.base.out_dir,
                                            reporter=reporter, max_members=request.max_members,
                                            resuming=resuming)
    trained = TrainedComparison(comp_dir, None, outcomes, interrupted, tuning, tuning_outcomes)
    if interrupted:
        return trained  # no tables of half a comparison: resume_comparison finishes it
    records, skipped = stacks.load_outcomes(outcomes)
    if records:
        from ce_lab.comparison.compare import write_comparison

        trained.result = write_comparison(records, comp_dir, reference=request.reference,
                                          sort=request.sort, plots=request.plots,
                                          skipped=skipped, tuning=tuning, html=request.html)
        trained.result.skipped[:0] = tuning_skipped  # tuning runs that could not be read back
    return trained
