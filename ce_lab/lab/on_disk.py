"""Compare runs already on disk (``ce-lab compare RUN...``, ``ce_lab.compare_runs``), optionally
each loss at its own best value of a swept key (``best_of``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import CeLabError, ParamError
from ce_lab.lab import params

if TYPE_CHECKING:
    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.comparison.tuning import Tuning


class NothingToCompare(CeLabError):
    """No run could be read (exit 1): every one named was missing, unfinished or corrupt."""


@dataclass
class OnDiskComparison:
    result: ComparisonResult
    tuning: Tuning | None


def compare_on_disk(paths: Sequence[Path] = (), *, last: int | None = None,
                    group: str | None = None, out_dir: Path | None = None,
                    reference: str | None = None, sort: str | None = None, plots: bool = True,
                    best_of: str | None = None, select: Any = None, tune_seeds: Any = None,
                    on_skipped: Any = None, html: bool = True) -> OnDiskComparison:
    """The runs named by ``paths``, the ``last`` N under ``out_dir`` and those of ``group``,
    compared in a new comparison folder: beside the runs when they share a parent and no
    ``out_dir`` is given, else under ``out_dir`` (default ``runs``). Unreadable runs are
    skipped: ``on_skipped(lines)`` hears of them before anything is written. Nothing is left
    behind when it fails."""
    from ce_lab.comparison.build import build_table
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.folder import create_comparison_dir
    from ce_lab.runs.record import select_runs

    criterion = params.criterion("auc" if select is None else select)
    if best_of is None and (select is not None or tune_seeds is not None):
        given = [n for n, v in (("select", select), ("tune_seeds", tune_seeds)) if v is not None]
        raise ParamError(f"{', '.join(f'«{n}»' for n in given)} only apply with "
                                "«tune_lr» or «best_of»")
    choose_on = params.seed_list(tune_seeds, "tune_seeds")
    root = Path(out_dir) if out_dir is not None else Path("runs")
    records, skipped = select_runs(root, paths=list(paths), last=last, group=group)
    if on_skipped is not None:
        on_skipped(skipped)
    if not records:
        raise NothingToCompare(f"no runs to compare ({len(skipped)} skipped)")
    build_table(records, sort=sort)  # an unknown sort column, a seed twice: nothing written
    parents = {r.path.resolve().parent for r in records}
    if out_dir is None and paths and len(parents) == 1:
        root = parents.pop()  # next to the runs compared, like the compare-* of a training
    comp_dir = create_comparison_dir(root)
    try:
        if best_of is not None:
            from ce_lab.lab.tuning import best_of as choose_best

            result, tuning = choose_best(records, comp_dir, best_of, criterion=criterion,
                                         tune_seeds=choose_on, reference=reference, sort=sort,
                                         plots=plots, skipped=skipped, html=html)
            return OnDiskComparison(result, tuning)
        result = write_comparison(records, comp_dir, reference=reference, sort=sort,
                                  plots=plots, skipped=skipped, html=html)
        return OnDiskComparison(result, None)
    except BaseException:  # a full disk, ...: no half-written compare-* folder is left
        import shutil

        shutil.rmtree(comp_dir, ignore_errors=True)
        raise
