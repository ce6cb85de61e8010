"""The Python API's reading half: ``Run`` (one run folder), ``load_run``, ``load_runs`` and
``load_metrics``. Tables come back as pandas DataFrames (``pip install "ce-lab[pandas]"``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import ParamError, require
from ce_lab.runs.names import EVALS, METRICS

if TYPE_CHECKING:
    import pandas as pd

    from ce_lab.runs.record import RunRecord

INT_COLUMNS = ("step", "epoch", "examples")  # CSV columns that are counts


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
    _entry: RunRecord = field(init=False, repr=False)

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


def _path(value: Any, param: str) -> Path:
    if not isinstance(value, (str, Path)):
        raise ParamError(f"«{param}» must be a folder (str or Path), got {value!r}")
    return Path(value)


def load_run(path: str | Path) -> Run:
    """The run folder ``path``; RunFolderError (one line) when it is not a readable run."""
    return Run(_path(path, "path"))



# ---------------------------------------------------------------------------------------------
# Many runs as tables


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def load_runs(out_dir: str | Path = "runs", *, status: Sequence[str] | str = (),
              loss: Sequence[str] | str = (), group: str | None = None,
              last: int | None = None, where: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per run folder under ``out_dir``, newest first: run, loss, status, flags, seed,
    group, started, path, every config key flattened (``optim.lr``, ``model.hidden`` as a
    tuple, ...) and the summary's numbers under the comparison table's names (``final_val_acc``,
    ``steps_to_0.90``, ...). Folders that cannot be read are skipped with a warning.

    ``where``: only the runs whose config holds each value, e.g. ``{"optim.lr": 0.1}``
    (numbers by value, as ``ce-lab runs --where``); a key no run has raises ParamError."""
    from ce_lab import metrics as registry
    from ce_lab.comparison.build import metric_columns, run_metrics
    from ce_lab.config import flatten
    from ce_lab.lab import params
    from ce_lab.lab.listing import list_runs
    from ce_lab.runs.listing import list_row

    root = _path(out_dir, "out_dir")
    status, loss = params.name_filter(status, "status"), params.name_filter(loss, "loss")
    group = params.optional_str(group, "group")
    last = params.optional_positive_int(last, "last")
    pd = _pandas()
    listing = list_runs(root, status=status, loss=loss, group=group, last=last, where=where)
    for line in listing.skipped:
        warnings.warn(f"skipped: {line}", stacklevel=2)
    entries = listing.entries
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
        runs = list(runs["path"])  # a load_runs DataFrame
    if isinstance(runs, Mapping) or not isinstance(runs, Iterable):
        raise ParamError(f"«runs» must be Runs, run folders (str or Path) or a load_runs "
                         f"DataFrame, got {runs!r}")
    out = []
    for r in runs:
        if not isinstance(r, (str, Path, Run)):
            raise ParamError(f"«runs» must be Runs or run folders (str or Path), got {r!r}")
        out.append(r.dir if isinstance(r, Run) else Path(r))
    return out


def load_metrics(runs: Any, *, kind: str = "metrics") -> pd.DataFrame:
    """Every metrics.csv row (``kind="evals"``: eval.csv) of ``runs`` (a load_runs DataFrame,
    Runs or folders) one under another, with the run id as a first column ``run`` (merge with
    load_runs on it for the config). A run whose file cannot be read is skipped with a warning."""
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.read import read_csv_columns

    if not isinstance(kind, str) or kind not in ("metrics", "evals"):
        raise ParamError(f"«kind» must be 'metrics' or 'evals', got {kind!r}")
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


