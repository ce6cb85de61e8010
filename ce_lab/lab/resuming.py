"""Finish the members of an interrupted comparison (``ce-lab compare --resume``).

A member is found again by its config: the run folder of the comparison's group whose
config.yaml resolves to the same RunConfig. One that ended (completed, diverged) is kept as it
is; one interrupted, failed or crashed resumes from its checkpoint, alone (a member trains bit
for bit as it would in its stack: docs/fusion.md); those never started are
trained fused, as the comparison would have trained them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.runs.folder import Status

if TYPE_CHECKING:
    from ce_lab.config import RunConfig


def _key(cfg_dict: dict[str, Any]) -> str:
    import json

    return json.dumps(cfg_dict, sort_keys=True)


def existing_runs(root: Path, group: str) -> dict[str, Path]:
    """The run folders of ``group`` under ``root``, by their resolved config."""
    from ce_lab.config import load_config, to_dict
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.listing import list_runs
    from ce_lab.runs.names import CONFIG

    if not Path(root).is_dir():
        return {}
    entries, _ = list_runs(root)
    found: dict[str, Path] = {}
    for e in sorted(entries, key=lambda e: e.path.name):
        if e.group != group:
            continue
        try:
            found.setdefault(_key(to_dict(load_config(e.path / CONFIG))), e.path)
        except (RunFolderError, ValueError, OSError):
            continue  # an unreadable config: that member is trained again
    return found


def finish(cfgs: Sequence[RunConfig], found: dict[str, Path], group: str, *,
           reporter: Any = None, **kwargs: Any) -> list[Any]:
    """Outcomes for ``cfgs`` in order: kept, resumed or trained (fused) as each one stands."""
    from ce_lab.config import to_dict
    from ce_lab.runs.liveness import effective_status
    from ce_lab.runs.read import read_meta
    from ce_lab.training import resume, train_paired
    from ce_lab.training.members import RunOutcome

    outcomes: dict[int, Any] = {}
    fresh: list[int] = []
    for i, cfg in enumerate(cfgs):
        path = found.get(_key(to_dict(cfg)))
        if path is None:
            fresh.append(i)
            continue
        status = effective_status(read_meta(path))
        if status is not None and status.is_result:
            outcomes[i] = RunOutcome(path, status, status.exit_code)
            continue
        outcomes[i] = resume(path, reporter=reporter)
        if outcomes[i].status == Status.INTERRUPTED:
            return [outcomes[j] for j in sorted(outcomes)]
    if fresh:
        done = train_paired([cfgs[i] for i in fresh], group=group, reporter=reporter, **kwargs)
        outcomes.update(zip(fresh, done))
    return [outcomes[i] for i in sorted(outcomes)]
