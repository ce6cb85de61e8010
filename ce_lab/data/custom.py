"""A data set of one's own (``data.name: custom``, ``data.path``): a folder of four IDX files in
MNIST's names (plain or .gz), or one ``.npz`` with ``x_train``, ``y_train``, ``x_test``,
``y_test``. The shape comes from the files: inputs per example = the product of an example's
dimensions, classes = the largest label + 1. The files are only read, never written or fetched
into; a file that cannot be used is an OwnDataError (exit 2) naming it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ce_lab.data.files import MNIST_FILES, md5_bytes
from ce_lab.data.spec import DatasetSpec
from ce_lab.errors import DataError, OwnDataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_NPZ_BYTES = 1 << 30


def check_arrays(arrays: dict[str, np.ndarray], where: dict[str, str]) -> DatasetSpec:
    """The spec of four arrays, or OwnDataError naming the file (``where[key]``) that is wrong."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        wx, wy = where[f"x_{split}"], where[f"y_{split}"]
        if x.ndim < 2 or x.shape[0] == 0 or not all(x.shape[1:]):
            raise OwnDataError(f"{wx}: expected inputs of shape (N, ...) with N > 0, got {x.shape}")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise OwnDataError(f"{wx}: inputs must be numbers, not {x.dtype}")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise OwnDataError(f"{wx}: inputs hold nan or inf")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise OwnDataError(f"{wy}: expected integer labels of shape (N,), got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise OwnDataError(f"{wy}: {len(y)} labels for {len(x)} inputs in {wx}")
        if y.size and int(y.min()) < 0:
            raise OwnDataError(f"{wy}: labels are classes 0 .. C-1, found {int(y.min())}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise OwnDataError(f"{where['x_test']}: test inputs {arrays['x_test'].shape[1:]} differ "
                           f"from the training inputs {arrays['x_train'].shape[1:]}")
    n_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    if n_classes < 2:
        raise OwnDataError(f"{where['y_train']}: every label is 0; a classifier needs 2 classes")
    n_inputs = int(np.prod(arrays["x_train"].shape[1:]))
    return DatasetSpec("custom", n_inputs=n_inputs, n_classes=n_classes)


def _npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from ce_lab.safe_io import UnreadableFile, read_limited_bytes

    try:
        data = read_limited_bytes(path, MAX_NPZ_BYTES)
    except UnreadableFile as e:
        raise OwnDataError(f"data.path {path}: {e.reason}") from None
    except OSError as e:
        raise OwnDataError(f"data.path {path}: {e.strerror or e}") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise OwnDataError(f"{path}: no {', '.join(missing)} (an .npz needs "
                                   f"{', '.join(KEYS)})")
            arrays = {k: z[k] for k in KEYS}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise OwnDataError(f"{path}: not a usable .npz ({e})") from None
    return arrays, {path.name: md5_bytes(data)}


def _idx_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    from ce_lab.data.idx import parse_idx, read_idx_bytes

    keys = dict(zip(("x_train", "y_train", "x_test", "y_test"), (f.name for f in MNIST_FILES)))
    arrays, sums, where = {}, {}, {}
    for key, name in keys.items():
        path = next((p for p in (folder / name, folder / f"{name}.gz") if p.exists()), None)
        if path is None:
            raise OwnDataError(f"data.path {folder} has no {name} (or {name}.gz); a custom folder "
                               "holds the four IDX files in MNIST's names")
        try:
            data = read_idx_bytes(path)
            arrays[key] = parse_idx(data, str(path))
        except DataError as e:
            raise OwnDataError(str(e)) from None
        sums[name] = md5_bytes(data)
        where[key] = str(path)
    return arrays, sums, where


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], DatasetSpec]:
    """The four arrays, the md5 of each file read (decompressed for .gz IDX), and the spec."""
    path = Path(path).expanduser()
    if path.is_dir():
        arrays, sums, where = _idx_folder(path)
    elif path.exists():
        arrays, sums = _npz(path)
        where = {k: f"{path} ({k})" for k in KEYS}
    else:
        raise OwnDataError(f"data.path {path} does not exist (a folder of four IDX files or an .npz)")
    return arrays, sums, check_arrays(arrays, where)
