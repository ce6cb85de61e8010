"""May ``ce-lab train --resume`` continue a run folder? The one check, before anything is loaded.

Apart from ``ce_lab.runs.liveness`` (who owns a running run), which the writers of meta.json use:
this check reads the folder back (``ce_lab.runs.read``), so it lives above both. Plain Python, no
torch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ce_lab.errors import CeLabError, UsageError
from ce_lab.runs.files import RunFolderError
from ce_lab.runs.folder import Status
from ce_lab.runs.liveness import describe_owner, effective_status
from ce_lab.runs.names import CHECKPOINT, CONFIG, META, RUN_WRITES, SUMMARY
from ce_lab.runs.read import read_versioned_meta
from ce_lab.safe_io import UnreadableFile, check_regular_file, os_error_text, refuse_link


def check_resumable(run_dir: Path | str) -> dict[str, Any]:
    """meta.json of a run folder that ``ce-lab train --resume`` may continue, with the folder's
    ``format``, which the resumed run writes back as it was; otherwise one line:
    UsageError (exit 2) for a folder that is not a resumable run (corrupt, finished, still owned by
    a live process, killed before its first checkpoint), LinkRefused (exit 2) for a symbolic link
    where the run writes, CeLabError (exit 1) for one that cannot be written to."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    if not (run_dir / META).exists() or not (run_dir / CONFIG).exists():
        raise UsageError(f"{run_dir}: not a run folder (no {META} / {CONFIG})")
    try:
        meta, version = read_versioned_meta(run_dir)
    except RunFolderError as e:
        raise UsageError(f"{e}; cannot resume") from None
    status = effective_status(meta)
    if status is None:
        raise UsageError(f"{run_dir}: {META} holds no known status ({meta.get('status')!r}); "
                         "cannot resume")
    if status.is_result:
        raise UsageError(f"{run_dir}: run already {status}; nothing to resume")
    if status == Status.RUNNING:
        raise UsageError(f"{run_dir}: still being trained ({describe_owner(meta)}); wait for it "
                         "to end, or stop that process and resume then")
    try:
        check_regular_file(run_dir / CONFIG, 1 << 20)
    except UnreadableFile as e:
        raise UsageError(f"{run_dir}: corrupt run folder ({CONFIG}: {e.reason}); cannot "
                         "resume") from None
    # summary.json is written only when the run ends: one that is a directory, a FIFO or a
    # device would fail the run after all its training; refuse it before any.
    if os.path.lexists(run_dir / SUMMARY):
        try:
            check_regular_file(run_dir / SUMMARY)
        except (UnreadableFile, OSError) as e:
            why = e.reason if isinstance(e, UnreadableFile) else (e.strerror or str(e))
            raise UsageError(f"{run_dir}: corrupt run folder ({SUMMARY}: {why}); cannot "
                             "resume") from None
    ckpt = run_dir / CHECKPOINT
    if not ckpt.exists():
        how = "killed" if status == Status.CRASHED else str(status)
        raise UsageError(f"{run_dir}: no {CHECKPOINT} to resume from (the run was {how} before "
                         f"its first checkpoint); start it again with: ce-lab train --config "
                         f"{run_dir / CONFIG}")
    try:
        check_regular_file(ckpt)
    except UnreadableFile as e:
        raise UsageError(f"{run_dir}: cannot resume from {CHECKPOINT} ({e.reason})") from None
    for name in RUN_WRITES:  # a link planted where the run writes: refused before any write
        refuse_link(run_dir / name)
    try:  # as root a folder's mode bits do not stop writes: a real write is the only test
        fd, probe = tempfile.mkstemp(prefix=".resume-", suffix=".tmp", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CeLabError(f"{os_error_text(e, run_dir)}; cannot resume a run whose folder cannot "
                         "be written") from None
    # Its summary.json (an interrupted run's) stays of that format until the run ends again.
    return {"format": version, **meta}
