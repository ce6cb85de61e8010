"""Configs as dotted keys: a RunConfig's ``to_dict`` and a run folder's config.yaml alike (an
old run's may lack keys added since). One definition of flattening, of a value's identity and of
which keys differ, for comparisons, ``runs diff``, stack labels and batches. Imports nothing of
ce_lab; ``ce_lab.config`` re-exports these names."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

# Config keys that never change a result; they differ between runs without meaning anything.
NON_RESULT_KEYS = frozenset({
    "out_dir", "data.root", "data.download", "log.progress", "log.checkpoint",
    "train.eval_batch_size", "log.tensorboard",
})


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; no config value is itself a mapping
    (an empty one is kept as a value)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def parse_value(raw: str) -> Any:
    """A value typed after ``key=`` (``--set``, ``--where``): a YAML scalar or flow list; text
    that is not YAML stays text (validation, or the comparison, says what is wrong with it)."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        return raw


def shown(v: Any) -> str:
    """A config value as text: lists as [a, b]."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def same(v: Any) -> str:
    """A config value's identity for comparing and grouping (lists and numbers compare as JSON)."""
    return json.dumps(v, sort_keys=True, default=str)


def differing_keys(configs: Iterable[Mapping[str, Any]], *, ignore: Collection[str] = (),
                   absent_differs: bool = False) -> list[str]:
    """The dotted keys whose values are not all equal across nested ``configs``, in config order
    (as first seen), but those in ``ignore``. A key a config lacks reads as null, as a key the
    code of its day did not have; ``absent_differs``: as a value unlike any other (``runs diff``
    shows it as absent)."""
    flats = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f))

    def identity(f: dict[str, Any], key: str) -> str:
        if key not in f and absent_differs:
            return "<absent>"  # not JSON: unlike the identity of any value
        return same(f.get(key))

    return [k for k in keys if k not in ignore and len({identity(f, k) for f in flats}) > 1]
