"""TensorBoard event files of runs: every metric as a scalar, the config in the HParams plugin.

One writer, used both live (``log.tensorboard: true``: each member of a stack writes into its own
run folder as it logs its rows) and after the fact (``ce-lab export tensorboard``, from the CSVs),
so both give the same tags: each CSV column under its own name (``loss``, ``grad_norm/fc1.weight``,
``val_acc``, ...), and ``test_loss``/``test_acc`` at the last step. It uses the ``tensorboard``
package's own event-file writer and protos (``pip install "ce-lab[tensorboard]"``), without torch
or TensorFlow. Events carry the run's wall time (start + ``wall_s``), so TensorBoard's relative
time axis is the run's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ce_lab.errors import require

# CSV columns that are the x axis (or its variants), not values to plot.
AXIS_COLUMNS = frozenset({"step", "epoch", "examples", "wall_s"})
EVENTS_PREFIX = "events.out.tfevents."


def _modules():
    require("tensorboard", "tensorboard", "TensorBoard event files")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return event_pb2, summary_pb2, summary_v2, EventFileWriter


def started_timestamp(meta: Mapping[str, Any]) -> float | None:
    """meta.json's ``started`` as seconds since the epoch (None if absent or unreadable)."""
    try:
        return dt.datetime.fromisoformat(str(meta["started"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def hparam_values(flat_config: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict:
    """Config keys as HParams values: numbers, booleans and text (a list as its text, null as
    "none"), so TensorBoard's table can sort and filter runs by each."""
    out: dict[str, Any] = {}
    for key, value in flat_config.items():
        if key in skip:
            continue
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is None:
            out[key] = "none"
        else:
            out[key] = str(list(value)) if isinstance(value, (list, tuple)) else str(value)
    return out


class RunEvents:
    """The event file of one run in ``logdir`` (its TensorBoard run is the folder's name)."""

    def __init__(self, logdir: Path | str, start_time: float | None = None):
        self._event_pb2, self._summary_pb2, self._hparams, writer = _modules()
        self.start_time = start_time if start_time is not None else dt.datetime.now().timestamp()
        # flush_secs: events reach the disk at least this often while a run trains. The writer
        # opens its file by name, following links: a random suffix makes the name one nobody
        # could have planted a link at beforehand (TensorBoard reads any *tfevents* file).
        import secrets

        self._writer = writer(str(logdir), flush_secs=10,
                              filename_suffix=f".{secrets.token_hex(4)}")

    def _add(self, step: int, wall_time: float, **fields) -> None:
        self._writer.add_event(self._event_pb2.Event(step=int(step), wall_time=wall_time,
                                                     **fields))

    def hparams(self, values: Mapping[str, Any], trial_id: str) -> None:
        """The run's hyperparameters, for the HParams plugin (one session, at step 0)."""
        pb = self._hparams.hparams_pb(dict(values), trial_id=trial_id,
                                      start_time_secs=self.start_time)
        self._add(0, self.start_time, summary=pb)

    def scalars(self, row: Mapping[str, Any], step: int | None = None,
                wall_s: float | None = None) -> None:
        """One CSV row: every value column at the row's step (nan/inf are kept, as logged)."""
        step = int(row["step"]) if step is None else step
        wall_s = row.get("wall_s") if wall_s is None else wall_s
        wall = self.start_time + (float(wall_s) if wall_s is not None
                                  and math.isfinite(float(wall_s)) else 0.0)
        value = self._summary_pb2.Summary.Value
        values = [value(tag=k, simple_value=float(v)) for k, v in row.items()
                  if k not in AXIS_COLUMNS and v is not None]
        if values:
            self._add(step, wall, summary=self._summary_pb2.Summary(value=values))

    def close(self) -> None:
        self._writer.close()


def test_scalars(test: Mapping[str, Any]) -> dict[str, float]:
    """The test set's numbers as scalars ("test_acc", "test_ece", ...): loss, accuracy and
    calibration; structured values (the reliability bins) are not scalars and are left out."""
    from ce_lab.runs.read import is_number

    return {f"test_{k}": v for k, v in test.items() if is_number(v)}


def _replace_events(logdir: Path) -> None:
    """Remove the event files an earlier writer left in ``logdir`` (they are rewritten)."""
    for old in logdir.glob(EVENTS_PREFIX + "*"):
        old.unlink()


def _write_rows(events: RunEvents, tables) -> None:
    for table in tables:  # columns of floats, as ce_lab.runs.read reads a CSV
        names = list(table)
        for values in zip(*table.values()):
            events.scalars(dict(zip(names, values)))


def open_live(run_dir: Path, run_id: str, flat_config: Mapping[str, Any],
              meta: Mapping[str, Any], resumed: bool = False) -> RunEvents:
    """The live writer of a run that starts in ``run_dir``. A resumed run's CSVs were just cut
    back to its checkpoint: its event file is written anew from them, then goes on live, so the
    events hold each logged step once, as the CSVs do."""
    from ce_lab.config import NON_RESULT_KEYS
    from ce_lab.runs.names import EVALS, METRICS
    from ce_lab.runs.read import read_csv_columns

    if resumed:
        _replace_events(run_dir)
    events = RunEvents(run_dir, started_timestamp(meta))
    events.hparams(hparam_values(flat_config, NON_RESULT_KEYS), run_id)
    if resumed:
        _write_rows(events, [read_csv_columns(run_dir / METRICS), read_csv_columns(run_dir / EVALS)])
    return events


def export_run(record, logdir: Path) -> Path:
    """Write the event file of a finished run (a RunRecord) into ``logdir``, from its CSVs;
    event files an earlier export left there are replaced."""
    from ce_lab.config import NON_RESULT_KEYS, flatten
    from ce_lab.safe_io import ensure_dir

    ensure_dir(logdir)  # a link there would send the files (and the removals) elsewhere
    _replace_events(logdir)
    events = RunEvents(logdir, started_timestamp(record.meta))
    try:
        events.hparams(hparam_values(flatten(record.config), NON_RESULT_KEYS), record.run_id)
        _write_rows(events, [record.metrics, record.evals])
        final = record.summary.get("final") or {}
        steps = record.summary.get("steps")
        test = test_scalars({k.removeprefix("test_"): v for k, v in final.items()
                             if k.startswith("test_")})
        if isinstance(steps, int) and any(v is not None for v in test.values()):
            events.scalars(test, step=steps, wall_s=record.summary.get("wall_seconds"))
    finally:
        events.close()
    return logdir
