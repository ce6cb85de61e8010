"""One run: train it from a config, or resume it from its folder (``ce-lab train``,
``ce_lab.train``, ``ce_lab.resume``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ce_lab.config import RunConfig
    from ce_lab.training.members import RunOutcome


def check_resume(run_dir: Path) -> RunConfig:
    """The config of a run ``resume_run`` may continue; one line (UsageError) otherwise, before
    any data is prepared."""
    from ce_lab.config import load_config
    from ce_lab.runs.names import CONFIG
    from ce_lab.runs.resume import check_resumable

    check_resumable(run_dir)
    return load_config(Path(run_dir) / CONFIG)


def train_run(cfg: RunConfig, *, reporter: Any = None) -> RunOutcome:
    from ce_lab.training.run import train

    return train(cfg, reporter=reporter)


def resume_run(run_dir: Path, *, reporter: Any = None) -> RunOutcome:
    from ce_lab.training.run import resume

    return resume(Path(run_dir), reporter=reporter)
