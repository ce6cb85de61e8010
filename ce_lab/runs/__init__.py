"""Run folders on disk, without torch: names and statuses (``folder``), the files a run writes
(``files``) and finished runs as records (``record``).

Importing this package never imports torch, so commands that only read runs stay fast.
"""

from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import Status, threshold_key
from ce_lab.runs.record import RunRecord, load_run, select_runs

__all__ = ["RunFolderError", "RunRecord", "Status", "load_run", "select_runs", "threshold_key"]
