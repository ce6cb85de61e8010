"""One batch process at a time chooses the folder of a batch name under an out_dir.

Two ``ce-lab batch FILE`` started together would each find no folder of that name, each create
one and train every entry twice. Choosing the folder (the latest of that name, else a new one),
locking it and writing its ``batch.json`` happen under an ``flock`` on
``<out_dir>/.batch-<hash of the name>.lock``: the second process then finds the first one's
folder, whose own lock (``ce_lab.batches.store.locked``) refuses it with one line naming it.

The lock is held for a moment only, so a second process waits for it (up to ``WAIT_S``). Its
holder removes the file before it lets go, so the out_dir keeps only folders; a waiter that then
holds the lock of a removed file sees that the path is another file (or none) and tries again,
as ``ce_lab.runs.lock`` does. Where there is no ``fcntl``, or the out_dir cannot hold the file,
nothing is locked: creating the folder then says what is wrong.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ce_lab.errors import UsageError
from ce_lab.safe_io import open_fd

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

WAIT_S = 30.0


def claim_path(out_dir: Path, name: str) -> Path:
    """The lock file of batch ``name`` under ``out_dir`` (a hash: a batch name may be long)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(out_dir) / f".batch-{digest}.lock"


@contextmanager
def choosing_folder(out_dir: Path, name: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the lock of batch ``name`` under ``out_dir`` while its folder is chosen and opened."""
    if fcntl is None:
        yield
        return
    path = claim_path(out_dir, name)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            fd = open_fd(path, os.O_RDWR | os.O_CREAT)  # never through a planted link
        except OSError:
            yield  # an out_dir that is a file, read-only, ...: creating the folder says so
            return
        if _lock(fd, path):
            break
        os.close(fd)
        if time.monotonic() >= deadline:
            raise UsageError(f"another ce-lab batch {name!r} has been choosing its folder under "
                             f"{out_dir} for {wait_s:.0f} s ({path} is locked); try again once "
                             "it runs")
        time.sleep(0.02)
    try:
        yield
    finally:
        try:
            path.unlink()  # while held: whoever waits on this file sees it gone and tries again
        except OSError:
            pass
        os.close(fd)  # closing drops the flock


def _lock(fd: int, path: Path) -> bool:
    """The flock on ``fd``, if free and ``fd`` is still the file at ``path``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
