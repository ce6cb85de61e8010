"""Run folders on disk, without torch: names and statuses (``folder``), the files a run writes
(``files``) and finished runs as records (``record``).

Importing this package never imports torch, so commands that only read runs stay fast. The names
below are imported on first use: ``record`` reads the metric registry, which itself uses
``folder``, so an eager import here would be circular.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"RunFolderError": "ce_lab.runs.files", "Status": "ce_lab.runs.folder",
         "threshold_key": "ce_lab.runs.folder", "RunRecord": "ce_lab.runs.record",
         "load_run": "ce_lab.runs.record", "select_runs": "ce_lab.runs.record"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ce_lab.runs' has no attribute {name!r}")
