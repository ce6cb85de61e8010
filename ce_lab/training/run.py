"""Training entry points: ``train(cfg)`` (one run), ``train_paired(cfgs)`` (a comparison: stacks
of fused members, see ``ce_lab.training.fusion``) and ``resume(run_dir)``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ce_lab.config import RunConfig, check_trains, load_config
from ce_lab.progress import Reporter
from ce_lab.runs.folder import Status
from ce_lab.runs.names import CONFIG
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS
from ce_lab.training.loop import Trainer
from ce_lab.training.members import RunOutcome, release_locks


class StopFlag:
    """Ctrl-C and SIGTERM ask the loop to stop at the end of the current step."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def _execute(trainer: Trainer) -> list[RunOutcome]:
    try:
        trainer.open_runs()
    except BaseException:  # refused before training (a corrupt CSV, a full disk): unlock
        release_locks(getattr(trainer, "members", None) or [])
        raise
    exiting: SystemExit | None = None
    with StopFlag() as stop:
        try:
            trainer.run(stop)
        except KeyboardInterrupt:
            # A second Ctrl-C stops mid-step: no checkpoint of a half-done step is written; a
            # resume continues from the last epoch's checkpoint and drops the rows logged since.
            trainer.mark_interrupted()
        except SystemExit as exc:
            # rich exits when the progress output's pipe closes (`ce-lab train | head`): end the
            # runs as interrupted, like a second Ctrl-C, instead of leaving them "running".
            trainer.mark_interrupted()
            exiting = exc
        except Exception as exc:  # recorded in error.log; the CLI prints one line
            trainer.fail(exc)
        outcomes = trainer.close()
    if exiting is not None:
        raise exiting
    return outcomes


def train(cfg: RunConfig, *, group: str | None = None, reporter: Reporter | None = None,
          data=None, on_open=None) -> RunOutcome:
    """Train one run; returns its folder and outcome. ``on_open([(cfg, run_dir)])`` is called
    once the run folder exists, before training (``ce_lab.training.loop.Trainer``)."""
    check_trains(cfg)
    return _execute(Trainer([cfg], group=group, reporter=reporter, data=data,
                            on_open=on_open))[0]


def train_paired(cfgs: Sequence[RunConfig], *, group: str | None = None,
                 reporter: Reporter | None = None, data=None,
                 max_members: int = DEFAULT_MAX_MEMBERS, on_open=None) -> list[RunOutcome]:
    """Train several configs on identical batches from identical weights, as the plan
    (``ce_lab.plan``, one worker: this process) stacks them: every group that can share a stack
    is fused (at most ``max_members`` to a stack); stacks run one after another. ``on_open``:
    as ``train``'s, once per stack."""
    from ce_lab.plan import plan_runs

    if not cfgs:
        return []
    for cfg in cfgs:
        check_trains(cfg)
    stacks = [s.indices for s in plan_runs(cfgs, workers=1, max_members=max_members).stacks]
    if len(stacks) > 1 and reporter is not None:
        sizes = ", ".join(str(len(s)) for s in stacks)
        reporter.note(f"{len(cfgs)} runs in {len(stacks)} stacks of {sizes} members "
                      "(configs differ beyond what a stack may hold, or --max-members)")
    outcomes: dict[int, RunOutcome] = {}
    for indices in stacks:
        trainer = Trainer([cfgs[i] for i in indices], group=group, reporter=reporter, data=data,
                          on_open=on_open)
        done = _execute(trainer)
        outcomes.update(zip(indices, done))
        if any(o.status == Status.INTERRUPTED for o in done):
            break  # Ctrl-C stops the comparison, not just the stack in progress
    return [outcomes[i] for i in sorted(outcomes)]


def resume(run_dir: Path, *, reporter: Reporter | None = None, data=None) -> RunOutcome:
    """Continue an interrupted (or failed) run from its last checkpoint."""
    from ce_lab.runs.resume import check_resumable

    run_dir = Path(run_dir)
    meta = check_resumable(run_dir)  # one line for a corrupt, finished, owned or unwritable run
    cfg = load_config(run_dir / CONFIG)
    trainer = Trainer([cfg], group=meta.get("group"), reporter=reporter, resume=(run_dir, meta),
                      data=data)
    return _execute(trainer)[0]
