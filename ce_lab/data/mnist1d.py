"""MNIST-1D (Greydanus 2020, arXiv:2011.14439): 10 classes of 1-D signals of 40 values, 4,000
training and 1,000 test examples, generated from ten templates by the ``mnist1d`` package's own
``make_dataset`` (the optional extra ``ce-lab[mnist1d]``), so the data are the paper's generator's.

Generation takes seconds (the package also imports matplotlib and scipy), so the arrays are cached
under the data root, keyed by the generator's arguments: ``ROOT/MNIST1D/mnist1d-<key>.npz``, written
atomically by ce-lab, read back without pickle. The generator seeds numpy's and Python's global
random state; both are restored afterwards, so nothing else a run draws depends on it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ce_lab.errors import DataError

# The package's defaults (mnist1d.data.get_dataset_args), less its download URL: the paper's set.
ARGS: dict[str, Any] = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
    "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 2e-2,
    "shear_scale": 0.75, "shuffle_seq": False, "final_seq_length": 40, "seed": 42,
}
KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CACHE_BYTES = 16 << 20


def cache_key(args: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(root: Path, args: dict[str, Any] = ARGS) -> Path:
    return Path(root) / "MNIST1D" / f"mnist1d-{cache_key(args)}.npz"


def generate(args: dict[str, Any] = ARGS) -> dict[str, np.ndarray]:
    """The four arrays from the package's generator (x float32 (N, 40), y int64 (N,))."""
    import random

    from ce_lab.errors import require

    data = require("mnist1d.data", "mnist1d", "data.name: mnist1d")
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        made = data.make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x_train": made["x"].astype(np.float32), "y_train": made["y"].astype(np.int64),
            "x_test": made["x_test"].astype(np.float32), "y_test": made["y_test"].astype(np.int64)}


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    from ce_lab.safe_io import UnreadableFile, read_limited_bytes

    try:
        with np.load(io.BytesIO(read_limited_bytes(path, MAX_CACHE_BYTES)), allow_pickle=False) as z:
            arrays = {k: z[k] for k in KEYS}
    except (UnreadableFile, OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a usable MNIST-1D cache ({e}); remove it to generate the "
                        "data set again") from None
    return arrays


def load(root: Path, args: dict[str, Any] = ARGS) -> tuple[dict[str, np.ndarray], Path, str]:
    """The arrays, the cache file and where they came from ("cache" or "generated")."""
    from ce_lab.data.files import atomic_write

    path = cache_path(root, args)
    if path.exists():
        return _read_cache(path), path, "cache"
    arrays = generate(args)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write(path, buf.getvalue())
    except OSError:  # a read-only data root: generated again next time
        pass
    return arrays, path, "generated"


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """md5 of the four arrays' bytes, in order: the data set's identity in meta.json."""
    h = hashlib.md5(usedforsecurity=False)
    for k in KEYS:
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()
