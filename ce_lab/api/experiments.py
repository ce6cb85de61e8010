"""The Python API's training half: ``train``, ``resume``, ``compare`` (with tuning),
``resume_comparison``, ``compare_runs`` (with ``best_of``). Each is a thin typed wrapper over
``ce_lab.lab``, the orchestration layer ``ce-lab`` itself calls: configs are resolved by
``ce_lab.config`` (a bad key raises ``ce_lab.ConfigError`` with the line the CLI prints), a bad
argument raises ParamError naming the parameter. Nothing is printed unless asked
(``progress="bar"`` or ``"plain"``; by default a bar only on a terminal).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.api.reading import Run, _pandas, _path, _paths
from ce_lab.errors import CeLabError, ParamError
from ce_lab.losses import DEFAULT_LOSSES
from ce_lab.threads import with_threads

if TYPE_CHECKING:
    import pandas as pd

    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.comparison.tuning import Tuning
    from ce_lab.config import RunConfig


class Interrupted(CeLabError):
    """A comparison (or a batch) stopped by Ctrl-C before every member ended; nothing was
    compared. ``.comp_dir`` is its folder: ``resume_comparison(comp_dir)`` finishes it
    (``batch(resume=comp_dir)`` a batch)."""

    exit_code = 130

    def __init__(self, message: str, comp_dir: Path):
        super().__init__(message)
        self.comp_dir = comp_dir


class RunFailed(CeLabError):
    """A run ended failed (its traceback is in RUN/error.log); ``.run`` is the Run."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run



def _reporter(progress: str | None):
    from rich.console import Console

    from ce_lab.progress import PROGRESS_MODES, make_reporter

    err = Console(stderr=True)
    if progress is None:
        progress = "bar" if err.is_terminal else "none"  # a notebook or a pipe: silent
    if not isinstance(progress, str) or progress not in PROGRESS_MODES:
        *most, last = PROGRESS_MODES
        raise ParamError(f"«progress» must be {', '.join(most)} or {last}, got {progress!r}")
    return make_reporter(progress, err)


def _base_config(config: str | Path | RunConfig | None, overrides: Mapping[str, Any] | None,
                 keywords: Mapping[str, Any]) -> RunConfig:
    """defaults < ``config`` (a YAML file or a RunConfig) < ``overrides`` (dotted keys) < the
    keyword arguments (None: not given), validated as the CLI validates."""
    from ce_lab.config import RunConfig, resolve_config, with_overrides
    from ce_lab.lab import params

    if config is not None and not isinstance(config, (str, Path, RunConfig)):
        raise ParamError(f"«config» must be a YAML file (str or Path) or a RunConfig, got "
                         f"{type(config).__name__}")
    overrides = params.dotted_overrides(overrides, example='{"model.hidden": [512]}')
    for key in ("out_dir", "data.root"):  # folders: a path, never a number to make text of
        _optional_path(keywords.get(key), "data_dir" if key == "data.root" else key)
    cfg = config if isinstance(config, RunConfig) else resolve_config(
        Path(config) if config is not None else None)
    if overrides:
        cfg = with_overrides(cfg, overrides)
    given = {k: v for k, v in keywords.items() if v is not None}
    return with_overrides(cfg, given) if given else cfg


def _optional_path(value: Any, param: str) -> Path | None:
    return None if value is None else _path(value, param)


@with_threads
def train(loss: str | None = None, *, epochs: int | None = None, max_steps: int | None = None,
          lr: float | None = None, optimizer: str | None = None, batch_size: int | None = None,
          seed: int | None = None, device: str | None = None, out_dir: str | Path | None = None,
          data_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
          config: str | Path | RunConfig | None = None, progress: str | None = None,
          threads: int | None = None) -> Run:
    """Train one run, as ``ce-lab train`` does; returns its Run.

    A completed, diverged or interrupted run is returned (``run.status`` says which); a failed one
    raises RunFailed. Bad config: ConfigError / UsageError before anything is written.
    ``threads``: torch's CPU threads, as ``--threads`` (default: the policy of ``ce_lab.threads``).
    """
    from ce_lab.config import keyword_overrides
    from ce_lab.data.fetch import warn_fetch
    from ce_lab.lab import train_run

    if loss is not None and not isinstance(loss, str):
        raise ParamError(f"«loss» must be a loss name, got {loss!r}")
    cfg = _base_config(config, overrides, keyword_overrides(
        loss=loss, epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer,
        batch_size=batch_size, device=device, seed=seed, out_dir=out_dir, data_dir=data_dir))
    reporter = _reporter(progress)
    warn_fetch(cfg.data, stacklevel=3)  # at the user's line, past with_threads
    outcome = train_run(cfg, reporter=reporter)
    return _finished(outcome)


@with_threads
def resume(run_dir: str | Path, *, progress: str | None = None, threads: int | None = None) -> Run:
    """Continue an interrupted run from its checkpoint, as ``ce-lab train --resume``."""
    from ce_lab.lab import check_resume, resume_run

    run_dir = _path(run_dir, "run_dir")
    reporter = _reporter(progress)
    check_resume(run_dir)
    return _finished(resume_run(run_dir, reporter=reporter))


def _finished(outcome) -> Run:
    from ce_lab.runs.folder import Status

    run = Run(outcome.run_dir)
    if outcome.status == Status.FAILED:
        raise RunFailed(f"run failed: {outcome.message} (see {outcome.run_dir})", run)
    return run


# ---------------------------------------------------------------------------------------------
# Comparisons


@dataclass
class Comparison:
    """A comparison folder and what it holds: ``table()``, ``paired()`` and the files."""

    result: ComparisonResult = field(repr=False)
    runs: list[Run]
    tuning: Tuning | None = field(default=None, repr=False)  # how rates were chosen, if tuned

    @property
    def tuned(self) -> dict[str, float]:
        """Each loss's chosen learning rate (``tune_lr``) or best value (``best_of``); {} when
        every loss ran as configured. comparison.json's "tuned" holds the same."""
        return {} if self.tuning is None else self.tuning.chosen()

    @property
    def dir(self) -> Path:
        return self.result.comp_dir

    @property
    def group(self) -> str:
        return self.result.group

    @property
    def reference(self) -> str | None:
        return self.result.reference

    @property
    def files(self) -> dict[str, Path]:
        return dict(self.result.files)

    @property
    def plots(self) -> list[Path]:
        return list(self.result.plots)

    @property
    def notes(self) -> list[str]:
        return list(self.result.table.notes)

    @property
    def skipped(self) -> list[str]:
        return list(self.result.skipped)

    def table(self) -> pd.DataFrame:
        """table.csv's rows: per loss (and config), with _mean/_std/_n over seeds."""
        from ce_lab.render.data import csv_fields, raw_row

        t = self.result.table
        return _pandas().DataFrame([raw_row(t, row) for row in t.rows], columns=csv_fields(t))

    def paired(self) -> pd.DataFrame:
        """Each loss against the reference, one row per paired metric (paired.csv's rows, with
        every field of table.json's "paired"): differences over seeds and 95% intervals."""
        from ce_lab.render.data import paired_json

        rows = [paired_json(d) for d in self.result.diffs]
        for row in rows:  # {"loss": ..., "reference": ...} pairs as two flat columns each
            for key in ("not_reached", "missing"):
                pair = row.pop(key)
                row[key], row[f"ref_{key}"] = pair["loss"], pair["reference"]
        return _pandas().DataFrame(rows)

    def __repr__(self) -> str:
        return f"Comparison({self.group!r}, runs={len(self.runs)}, reference={self.reference!r})"


@with_threads
def compare(losses: Sequence[str] | str = DEFAULT_LOSSES, *, seeds: Sequence[int] | int | None = None,
            epochs: int | None = None, max_steps: int | None = None, lr: float | None = None,
            optimizer: str | None = None, batch_size: int | None = None,
            device: str | None = None, out_dir: str | Path | None = None,
            data_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
            loss_overrides: Mapping[str, Mapping[str, Any]] | None = None,
            config: str | Path | RunConfig | None = None, reference: str | None = None,
            sort: str | None = None, plots: bool = True, max_members: int | None = None,
            tune_lr: bool = False, lr_grid: Sequence[float] | None = None,
            select: str | None = None, tune_seeds: Sequence[int] | int | None = None,
            progress: str | None = None, threads: int | None = None,
            html: bool = True) -> Comparison:
    """Train ``losses`` for every seed fused (same weights, same batches), as ``ce-lab compare``,
    and write the comparison folder; ``loss_overrides={"mse": {"optim.lr": 0.5}}`` is
    ``--set-loss``.

    ``tune_lr=True`` first tunes each loss's own learning rate on the validation split, as
    ``--tune-lr``: every loss at every rate of ``lr_grid`` (default half-decades 0.01..10) on
    ``tune_seeds`` (default one seed not among ``seeds``), chosen by ``select`` ("auc", the
    default, or "final-val-acc"); ``Comparison.tuned`` holds the chosen rates. ``threads`` is
    ``--threads``; ``html=False`` is ``--no-html`` (no report.html).

    Raises ParamError (a UsageError) naming the parameter for a bad argument, before anything
    is written; Interrupted (with ``.comp_dir``; ``resume_comparison`` finishes it) on Ctrl-C;
    CeLabError when no run finished."""
    from ce_lab.config import keyword_overrides
    from ce_lab.data.fetch import warn_fetch
    from ce_lab.lab import plan_comparison, run_comparison

    if tune_lr and (lr is not None or (isinstance(overrides, Mapping) and "optim.lr" in overrides)):
        raise ParamError("«tune_lr» chooses each loss's rate from «lr_grid»; «lr» and "
                         "overrides optim.lr do not apply")
    base = _base_config(config, overrides, keyword_overrides(
        epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer, batch_size=batch_size,
        device=device, out_dir=out_dir, data_dir=data_dir))
    request = plan_comparison(base, losses, seeds, loss_overrides=loss_overrides,
                              reference=reference, sort=sort, plots=bool(plots),
                              max_members=max_members, tune_lr=bool(tune_lr), lr_grid=lr_grid,
                              select=select, tune_seeds=tune_seeds, html=bool(html))
    reporter = _reporter(progress)
    warn_fetch(base.data, stacklevel=3)  # at the user's line, past with_threads
    return _trained(run_comparison(request, reporter=reporter))


@with_threads
def resume_comparison(comp_dir: str | Path, *, progress: str | None = None,
                      threads: int | None = None) -> Comparison:
    """Finish an interrupted ``compare`` (as ``ce-lab compare --resume``): members that ended
    are kept, interrupted ones resume from their checkpoints, the rest train; the comparison's
    numbers are those an uninterrupted one would have had."""
    from ce_lab.lab import resume_comparison as finish

    return _trained(finish(_path(comp_dir, "comp_dir"), reporter=_reporter(progress)))


def _trained(trained) -> Comparison:
    if trained.interrupted:
        raise Interrupted(f"interrupted; continue with: ce_lab.resume_comparison("
                          f"{str(trained.comp_dir)!r})", trained.comp_dir)
    if trained.result is None:
        failed = [f"{o.run_dir}: {o.message}" for o in trained.failed if o.message]
        raise CeLabError("no run finished; nothing to compare" +
                         (f" ({'; '.join(failed)})" if failed else ""))
    return _comparison(trained.result, trained.tuning)


def _comparison(result: ComparisonResult, tuning: Tuning | None = None) -> Comparison:
    runs = [Run(row_record.path) for row in result.table.rows for row_record in row.records]
    return Comparison(result, runs, tuning)


def compare_runs(runs: Any, *, out_dir: str | Path | None = None, reference: str | None = None,
                 sort: str | None = None, plots: bool = True, best_of: str | None = None,
                 select: str | None = None,
                 tune_seeds: Sequence[int] | int | None = None, html: bool = True) -> Comparison:
    """Compare runs already on disk (Runs, folders, or a load_runs DataFrame), as
    ``ce-lab compare RUN...``; the comparison folder goes under ``out_dir`` (default: beside the
    runs). Unreadable runs are skipped with a warning.

    ``best_of="optim.lr"`` compares each loss at its own best value of that key among the runs
    (a batch that swept it), chosen on validation by ``select``, as ``--best-of``; with
    ``tune_seeds`` the choice reads only those seeds and the others are compared. ``html=False``
    writes no report.html."""
    from ce_lab.lab import compare_on_disk

    def warn(lines: list[str]) -> None:
        for line in lines:
            warnings.warn(f"skipped: {line}", stacklevel=3)

    from ce_lab.lab import params

    for name, value in (("reference", reference), ("sort", sort), ("best_of", best_of)):
        params.optional_str(value, name)
    done = compare_on_disk(_paths(runs), out_dir=_optional_path(out_dir, "out_dir"),
                           reference=reference, sort=sort, plots=bool(plots), best_of=best_of,
                           select=select, tune_seeds=tune_seeds, on_skipped=warn,
                           html=bool(html))
    return _comparison(done.result, done.tuning)


