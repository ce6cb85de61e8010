"""Reading a run folder back, as untrusted input: meta.json, summary.json, config.yaml and the CSVs.

Every read is bounded and takes only regular files (``ce_lab.safe_io``'s limited reads); every
field the code uses is type-checked (``summary_problem``, ``meta_problem``). A folder that is
missing, unfinished or corrupt raises ``RunFolderError`` with one line naming the folder and the
reason, so a comparison can report it and go on with the other runs. meta.json and summary.json
come out in today's shape, whatever the folder's format (``ce_lab.runs.formats``). No torch here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import Status
from ce_lab.runs.formats import (
    OLD_GRAD_KEYS,
    NewerFormat,
    upgrade_meta,
    upgrade_summary,
    version,
    version_problem,
)
from ce_lab.runs.names import CONFIG, META, SUMMARY
from ce_lab.safe_io import (
    MAX_CSV_BYTES,
    MAX_JSON_BYTES,
    MAX_YAML_BYTES,
    UnreadableFile,
    read_limited_text,
)

# ---------------------------------------------------------------------------------------------
# Reading


def read_json(path: Path) -> Any:
    """JSON of at most MAX_JSON_BYTES from a regular file; errors as Python raises them, or
    UnreadableFile (for files ce-lab itself just wrote)."""
    return json.loads(read_limited_text(Path(path), MAX_JSON_BYTES))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV as {column: text}; for files ce-lab itself wrote (bounded, regular)."""
    text = read_limited_text(Path(path), MAX_CSV_BYTES)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _why(e: BaseException) -> str:
    if isinstance(e, UnreadableFile):
        return e.reason
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return " ".join(str(e).split())


def read_mapping(path: Path, folder: Path | None = None) -> dict[str, Any]:
    """A JSON object (``.json``) or YAML mapping (else) from a run folder; RunFolderError says
    what is wrong, naming ``folder`` (default: the file's folder). The file is untrusted: it must
    be a regular file (symlinks followed) within its size bound, and parse to a mapping."""
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
    if path.suffix == ".json":
        parse, errors, kind, limit = json.loads, (json.JSONDecodeError,), "a JSON object", MAX_JSON_BYTES
    else:
        parse, errors, kind, limit = _safe_yaml, (yaml.YAMLError,), "a mapping", MAX_YAML_BYTES
    try:
        data = parse(read_limited_text(path, limit))
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: corrupt run folder (no {path.name})") from None
    except (OSError, UnreadableFile, RecursionError, ValueError, *errors) as e:
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {_why(e)})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name} is not {kind})")
    return data


def _safe_yaml(text: str) -> Any:
    """yaml.safe_load behind the config reader's guards against alias bombs and deep nesting."""
    from ce_lab.yaml_files import shape_problem

    problem = shape_problem(text)
    if problem:
        raise ValueError(f"line {problem}")
    return yaml.safe_load(text)


def read_meta(run_dir: Path) -> dict[str, Any]:
    """A run's meta.json in today's shape (``ce_lab.runs.formats``); RunFolderError (one line) if
    it is missing, not a JSON object or of a newer format.

    Every reader of meta.json goes through here; callers that only peek (ordering, grouping)
    catch RunFolderError and treat the folder as unknown. The types of the fields readers use
    are checked (a ``"pid": "x"`` is a corrupt folder, not a traceback later).
    """
    return read_versioned_meta(run_dir)[0]


def read_versioned_meta(run_dir: Path) -> tuple[dict[str, Any], int]:
    """``read_meta`` and the folder's format, which its summary.json is read under."""
    meta = read_mapping(Path(run_dir) / META)
    problem = meta_problem(meta)
    if problem:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({META}: {problem})")
    try:
        return upgrade_meta(meta)
    except NewerFormat as e:
        raise RunFolderError(f"{run_dir}: {e}") from None


SUMMARY_REQUIRED = ("status", "loss", "steps")


def read_summary(run_dir: Path, folder_version: int | None = None) -> dict[str, Any]:
    """A run's summary.json (written when the run ended) in today's shape; RunFolderError if
    missing, corrupt, or holding a field of the wrong type. ``folder_version``: the run's format
    (``read_versioned_meta``); None: read from its meta.json here."""
    summary = read_mapping(Path(run_dir) / SUMMARY)
    missing = [k for k in SUMMARY_REQUIRED if k not in summary]
    if missing:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({SUMMARY} lacks {', '.join(missing)})")
    problem = summary_problem(summary)
    if problem:
        raise RunFolderError(f"{run_dir}: corrupt run folder ({SUMMARY}: {problem})")
    if folder_version is None:
        folder_version = _meta_version(Path(run_dir))
    return upgrade_summary(summary, folder_version)


def _meta_version(run_dir: Path) -> int:
    # A summary whose meta.json is unreadable is read as format 0, whose upgrade reads any.
    try:
        meta = read_mapping(run_dir / META)
    except RunFolderError:
        return 0
    try:
        return 0 if version_problem(meta) else version(meta, META)
    except NewerFormat as e:
        raise RunFolderError(f"{run_dir}: {e}") from None


def read_config_mapping(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml as plain data (not validated: an old run stays readable)."""
    return read_mapping(Path(run_dir) / CONFIG)


def read_status(run_dir: Path) -> Status | None:
    """The status meta.json records; None if unreadable or not a known status."""
    try:
        return Status(read_meta(run_dir).get("status"))
    except (RunFolderError, ValueError):
        return None


def read_effective_status(run_dir: Path) -> Status | None:
    """The status a run folder stands at (``crashed`` for a ``running`` one whose owner is gone,
    see ce_lab.runs.liveness); None if meta.json is unreadable or holds no known status."""
    from ce_lab.runs.liveness import effective_status

    try:
        return effective_status(read_meta(run_dir))
    except RunFolderError:
        return None


def read_csv_columns(path: Path, required: Sequence[str] = (),
                     folder: Path | None = None) -> dict[str, list[float]]:
    """A numeric CSV as columns of floats; float() reads the nan / inf / -inf the writer uses.

    RunFolderError (naming ``folder``, default the file's folder) if the file is missing, not a
    regular file, over MAX_CSV_BYTES, empty, lacks a ``required`` column, or has a ragged or
    non-numeric row.
    """
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
    try:
        reader = csv.reader(io.StringIO(read_limited_text(path, MAX_CSV_BYTES), newline=""))
        header = next(reader, None)
        if header is None:
            raise RunFolderError(f"{folder}: corrupt run folder ({path.name} is empty)")
        missing = [c for c in required if c not in header]
        if missing:
            raise RunFolderError(
                f"{folder}: corrupt run folder ({path.name} lacks column(s) "
                f"{', '.join(missing)})"
            )
        columns: dict[str, list[float]] = {name: [] for name in header}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise RunFolderError(
                    f"{folder}: corrupt run folder ({path.name} line {line_no} has "
                    f"{len(row)} fields, header has {len(header)})"
                )
            try:
                # An empty cell was not computed at that step (a diverged step that was not a
                # logged one has only its loss and gradient norms): NaN, as pandas reads it.
                values = [float(v) if v else math.nan for v in row]
            except ValueError as e:
                raise RunFolderError(
                    f"{folder}: corrupt run folder ({path.name} line {line_no}: {e})"
                ) from None
            for name, value in zip(header, values, strict=True):
                columns[name].append(value)
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: corrupt run folder (no {path.name})") from None
    except (OSError, UnreadableFile, csv.Error) as e:
        raise RunFolderError(f"{folder}: corrupt run folder ({path.name}: {_why(e)})") from None
    return columns


# ---------------------------------------------------------------------------------------------
# The fields readers use, checked: a summary.json or meta.json that is valid JSON may still hold
# anything. Each check returns the first problem as text, or None.

_NUM = "a number or null"


def is_number(v: Any) -> bool:
    """A JSON number as Python reads it: an int or a float, never a bool (True is an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_integer(v: Any) -> bool:
    """A JSON integer: an int, never a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any, *, none: bool = True) -> bool:
    return none if v is None else is_number(v)


def _is_int(v: Any, *, none: bool = False) -> bool:
    return none if v is None else is_integer(v)


# grad_summary's windows, the first and the last tenth of the logged rows: their keys (format 0's
# runs summarised epochs under other keys, read as these: ce_lab.runs.formats).
GRAD_WINDOWS = {"early": "early", "late": "late"}
LOGIT_GRAD_WINDOWS = {"early": "logit_grad_norm_early", "late": "logit_grad_norm_late"}
_FORMAT_0_KEY = {new: old for old, new in OLD_GRAD_KEYS.items()}  # checked as the file has them


def grad_window(summary: Mapping[str, Any], key: str) -> Any:
    """grad_summary's entry under ``key`` (None if it has none)."""
    gs = summary.get("grad_summary")
    return gs.get(key) if isinstance(gs, Mapping) else None


def grad_value(summary: Mapping[str, Any], window: str, layer: str | None = None) -> Any:
    """grad_summary's mean over a window ("early", "late"): of a tensor's gradient norm (``layer``)
    or, without one, of logit_grad_norm. None where the run has none."""
    if layer is None:
        return grad_window(summary, LOGIT_GRAD_WINDOWS[window])
    node = grad_window(summary, GRAD_WINDOWS[window])
    return node.get(layer) if isinstance(node, Mapping) else None


def summary_problem(summary: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a summary.json's fields that readers use; None if fine."""
    checks: list[tuple[str, bool, str]] = [
        ("status", isinstance(summary.get("status"), str), "a string"),
        ("loss", isinstance(summary.get("loss"), str), "a string"),
        ("steps", _is_int(summary.get("steps")), "an integer"),
        ("seed", _is_int(summary.get("seed"), none=True), "an integer or null"),
    ]
    for key in ("epochs_completed", "examples", "wall_seconds", "seconds_per_epoch",
                "best_val_acc", "best_val_step", "val_acc_auc", "diverged_at"):
        checks.append((key, _is_num(summary.get(key)), _NUM))
    for key in ("diverged_quantity", "group"):
        checks.append((key, summary.get(key) is None or isinstance(summary.get(key), str),
                       "a string or null"))
    for key, ok, want in checks:
        if not ok:
            return f"{key} is not {want}"
    final = summary.get("final")
    if final is not None:
        if not isinstance(final, dict):
            return "final is not an object"
        bad = next((k for k, v in final.items() if not _is_num(v)), None)
        if bad is not None:
            return f"final.{bad} is not {_NUM}"
    flags = summary.get("flags")  # absent in runs written before flags existed
    if flags is not None and (not isinstance(flags, list)
                              or not all(isinstance(f, str) for f in flags)):
        return "flags is not a list of strings"
    thresholds = summary.get("thresholds")
    if thresholds is not None and (not isinstance(thresholds, list)
                                   or not all(_is_num(t, none=False) for t in thresholds)):
        return "thresholds is not a list of numbers"
    conv = summary.get("convergence")
    if conv is not None:
        if not isinstance(conv, dict):
            return "convergence is not an object"
        for k, hit in conv.items():
            if hit is None:
                continue
            if not isinstance(hit, dict):
                return f"convergence.{k} is not an object or null"
            bad = next((f for f in ("step", "examples", "seconds") if not _is_num(hit.get(f))),
                       None)
            if bad is not None:
                return f"convergence.{k}.{bad} is not {_NUM}"
    grads = summary.get("grad_summary")
    if grads is not None:
        if not isinstance(grads, dict):
            return "grad_summary is not an object"
        for part in (k for key in GRAD_WINDOWS.values() for k in (key, _FORMAT_0_KEY[key])):
            layers = grads.get(part)
            if layers is None:
                continue
            if not isinstance(layers, dict):
                return f"grad_summary.{part} is not an object"
            bad = next((k for k, v in layers.items() if not _is_num(v)), None)
            if bad is not None:
                return f"grad_summary.{part}.{bad} is not {_NUM}"
        for key in (k for new in LOGIT_GRAD_WINDOWS.values() for k in (new, _FORMAT_0_KEY[new])):
            if not _is_num(grads.get(key)):
                return f"grad_summary.{key} is not {_NUM}"
        for key in ("early_steps", "late_steps"):
            steps = grads.get(key)
            if steps is not None and not (isinstance(steps, list) and len(steps) == 2
                                          and all(_is_int(v) for v in steps)):
                return f"grad_summary.{key} is not a [first, last] pair of steps"
    return None


def meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a meta.json's fields that readers use; None if fine."""
    for key in ("status", "run_id", "group", "started", "host", "heartbeat"):
        v = meta.get(key)
        if v is not None and not isinstance(v, str):
            return f"{key} is not a string"
    for key in ("pid", "pid_start"):
        if not _is_int(meta.get(key), none=True):
            return f"{key} is not an integer"
    fused = meta.get("fused_with")
    if fused is not None and (not isinstance(fused, list)
                              or not all(isinstance(x, str) for x in fused)):
        return "fused_with is not a list of run ids"
    resumed = meta.get("resumed")
    if resumed is not None and (not isinstance(resumed, list)
                                or not all(isinstance(x, dict) for x in resumed)):
        return "resumed is not a list of objects"
    return version_problem(meta)
