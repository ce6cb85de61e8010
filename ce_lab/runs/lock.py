"""The exclusive lock of a run folder: ``RUN/.lock``, held by the one process that trains the run.

Whoever trains a run (a new run, ``train --resume``, a batch worker's run) takes it before writing
and removes it when the run ends, however it ends. The file holds the owner's pid, host and start
time, for the message that refuses a second trainer. Where ``fcntl.flock`` exists the lock is the
flock on that file: the kernel drops it when its owner dies, so a ``.lock`` left by a killed
process is stale and taken over. Elsewhere the file is created with O_CREAT|O_EXCL and a lock
whose owner is no longer alive (ce_lab.runs.liveness) is taken over.

Plain Python, no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ce_lab.errors import UsageError
from ce_lab.runs.liveness import describe_owner, owner_alive, owner_fields
from ce_lab.runs.names import LOCK

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

class RunLocked(UsageError):
    """Another live process trains this run: one line naming it (exit 2)."""


def _owner_text(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        from ce_lab.safe_io import read_limited_text

        data = json.loads(read_limited_text(path, 4096))
        if isinstance(data, dict):
            return data
    return {}


def _refuse(run_dir: Path, owner: dict) -> RunLocked:
    who = describe_owner(owner) if owner else "another process"
    since = f", since {owner['started']}" if isinstance(owner.get("started"), str) else ""
    return RunLocked(f"{run_dir}: locked by the process training it ({who}{since}); wait for it "
                     "to end, or stop that process and resume then")


class RunLock:
    """``RunLock.acquire(run_dir)`` or RunLocked; ``release()`` removes the lock (idempotent)."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path | str) -> RunLock:
        from ce_lab.safe_io import LinkRefused, WriteError, now_iso, open_fd, os_error_text

        run_dir = Path(run_dir)
        path = run_dir / LOCK
        info = json.dumps(owner_fields() | {"started": now_iso()}).encode()
        for _ in range(10):
            try:
                if fcntl is not None:
                    # 0666 less the umask, as every file (a shared folder's group can take over a
                    # stale lock); never through a link planted there (it would be truncated)
                    fd = open_fd(path, os.O_RDWR | os.O_CREAT)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        raise _refuse(run_dir, _owner_text(path)) from None
                    # The holder may have removed the file between our open and our flock: then we
                    # hold a lock on a file nobody else sees; take the one now at that path.
                    try:
                        same = os.lstat(path).st_ino == os.fstat(fd).st_ino
                    except FileNotFoundError:
                        same = False
                    if not same:
                        os.close(fd)
                        continue
                    os.ftruncate(fd, 0)
                else:
                    try:
                        fd = open_fd(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
                    except FileExistsError:
                        if os.path.islink(path):  # not a lock: neither read nor removed
                            raise LinkRefused(path) from None
                        owner = _owner_text(path)
                        if owner and owner_alive(owner):
                            raise _refuse(run_dir, owner) from None
                        path.unlink(missing_ok=True)  # its owner is gone: stale
                        continue
                os.write(fd, info)
                return cls(path, fd)
            except OSError as e:
                raise WriteError(f"{os_error_text(e, path)}; cannot lock the run") from None
        raise _refuse(run_dir, _owner_text(path))

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # removed while still held: no one takes a lock about to go
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
