"""The Python API, for notebooks and scripts: ``train``, ``compare``, ``load_runs``, ``load_metrics``.

Thin over the modules the CLI uses: configs are resolved and validated by ``ce_lab.config`` (a bad
key raises ``ce_lab.ConfigError`` with the same one line the CLI prints), runs are trained by
``ce_lab.training`` and compared by ``ce_lab.comparison``, folders are read by ``ce_lab.runs``. Nothing
is printed unless asked (``progress="bar"`` or ``"plain"``; by default a bar only on a terminal).
Tables come back as pandas DataFrames (``pip install "ce-lab[pandas]"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import CeLabError, UsageError, require
from ce_lab.runs.files import EVALS, METRICS
from ce_lab.threads import with_threads

if TYPE_CHECKING:
    import pandas as pd

    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.config import RunConfig
    from ce_lab.runs.listing import RunEntry

DEFAULT_LOSSES = ("ce", "mse", "hinge", "nll-manual")  # as ce_lab.comparison.compare's
INT_COLUMNS = ("step", "epoch", "examples")  # CSV columns that are counts


class RunFailed(CeLabError):
    """A run ended failed (its traceback is in RUN/error.log); ``.run`` is the Run."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


def _pandas():
    return require("pandas", "pandas", "DataFrames")


# ---------------------------------------------------------------------------------------------
# Runs


def _frame(columns: Mapping[str, list[float]]) -> pd.DataFrame:
    pd = _pandas()
    df = pd.DataFrame(dict(columns))
    for c in INT_COLUMNS:
        if c in df and df[c].notna().all():
            df[c] = df[c].astype("int64")
    return df


@dataclass
class Run:
    """A run folder. ``status``, ``summary``, ``config`` and ``meta`` are plain values, read when
    the Run is made (``Run(path)`` or ``ce_lab.load_run``); ``metrics()``/``evals()`` read the CSVs."""

    dir: Path
    _entry: RunEntry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from ce_lab.runs.listing import read_entry

        self.dir = Path(self.dir)
        self._entry = read_entry(self.dir)

    @property
    def id(self) -> str:
        return self._entry.run_id

    @property
    def status(self) -> str:
        return self._entry.status

    @property
    def loss(self) -> str | None:
        return self._entry.loss

    @property
    def seed(self) -> int | None:
        return self._entry.seed

    @property
    def summary(self) -> dict[str, Any]:
        return self._entry.summary

    @property
    def config(self) -> dict[str, Any]:
        return self._entry.config

    @property
    def meta(self) -> dict[str, Any]:
        return self._entry.meta

    @property
    def flags(self) -> list[str]:
        return self._entry.flags

    def metrics(self) -> pd.DataFrame:
        """metrics.csv: one row per logged step."""
        from ce_lab.runs.read import read_csv_columns

        return _frame(read_csv_columns(self.dir / METRICS))

    def evals(self) -> pd.DataFrame:
        """eval.csv: one row per validation pass."""
        from ce_lab.runs.read import read_csv_columns

        return _frame(read_csv_columns(self.dir / EVALS))

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, loss={self.loss!r})"


def load_run(path: str | Path) -> Run:
    """The run folder ``path``; RunFolderError (one line) when it is not a readable run."""
    return Run(Path(path))


def _reporter(progress: str | None):
    from rich.console import Console

    from ce_lab.progress import make_reporter

    err = Console(stderr=True)
    if progress is None:
        progress = "bar" if err.is_terminal else "none"  # a notebook or a pipe: silent
    if progress not in ("auto", "bar", "plain", "none"):
        raise UsageError(f"progress must be auto, bar, plain or none, got {progress!r}")
    return make_reporter(progress, err)


def _base_config(config: str | Path | RunConfig | None, overrides: Mapping[str, Any] | None,
                 keywords: Mapping[str, Any]) -> RunConfig:
    """defaults < ``config`` (a YAML file or a RunConfig) < ``overrides`` (dotted keys) < the
    keyword arguments (None: not given), validated as the CLI validates."""
    from ce_lab.config import RunConfig, resolve_config, with_overrides

    cfg = config if isinstance(config, RunConfig) else resolve_config(
        Path(config) if config is not None else None)
    if overrides:
        if not isinstance(overrides, Mapping):
            raise UsageError("overrides must be a mapping of dotted config keys to values, e.g. "
                             '{"model.hidden": [512]}')
        cfg = with_overrides(cfg, overrides)
    given = {k: v for k, v in keywords.items() if v is not None}
    return with_overrides(cfg, given) if given else cfg


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
    from ce_lab.training.run import train as train_one

    cfg = _base_config(config, overrides, keyword_overrides(
        loss=loss, epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer,
        batch_size=batch_size, device=device, seed=seed, out_dir=out_dir, data_dir=data_dir))
    outcome = train_one(cfg, reporter=_reporter(progress))
    return _finished(outcome)


@with_threads
def resume(run_dir: str | Path, *, progress: str | None = None, threads: int | None = None) -> Run:
    """Continue an interrupted run from its checkpoint, as ``ce-lab train --resume``."""
    from ce_lab.training.run import resume as resume_one

    return _finished(resume_one(Path(run_dir), reporter=_reporter(progress)))


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
    interrupted: bool = False

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


def _seed_list(seeds: Sequence[int] | int | None) -> list[int] | None:
    from ce_lab.comparison.compare import parse_seeds

    if seeds is None:
        return None
    if isinstance(seeds, int):
        seeds = [seeds]
    return parse_seeds(",".join(str(s) for s in seeds))


@with_threads
def compare(losses: Sequence[str] | str = DEFAULT_LOSSES, *, seeds: Sequence[int] | int | None = None,
            epochs: int | None = None, max_steps: int | None = None, lr: float | None = None,
            optimizer: str | None = None, batch_size: int | None = None,
            device: str | None = None, out_dir: str | Path | None = None,
            data_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
            loss_overrides: Mapping[str, Mapping[str, Any]] | None = None,
            config: str | Path | RunConfig | None = None, reference: str | None = None,
            sort: str | None = None, plots: bool = True, max_members: int | None = None,
            progress: str | None = None, threads: int | None = None) -> Comparison:
    """Train ``losses`` for every seed fused (same weights, same batches), as ``ce-lab compare``,
    and write the comparison folder; ``loss_overrides={"mse": {"optim.lr": 0.5}}`` is
    ``--set-loss``; ``threads`` is ``--threads``. Raises CeLabError when no run finished."""
    from ce_lab.comparison.build import check_sort_key
    from ce_lab.comparison.compare import build_configs, parse_losses, train_and_compare
    from ce_lab.config import keyword_overrides

    names = parse_losses(losses if isinstance(losses, str) else ",".join(losses))
    base = _base_config(config, overrides, keyword_overrides(
        epochs=epochs, max_steps=max_steps, lr=lr, optimizer=optimizer, batch_size=batch_size,
        device=device, out_dir=out_dir, data_dir=data_dir))
    if reference is not None and reference not in names:
        raise UsageError(f"reference {reference!r} is not among the losses ({', '.join(names)})")
    for loss in loss_overrides or {}:
        if loss not in names:
            raise UsageError(f"loss_overrides names {loss!r}, which is not among the losses "
                             f"({', '.join(names)})")
    if sort:
        check_sort_key(sort, base.log.thresholds)
    configs = build_configs(base, names, _seed_list(seeds) or [base.seed],
                            {k: dict(v) for k, v in (loss_overrides or {}).items()})
    kwargs = {} if max_members is None else {"max_members": max_members}
    trained = train_and_compare(configs, base.out_dir, reference=reference, sort=sort,
                                plots=plots, reporter=_reporter(progress), **kwargs)
    if trained.result is None:
        failed = [f"{o.run_dir}: {o.message}" for o in trained.outcomes if o.message]
        raise CeLabError("no run finished; nothing to compare" +
                         (f" ({'; '.join(failed)})" if failed else ""))
    return _comparison(trained.result, trained.interrupted)


def _comparison(result: ComparisonResult, interrupted: bool = False) -> Comparison:
    runs = [Run(row_record.path) for row in result.table.rows for row_record in row.records]
    return Comparison(result, runs, interrupted)


def compare_runs(runs: Any, *, out_dir: str | Path | None = None, reference: str | None = None,
                 sort: str | None = None, plots: bool = True) -> Comparison:
    """Compare runs already on disk (Runs, folders, or a load_runs DataFrame), as
    ``ce-lab compare RUN...``; the comparison folder goes under ``out_dir`` (default: beside the
    runs). Unreadable runs are skipped with a warning."""
    from ce_lab.comparison.build import build_table
    from ce_lab.comparison.compare import write_comparison
    from ce_lab.runs.folder import create_comparison_dir
    from ce_lab.runs.record import select_runs

    paths = _paths(runs)
    records, skipped = select_runs(Path(out_dir or "runs"), paths=paths)
    for line in skipped:
        warnings.warn(f"skipped: {line}", stacklevel=2)
    if not records:
        raise UsageError(f"no runs to compare ({len(skipped)} skipped)")
    build_table(records, sort=sort)  # a bad --sort or a seed twice: nothing written
    parents = {r.path.resolve().parent for r in records}
    root = Path(out_dir) if out_dir is not None else (parents.pop() if len(parents) == 1
                                                      else Path("runs"))
    comp_dir = create_comparison_dir(root)
    try:
        result = write_comparison(records, comp_dir, reference=reference, sort=sort,
                                  plots=plots, skipped=skipped)
    except BaseException:
        import shutil

        shutil.rmtree(comp_dir, ignore_errors=True)  # no half-written compare-* folder
        raise
    return _comparison(result)


# ---------------------------------------------------------------------------------------------
# Many runs as tables


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def load_runs(out_dir: str | Path = "runs", *, status: Sequence[str] | str = (),
              loss: Sequence[str] | str = (), group: str | None = None,
              last: int | None = None) -> pd.DataFrame:
    """One row per run folder under ``out_dir``, newest first: run, loss, status, flags, seed,
    group, started, path, every config key flattened (``optim.lr``, ``model.hidden`` as a
    tuple, ...) and the summary's numbers under the comparison table's names (``final_val_acc``,
    ``steps_to_0.90``, ...). Folders that cannot be read are skipped with a warning."""
    from ce_lab import metrics as registry
    from ce_lab.comparison.build import flatten, metric_columns, run_metrics
    from ce_lab.runs.listing import filter_runs, list_row, list_runs

    pd = _pandas()
    entries, skipped = list_runs(Path(out_dir))
    for line in skipped:
        warnings.warn(f"skipped: {line}", stacklevel=2)
    entries = filter_runs(entries, status=[status] if isinstance(status, str) else status,
                          loss=[loss] if isinstance(loss, str) else loss, group=group, last=last)
    columns = metric_columns(registry.param_values([e.summary for e in entries if e.summary]))
    rows = []
    for e in entries:
        row = list_row(e)
        row["flags"] = ",".join(row["flags"])
        for key in ("val_acc", "test_acc"):  # the registry's final_* columns say these
            row.pop(key)
        row.update({k: _hashable(v) for k, v in flatten(e.config).items() if k not in row})
        row.update({k: v for k, v in e.summary.items()
                    if k not in row and not isinstance(v, (dict, list))})
        row.update(run_metrics(e, columns) if e.summary else {c.key: None for c in columns})
        rows.append(row)
    return pd.DataFrame(rows)


def _paths(runs: Any) -> list[Path]:
    if isinstance(runs, (str, Path, Run)):
        runs = [runs]
    if hasattr(runs, "columns") and "path" in getattr(runs, "columns", ()):
        return [Path(p) for p in runs["path"]]  # a load_runs DataFrame
    out = []
    for r in runs:
        out.append(r.dir if isinstance(r, Run) else Path(r))
    return out


def load_metrics(runs: Any, *, kind: str = "metrics") -> pd.DataFrame:
    """Every metrics.csv row (``kind="evals"``: eval.csv) of ``runs`` (a load_runs DataFrame,
    Runs or folders) one under another, with the run id as a first column ``run`` (merge with
    load_runs on it for the config). A run whose file cannot be read is skipped with a warning."""
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.read import read_csv_columns

    if kind not in ("metrics", "evals"):
        raise UsageError(f"kind must be 'metrics' or 'evals', got {kind!r}")
    pd = _pandas()
    frames = []
    for path in _paths(runs):
        try:
            run = Run(path)
            df = _frame(read_csv_columns(path / (METRICS if kind == "metrics" else EVALS)))
        except RunFolderError as e:
            warnings.warn(f"skipped: {e}", stacklevel=2)
            continue
        df.insert(0, "run", run.id)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run"])
    return pd.concat(frames, ignore_index=True)

