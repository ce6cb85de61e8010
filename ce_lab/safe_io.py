"""Safe file I/O that every other module builds on: bounded, regular-file reads (a file ce-lab
reads may be hostile: huge, a FIFO, a symlink to /dev/zero), atomic writes (a reader sees the old
file or the new one, never half of one; a failed write is one ``WriteError`` line) and the one
``now_iso`` that meta.json, locks and batch.json stamp times with.

Every write into a run, comparison or batch folder goes through here (``open_for_writing``,
``open_fd``, ``atomic_write_*``, ``write_json``, ``ensure_dir``; tests/test_faults_writes.py
checks that no other module opens a file for writing): none follows a symbolic link planted at
the path it writes (O_NOFOLLOW, O_EXCL for temp files, a check before a rename), or opens a FIFO;
each is refused with one ``LinkRefused`` line naming the path, and the link is left alone.

A leaf: of ce_lab it imports only the exception classes of ``ce_lab.errors`` (which import nothing),
so any module may use it without an import cycle (tests/test_import_graph.py checks both).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ce_lab.errors import CeLabError

# Bounds on what is read back: every file ce-lab reads from disk may be hostile (huge, a FIFO, a
# symlink to /dev/zero); nothing ce-lab writes comes near these.
MAX_JSON_BYTES = 1 << 20
MAX_YAML_BYTES = 1 << 20
MAX_CSV_BYTES = 64 << 20


class WriteError(CeLabError):
    """A file could not be written (a full disk, a read-only folder): one line naming it."""


class LinkRefused(WriteError):
    """A symbolic link (or another non-file) sits where ce-lab writes in a run, comparison or
    batch folder: refused, never written through (exit 2, as a folder not as ce-lab left it)."""

    exit_code = 2

    def __init__(self, path: Path | str, what: str = "a symbolic link"):
        why = ("ce-lab never writes through one" if what == "a symbolic link"
               else "ce-lab writes only regular files")
        super().__init__(f"refusing to write {path}: it is {what}; {why} (remove it and try "
                         "again)")
        self.path, self.what = Path(path), what

    def __reduce__(self):  # pickled (a Ray worker's error) as it was made
        return type(self), (self.path, self.what)


class UnreadableFile(CeLabError):
    """A file that is not a regular file, is over its size bound or is not UTF-8 text;
    ``reason`` says which, without the path (callers name the folder their own way)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def _size_text(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def check_regular_file(path: Path, limit: int | None = None) -> os.stat_result:
    """``path`` (symlinks followed) is a regular file of at most ``limit`` bytes; else
    UnreadableFile. FileNotFoundError passes through."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(path, f"not a regular file ({_kind(st.st_mode)})")
    if limit is not None and st.st_size > limit:
        raise UnreadableFile(path, f"{_size_text(st.st_size)}, over the {_size_text(limit)} "
                             "limit for this file")
    return st


def read_limited_bytes(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file, never blocking: a FIFO, a device, a directory
    or a file over the limit raise UnreadableFile; FileNotFoundError and other OSErrors pass."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(path, f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise UnreadableFile(path, f"{_size_text(st.st_size)}, over the "
                                 f"{_size_text(limit)} limit for this file")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise UnreadableFile(path, f"over the {_size_text(limit)} limit for this file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_limited_text(path: Path, limit: int) -> str:
    """``read_limited_bytes`` decoded as UTF-8 (UnreadableFile if it is not)."""
    raw = read_limited_bytes(path, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(path, f"not UTF-8 text (byte {e.start})") from None


def os_error_text(e: OSError, path: Path | str | None = None, doing: str = "writing") -> str:
    """One line for an OSError: ``no space left on device while writing PATH`` for a full disk,
    else ``cannot write PATH: <reason>``."""
    where = path if path is not None else (e.filename or "a file")
    if e.errno == errno.ENOSPC:
        return f"no space left on device while {doing} {where}"
    if e.errno == errno.EDQUOT:
        return f"disk quota exceeded while {doing} {where}"
    verb = {"writing": "write", "reading": "read", "using": "use"}.get(doing, doing)
    return f"cannot {verb} {where}: {e.strerror or e}"


def now_iso() -> str:
    """Local time with its UTC offset, to the second: what ``started`` / ``ended`` hold."""
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Writing


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or Infinity: non-finite floats become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def new_temp_file(path: Path, suffix: str) -> tuple[int, Path]:
    """A new file beside ``path``, ``.NAME.<random>SUFFIX``, opened for writing: (fd, its path).

    Its mode is what every file ce-lab creates gets, 0666 less the umask (and a folder's default
    ACL), applied by the kernel when O_CREAT makes it, as for metrics.csv, so the file renamed
    over ``path`` is as readable as a shared results folder's umask says. tempfile.mkstemp would
    make it 0600. Nor is the umask read to chmod it: os.umask can only read it by setting it, and
    for that instant every other thread of the process would create files with the wrong mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for _ in range(100):  # O_EXCL: a name another writer took (or a link) is tried again
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return open_fd(tmp, flags), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path.parent))


def refuse_link(path: Path | str) -> None:
    """LinkRefused if ``path`` is a symbolic link (dangling or not); nothing if it is anything
    else or absent. What every write into a run, comparison or batch folder checks first."""
    if os.path.islink(path):
        raise LinkRefused(path)


def ensure_dir(path: Path | str) -> Path:
    """``path`` as a folder ce-lab may write into: created if absent (with its parents), refused
    (LinkRefused) if it is a symbolic link, so that nothing is written into the folder it names."""
    path = Path(path)
    refuse_link(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(os_error_text(e, path)) from None
    refuse_link(path)  # made a link meanwhile
    return path


# Writes never follow a link at the last component (O_NOFOLLOW), never block on a FIFO
# (O_NONBLOCK; a FIFO, a device or a folder is then refused by fstat).
_WRITE_FLAGS = (getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def open_fd(path: Path | str, flags: int, mode: int = 0o666) -> int:
    """``os.open`` for writing into a run, comparison or batch folder: never through a symbolic
    link and only onto a regular file (LinkRefused otherwise). Other OSErrors pass through."""
    try:
        fd = os.open(path, flags | _WRITE_FLAGS, mode)  # 0666 less the umask, as every file
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise LinkRefused(path) from None
        if e.errno == errno.ENXIO:  # a FIFO no one reads (or a socket)
            try:
                what = _kind(os.stat(path).st_mode)
            except OSError:
                what = "a FIFO"
            raise LinkRefused(path, what) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LinkRefused(path, _kind(st.st_mode))
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # a regular file: writes as usual from here
    return fd


def open_for_writing(path: Path | str, mode: str = "w", **kwargs: Any):
    """``open(path, mode, ...)`` ("w", "a", "wb", "ab", "r+", ...) through ``open_fd``: a symbolic
    link, a FIFO or a folder at ``path`` is LinkRefused, never followed or truncated; other
    OSErrors are WriteError naming ``path``."""
    try:
        return open(path, mode, opener=lambda p, flags: open_fd(p, flags), **kwargs)
    except LinkRefused:
        raise
    except OSError as e:
        raise WriteError(os_error_text(e, path)) from None


def replace_file(tmp: Path | str, path: Path | str) -> None:
    """Rename the finished temp file ``tmp`` over ``path``, unless ``path`` is a symbolic link
    (LinkRefused: a rename would not follow it, but a link there is not ce-lab's to replace)."""
    refuse_link(path)
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder and rename it over ``path``: a reader sees the old
    file or the new one, never half of one. An OSError (a full disk, a read-only folder) removes
    the temp file and raises WriteError, one line naming ``path``; the old file stays as it was.
    A symbolic link at ``path`` is refused (LinkRefused) before anything is written."""
    path = Path(path)
    refuse_link(path)
    try:
        fd, tmp = new_temp_file(path, ".tmp")
    except OSError as e:
        raise WriteError(os_error_text(e, path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(os_error_text(e, path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text written as ``atomic_write_bytes`` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Indented JSON, non-finite floats as null, written atomically."""
    atomic_write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")
