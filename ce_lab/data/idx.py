"""The IDX file format of MNIST: a big-endian header, then the raw bytes of one uint8 array.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 size per dimension. Images are (N, 28, 28) (magic 2051), labels (N,) (magic 2049).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ce_lab.errors import DataError

UBYTE = 0x08  # the only element type MNIST uses
# The largest real MNIST file is 47,040,016 bytes: an IDX file (or a .gz, and what it decompresses
# to) over this bound is not MNIST, and is refused before it is read into memory.
MAX_IDX_BYTES = 64 << 20


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (any number of dimensions)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writer handles uint8 only, got {array.dtype}")
    header = struct.pack(">HBB", 0, UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def parse_idx(data: bytes | memoryview, name: str = "IDX data") -> np.ndarray:
    """A read-only uint8 array viewing ``data``; DataError unless header and size agree exactly."""
    if len(data) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack_from(">HBB", data, 0)
    if zero != 0 or code != UBYTE or ndim == 0:
        raise DataError(f"{name}: not a uint8 IDX file (magic bytes {bytes(data[:4]).hex()})")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"{name}: header cut short ({len(data)} bytes)")
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    expected = start + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{name}: {len(data)} bytes, but its header {tuple(shape)} needs {expected} "
            "(truncated or corrupted)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def read_idx_bytes(path: Path, limit: int = MAX_IDX_BYTES) -> bytes:
    """The bytes of an IDX file, plain or gzip-compressed (by its magic bytes, not its name), read
    as untrusted: a regular file (symlinks followed) of at most ``limit`` bytes, decompressing to
    at most ``limit`` too. A FIFO, a directory, a device (/dev/zero) or a huge file is a
    DataError (one line), never a hang or a MemoryError."""
    from ce_lab.safe_io import UnreadableFile, read_limited_bytes

    path = Path(path)
    try:
        raw = read_limited_bytes(path, limit)
    except UnreadableFile as e:
        raise DataError(f"cannot read {path}: {e.reason}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        d = zlib.decompressobj(wbits=31)  # gzip framing
        out = d.decompress(raw, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise DataError(f"cannot read {path}: decompresses to over the "
                            f"{limit >> 20} MiB limit for an IDX file")
        out += d.flush()
        if not d.eof:
            raise DataError(f"cannot read {path}: broken gzip: compressed file ended early")
    except zlib.error as e:
        raise DataError(f"cannot read {path}: broken gzip: {e}") from None
    return out


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file, plain or gzip-compressed, read as ``read_idx_bytes`` does."""
    return parse_idx(read_idx_bytes(path), str(path))


def check_mnist_shape(array: np.ndarray, kind: str, name: str) -> None:
    """DataError unless ``array`` is MNIST-shaped images (N, 28, 28) or labels (N,) in 0..9."""
    if kind == "images":
        if array.ndim != 3 or array.shape[1:] != (28, 28):
            raise DataError(f"{name}: expected images of shape (N, 28, 28), got {array.shape}")
    else:
        if array.ndim != 1:
            raise DataError(f"{name}: expected labels of shape (N,), got {array.shape}")
        if array.size and int(array.max()) > 9:
            raise DataError(f"{name}: labels must be 0..9, found {int(array.max())}")
