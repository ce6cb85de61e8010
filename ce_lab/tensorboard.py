"""TensorBoard event files of runs: every metric as a scalar, the config in the HParams plugin.

One writer, used both live (``log.tensorboard: true``: each member of a stack writes into its own
run folder as it logs its rows) and after the fact (``ce-lab export tensorboard``, from the CSVs),
so both give the same tags: each CSV column under its own name in a numbered section
(``1_validation/val_acc``, ``2_test/test_acc``, ``3_train/loss``, ``4_gradients/grad_norm/fc1.weight``
...; ``tag``), and ``test_loss``/``test_acc`` at the last step. TensorBoard groups a run's cards by
the tag's part before the first "/" and orders the groups by that text (numbers by value), opening
the first two: the numbers put validation and test first, before training batches and gradient
norms, which plain names would sort ahead of them ("acc" < "grad_norm" < "val_acc").

An export nests the runs by their group (the comparison or batch, meta.json "group") and names each
by the config keys that differ within it (``loss=mse lr=3.16 seed=0``, ``run_names``); the HParams
values are the keys that differ between the exported runs (``hparam_keys``), so TensorBoard's
table shows those columns, not constants. It uses the ``tensorboard`` package's own event-file
writer and protos (``pip install "ce-lab[tensorboard]"``), without torch or TensorFlow. Events
carry the run's wall time (start + ``wall_s``), so TensorBoard's relative time axis is the run's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ce_lab.errors import require

# CSV columns that are the x axis (or its variants), not values to plot.
AXIS_COLUMNS = frozenset({"step", "epoch", "examples", "wall_s"})
EVENTS_PREFIX = "events.out.tfevents."
# A column's section, by the start of its name; any other column is a training batch's.
SECTIONS = (("val_", "1_validation"), ("test_", "2_test"), ("grad_norm/", "4_gradients"),
            ("logit_grad_norm", "4_gradients"), ("update_ratio/", "5_updates"),
            ("saturated_", "6_saturation"))
TRAIN_SECTION = "3_train"


def tag(column: str) -> str:
    """The scalar's tag: the CSV column under its section, "val_acc" -> "1_validation/val_acc"."""
    section = next((s for start, s in SECTIONS if column.startswith(start)), TRAIN_SECTION)
    return f"{section}/{column}"


# Short names of config keys in a run's name; any other key by its last part, or whole where
# two keys of one name share it.
SHORT_KEYS = {"loss.name": "loss", "optim.lr": "lr", "optim.name": "optimizer"}


def _shown(value: Any) -> str:
    if isinstance(value, float):  # 3 significant digits (a tuned 3.1622... as 3.16), 1000 whole
        short = f"{value:.3g}"
        return f"{value:g}" if "e" in short and abs(value) >= 1 else short
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(x) for x in value) + "]"
    return str(value)


def run_names(records: Sequence[Any]) -> list[str]:
    """Each run's TensorBoard name within its group: the result keys that differ between the
    runs, the loss first and the seed last (``loss=mse lr=3.16 seed=0``); the run id where
    nothing differs, or where two runs would share a name (then both are named by their ids).
    Plain: no path separator or control character, whatever the config held."""
    from ce_lab.config import NON_RESULT_KEYS, differing_keys, flatten
    from ce_lab.shown import printable

    keys = differing_keys([r.config for r in records], ignore=NON_RESULT_KEYS)
    keys = sorted(keys, key=lambda k: (k != "loss.name", k == "seed"))
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    short = [SHORT_KEYS.get(k, last if lasts.count(last) == 1 else k)
             for k, last in zip(keys, lasts)]
    names = []
    for r in records:
        flat = flatten(r.config)
        text = " ".join(f"{s}={_shown(flat.get(k))}" for s, k in zip(short, keys))
        names.append(printable(text or str(r.run_id)).translate(_UNSAFE))
    # A name two runs share, or too long for a folder (many swept keys): the run's id instead.
    return [n if names.count(n) == 1 and len(n.encode()) <= MAX_NAME_BYTES
            else printable(str(r.run_id)).translate(_UNSAFE) for n, r in zip(names, records)]


MAX_NAME_BYTES = 200  # file systems allow 255 per name


_UNSAFE = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


def hparam_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The config keys whose values differ between the runs (and may change a result): the
    HParams columns; the loss alone where nothing differs."""
    from ce_lab.config import NON_RESULT_KEYS, differing_keys

    return differing_keys(configs, ignore=NON_RESULT_KEYS) or ["loss.name"]


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
        values = [value(tag=tag(k), simple_value=float(v)) for k, v in row.items()
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


def _only(flat_config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return hparam_values({k: flat_config.get(k) for k in keys})


def open_live(run_dir: Path, run_id: str, flat_config: Mapping[str, Any],
              meta: Mapping[str, Any], resumed: bool = False,
              keys: Sequence[str] = ("loss.name", "seed")) -> RunEvents:
    """The live writer of a run that starts in ``run_dir``, its HParams the config ``keys``
    (the caller's: those that differ in its stack). A resumed run's CSVs were just cut back to
    its checkpoint: its event file is written anew from them, then goes on live, so the events
    hold each logged step once, as the CSVs do."""
    from ce_lab.runs.names import EVALS, METRICS
    from ce_lab.runs.read import read_csv_columns

    if resumed:
        _replace_events(run_dir)
    events = RunEvents(run_dir, started_timestamp(meta))
    events.hparams(_only(flat_config, keys), run_id)
    if resumed:
        _write_rows(events, [read_csv_columns(run_dir / METRICS), read_csv_columns(run_dir / EVALS)])
    return events


def export_run(record, logdir: Path, keys: Sequence[str], trial_id: str) -> Path:
    """Write the event file of a finished run (a RunRecord) into ``logdir``, from its CSVs, its
    HParams the config ``keys`` under ``trial_id`` (unique in the export: runs of one id would
    be one row); event files an earlier export left there are replaced."""
    from ce_lab.config import flatten
    from ce_lab.safe_io import ensure_dir

    ensure_dir(logdir)  # a link there would send the files (and the removals) elsewhere
    _replace_events(logdir)
    events = RunEvents(logdir, started_timestamp(record.meta))
    try:
        events.hparams(_only(flatten(record.config), keys), trial_id)
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
