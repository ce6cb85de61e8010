"""The MNIST cache on disk: where it is, what the four files must hash to, and safe writes.

Layout is torchvision's, so a folder torchvision filled works as is: ``ROOT/MNIST/raw/<name>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV_DATA_DIR = "CE_LAB_DATA_DIR"


@dataclass(frozen=True)
class MnistFile:
    name: str  # as torchvision names the uncompressed file
    kind: str  # "images" or "labels"
    split: str  # "train" or "test"
    size: int  # bytes of the original
    md5: str  # md5 of the original (uncompressed)


MNIST_FILES: tuple[MnistFile, ...] = (
    MnistFile("train-images-idx3-ubyte", "images", "train", 47_040_016,
              "6bbc9ace898e44ae57da46a324031adb"),
    MnistFile("train-labels-idx1-ubyte", "labels", "train", 60_008,
              "a25bea736e30d166cdddb491f175f624"),
    MnistFile("t10k-images-idx3-ubyte", "images", "test", 7_840_016,
              "2646ac647ad5339dbf082846283269ea"),
    MnistFile("t10k-labels-idx1-ubyte", "labels", "test", 10_008,
              "27ae3e4e09519cfbb04c329615203637"),
)
EXPECTED_MD5: dict[str, str] = {f.name: f.md5 for f in MNIST_FILES}
STAMP_NAME = ".ce-lab-verified.json"  # md5 results keyed on size + times, to skip re-hashing
RACY_S = 2  # files younger than this are hashed every time


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("ce-lab")) / "mnist"


def resolve_root(data_root: Path | str | None = None) -> Path:
    """The cache folder: config ``data.root`` > ``$CE_LAB_DATA_DIR`` > the user cache dir."""
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return default_root()


def raw_dir(root: Path) -> Path:
    return Path(root) / "MNIST" / "raw"


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_write(path: Path, chunks: bytes | Iterable[bytes]) -> None:
    """Write to a temp name in the same folder, fsync, then rename: never a half-written file.

    On any failure (including KeyboardInterrupt) the temp file is removed and ``path`` is untouched.
    """
    from ce_lab.safe_io import new_temp_file  # 0666 less the umask, as any new file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(path, ".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [chunks] if isinstance(chunks, (bytes, bytearray, memoryview)) else chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# Verifying


def md5_bytes(data: bytes | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path: Path) -> list[int]:
    # A write changes mtime and ctime (which cannot be set back); a new file is a new inode.
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_stamps(folder: Path) -> dict:
    # Untrusted like every file read back: a FIFO, a device or a huge file is no stamp file.
    from ce_lab.errors import CeLabError
    from ce_lab.safe_io import MAX_JSON_BYTES, read_limited_text

    try:
        data = json.loads(read_limited_text(folder / STAMP_NAME, MAX_JSON_BYTES))
    except (OSError, ValueError, RecursionError, CeLabError):
        return {}
    if not isinstance(data, dict):
        return {}
    # An entry of the wrong shape is no positive result: it is hashed again.
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _write_stamps(folder: Path, stamps: dict) -> None:
    # A read-only cache still works; it only re-hashes next time.
    with contextlib.suppress(OSError):
        atomic_write(folder / STAMP_NAME, json.dumps(stamps, indent=1).encode())


def file_md5_ok(path: Path, expected_md5: str, *, use_stamp: bool = True) -> bool:
    """Whether ``path`` hashes to ``expected_md5``.

    A previous positive result is reused while the file's size, mtime, ctime and inode are
    unchanged (a truncated, rewritten or replaced file changes them), so start-up does not
    re-hash 47 MB.
    """
    path = Path(path)
    if not path.is_file():
        return False
    stamps = _read_stamps(path.parent) if use_stamp else {}
    key = _stat_key(path)
    hit = stamps.get(path.name)
    if hit == {"stat": key, "md5": expected_md5}:
        return True
    ok = md5_file(path) == expected_md5
    # File times tick coarsely: a file modified within RACY_S of its hashing could be changed
    # again without its times changing, so such a result is not remembered (git does the same).
    recent = time.time_ns() - key[1] < RACY_S * 1_000_000_000
    if ok and use_stamp and not recent and _stat_key(path) == key:
        stamps[path.name] = {"stat": key, "md5": expected_md5}
        _write_stamps(path.parent, stamps)
    return ok
