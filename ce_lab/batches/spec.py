"""The batch file: a base config and the overrides that turn it into many runs.

```yaml
name: seeds                # the batch folder is named after it
description: free text     # optional, for the reader
base: ../default.yaml      # a config file (relative to this file's folder) or an inline mapping
grid:                      # dotted keys to lists of values: every combination runs
  loss.name: [ce, mse]
runs:                      # explicit override mappings, each combined with every grid point
  - {optim.lr: 0.1}
  - {optim.lr: 0.01, optim.momentum: 0.9}
seeds: [0, 1, 2]           # shorthand for a grid over `seed`
```

Entries expand as runs x grid x seeds, in that order (the last one varies fastest). Their number is
counted before anything is expanded, and a batch of more than ``max_entries`` (default
``DEFAULT_MAX_ENTRIES``) is refused: a small file can describe a grid too big to hold. Every entry is
validated as a ``RunConfig`` before anything runs; errors name the entry and the key. An entry is
identified by its *config hash*: the SHA-256 of the canonical JSON (sorted keys, no spaces) of its
resolved config without ``out_dir``. Two entries that resolve to the same config are an error.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ce_lab.batches.sizes import DEFAULT_MAX_ENTRIES, count_entries
from ce_lab.config import (
    RunConfig,
    check_trains,
    flatten,
    load_config,
    parse_set,
    to_dict,
    validate,
    validate_model,
    with_overrides,
)
from ce_lab.errors import ConfigError, ParamError
from ce_lab.shown import capped
from ce_lab.yaml_files import read_yaml_mapping

# Keys the batch sets once for all its entries; a grid or run entry may not vary them.
BATCH_WIDE_KEYS = ("out_dir",)


class BatchFile(BaseModel):
    """The batch YAML file as written (before expansion)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)  # folder-safe
    description: str = ""
    base: dict[str, Any] | str | None = None  # inline config, or a config file path; None: defaults
    grid: dict[str, list[Any]] = {}
    runs: list[dict[str, Any]] = []
    seeds: list[int] | None = None

    @field_validator("grid")
    @classmethod
    def _non_empty_lists(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid key '{key}' has no values")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("seeds is empty; leave it out to use the base seed")
            if len(set(v)) != len(v):
                raise ValueError("seeds repeat a value")
            if any(s < 0 for s in v):
                raise ValueError("seeds must be >= 0")
        return v


@dataclass(frozen=True)
class Entry:
    """One run of a batch: its position, its overrides of the base and the config they make."""

    index: int
    overrides: dict[str, Any]  # dotted key -> value
    config: RunConfig
    config_hash: str


@dataclass(frozen=True)
class Batch:
    """A parsed, expanded and validated batch file."""

    spec: BatchFile
    text: str  # the batch file as written, copied into the batch folder
    source: Path | None
    base: RunConfig  # after --set and --out-dir
    entries: list[Entry]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def out_dir(self) -> Path:
        return Path(self.base.out_dir)

    def varied_keys(self) -> list[str]:
        return varied_keys(self.entries)


def config_hash(cfg: RunConfig) -> str:
    """SHA-256 of the canonical JSON of the resolved config without ``out_dir``.

    ``out_dir`` only says where the run folder goes, so moving the runs (or naming another
    ``--out-dir``) keeps the identity of every entry. ``data.val_size: null`` is hashed as the size
    it stands for where the set's size is known (5000 for MNIST): a run whose config.yaml says
    5000, written before null was the default, is the same entry as a new one.
    """
    from ce_lab.data.sets import N_TRAIN, default_val_size

    data = to_dict(cfg)
    for key in BATCH_WIDE_KEYS:
        data.pop(key, None)
    section = data.get("data", {})
    if section.get("val_size") is None and N_TRAIN.get(section.get("name")) is not None:
        section["val_size"] = default_val_size(N_TRAIN[section["name"]])
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def override_text(value: Any) -> str:
    """A value as it is written in a ``KEY=VALUE`` override (YAML flow spelling: ``null``,
    ``true``, ``[a,b]``), so a plan line can be pasted back into ``--set``."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def format_overrides(overrides: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={override_text(v)}" for k, v in overrides.items())


def varied_keys(entries: Sequence[Entry]) -> list[str]:
    """Override keys whose value is not the same in every entry, in first-seen order."""
    keys: list[str] = []
    for e in entries:
        keys.extend(k for k in e.overrides if k not in keys)
    out = []
    for k in keys:
        values = {json.dumps(e.overrides.get(k, None), sort_keys=True, default=str)
                  for e in entries}
        if len(values) > 1:
            out.append(k)
    return out


# ---------------------------------------------------------------------------------------------
# Loading and expansion


def read_batch_file(path: Path) -> tuple[BatchFile, str, dict[tuple[str, ...], int]]:
    """Parse and check the batch file's own structure (not yet the configs it makes)."""
    path = Path(path)
    if path.is_dir():
        from ce_lab.batches.store import BATCH_JSON

        if (path / BATCH_JSON).is_file():
            raise ConfigError(f"{path} is a batch folder, not a batch file; to continue it: "
                              f"ce-lab batch --resume {path}")
        raise ConfigError(f"{path} is a folder, not a batch file")
    if not path.is_file():
        raise ConfigError(f"batch file not found: {path}")
    data, marks = read_yaml_mapping(path)  # size, nesting and alias limits included
    spec = validate_model(BatchFile, data, str(path), marks)
    return spec, path.read_text(encoding="utf-8"), marks


def _base_config(spec: BatchFile, source: Path | None,
                 marks: dict[tuple[str, ...], int]) -> RunConfig:
    where = str(source) if source is not None else "batch file"
    if spec.base is None:
        return RunConfig()
    if isinstance(spec.base, str):
        path = Path(spec.base).expanduser()
        if not path.is_absolute() and source is not None:
            path = source.parent / path  # relative to the batch file, not the working folder
        if not path.is_file():
            raise ConfigError(f"{where}: base: config file not found: {path}")
        return load_config(path)
    base_marks = {p[1:]: line for p, line in marks.items() if p[:1] == ("base",) and len(p) > 1}
    return validate(spec.base, where, base_marks)  # the line number points into base


def apply_sets(base: RunConfig, sets: Sequence[str]) -> RunConfig:
    """``--set KEY=VALUE`` items on top of the base (parsed as ``ce-lab train`` parses them)."""
    for item in sets:
        path, value = parse_set(item)
        try:
            base = with_overrides(base, {".".join(path): value})
        except ConfigError as e:
            raise ConfigError(f"--set {capped(item)}: {e}") from None
    return base


def load_batch(path: Path, sets: Sequence[str] = (), out_dir: Path | None = None,
               overrides: Mapping[str, Any] | None = None,
               max_entries: int = DEFAULT_MAX_ENTRIES) -> Batch:
    """Read, expand and validate a batch file; ConfigError (one line) for the first problem.
    The base gets ``sets`` (``--set`` items), then ``overrides`` (dotted keys), then ``out_dir``."""
    path = Path(path)
    spec, text, marks = read_batch_file(path)
    base = _base_config(spec, path, marks)
    base = apply_sets(base, sets)
    if overrides:
        base = with_overrides(base, overrides)
    if out_dir is not None:
        base = with_overrides(base, {"out_dir": str(out_dir)})
    return Batch(spec, text, path, base, expand(spec, base, where=str(path),
                                                max_entries=max_entries))


def batch_from_saved(text: str, base: RunConfig, where: str,
                     max_entries: int = DEFAULT_MAX_ENTRIES) -> Batch:
    """Rebuild a batch from its copied file and its saved resolved base (``--resume``)."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the batch file copy is not a mapping")
    spec = validate_model(BatchFile, data, where)
    return Batch(spec, text, None, base, expand(spec, base, where=where, max_entries=max_entries))


def check_entry_count(spec: BatchFile, max_entries: int, where: str) -> int:
    """The entry count (runs x grid points x seeds, counted without expanding anything), or
    ParamError (one line naming it) when it is over ``max_entries``."""
    n = count_entries(spec.runs, spec.grid, spec.seeds)
    if n > max_entries:
        raise ParamError(f"{where}: the batch expands to {n:,} entries (runs x grid x seeds), over "
                         f"the limit of {max_entries:,}; raise it with «max_entries» N")
    return n


def _combinations(spec: BatchFile) -> list[tuple[str, dict[str, Any]]]:
    """(origin, flat overrides) for every entry, before validation."""
    if spec.seeds is not None and "seed" in spec.grid:
        raise ConfigError("seeds and grid both set 'seed'; keep one")
    runs = spec.runs or [{}]
    grid_keys = list(spec.grid)
    grid_points = list(itertools.product(*(spec.grid[k] for k in grid_keys)))
    seeds: list[int | None] = list(spec.seeds) if spec.seeds is not None else [None]
    out = []
    for r, run in enumerate(runs):
        run_flat = flatten(run)
        for point in grid_points:
            grid_flat: dict[str, Any] = {}
            for key, value in zip(grid_keys, point):
                grid_flat.update(flatten({key: value}) if isinstance(value, Mapping)
                                 else {key: value})
            for seed in seeds:
                origin = f"runs[{r}]" if spec.runs else ""
                clash = sorted(set(run_flat) & set(grid_flat))
                if clash:
                    raise ConfigError(
                        f"{origin}: key '{clash[0]}' is set both here and in grid; keep one"
                    )
                overrides = {**run_flat, **grid_flat}
                if seed is not None:
                    if "seed" in overrides:
                        raise ConfigError(f"{origin}: key 'seed' is set both here and in seeds; "
                                          "keep one")
                    overrides["seed"] = seed
                out.append((origin, overrides))
    return out


def expand(spec: BatchFile, base: RunConfig, where: str = "batch file",
           max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Entry]:
    """Every entry of the batch, validated; the error names the entry, its overrides and the key.
    A batch of more than ``max_entries`` is refused before anything is expanded."""
    check_entry_count(spec, max_entries, where)
    try:
        combos = _combinations(spec)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, (origin, overrides) in enumerate(combos):
        label = format_overrides(overrides) or "(base)"
        ident = f"{where}: entry {index} ({label}{', from ' + origin if origin else ''})"
        for key in overrides:
            if key.split(".")[0] in BATCH_WIDE_KEYS:
                raise ConfigError(
                    f"{ident}: '{key}' is one folder for the whole batch; set it in base or "
                    f"with --out-dir"
                )
        try:
            cfg = check_trains(with_overrides(base, overrides))
        except ConfigError as e:
            raise ConfigError(f"{ident}: {e}") from None
        digest = config_hash(cfg)
        if digest in seen:
            raise ConfigError(
                f"{ident}: same config as entry {seen[digest]}; every entry must differ"
            )
        seen[digest] = index
        entries.append(Entry(index, overrides, cfg, digest))
    return entries
