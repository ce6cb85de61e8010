"""Run a batch file (or continue a batch folder) and compare what finished: the one path from
typed arguments to a batch folder, for ``ce-lab batch`` and ``ce_lab.batch`` alike.

``prepare_batch`` checks every argument (ParamError naming the parameter) and loads the batch:
a batch file with dotted-key overrides, or the copy a batch folder holds (``resume``).
``dry_run_batch`` says what running it would do, writing nothing; ``run_batch`` runs it on the
local or Ray executor, one batch process per folder (a lock), and writes the comparison of every
finished entry into the batch folder. Callers hear of progress through callbacks, so the CLI
prints its lines and the API stays silent. On SLURM (``ce_lab.batches.slurm_exec``) the jobs an
earlier call left uncollected (``detach``, or a killed batch process) are waited for first.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import ParamError
from ce_lab.lab import params
from ce_lab.plan import DEFAULT_SPLIT, Split
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS

if TYPE_CHECKING:
    from ce_lab.batches.execute import BatchResult, Event
    from ce_lab.batches.plan import Opened
    from ce_lab.batches.slurm_exec import SlurmOptions
    from ce_lab.batches.spec import Batch
    from ce_lab.batches.store import EntryRecord
    from ce_lab.comparison.compare import ComparisonResult
    from ce_lab.plan import Plan

EXECUTORS = ("local", "ray", "slurm")


@dataclass
class BatchRequest:
    """A checked batch to run: the loaded batch, the folder it continues (None: a new one) and
    how to run it."""

    batch: Batch
    batch_dir: Path | None
    executor: str = "local"
    jobs: int | None = None
    threads: int | None = None
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    fuse: bool = True
    max_members: int = DEFAULT_MAX_MEMBERS
    split: Split = DEFAULT_SPLIT
    plots: bool = True
    new: bool = False  # a new folder even if the batch name has one (else the latest continues)
    slurm: SlurmOptions | None = None  # executor slurm: what each job asks for
    detach: bool = False  # slurm: submit and return; a later call collects the results

    def how(self) -> dict[str, Any]:
        """``plan_batch``'s arguments. Ray or SLURM without ``jobs`` runs as many tasks at once
        as the cluster fits: no worker count to plan by."""
        workers = self.jobs if self.executor in ("ray", "slurm") else (self.jobs or 1)
        return {"fuse": self.fuse, "workers": workers, "max_members": self.max_members,
                "split": self.split}


@dataclass
class BatchPlan:
    """What running a request would do: each entry's action, and the tasks (``plan``)."""

    opened: Opened
    plan: Plan
    collecting: set[int] = field(default_factory=set)  # entries whose SLURM jobs are awaited

    @property
    def continues(self) -> Path | None:
        """The existing batch folder it continues; None: a new folder would be made."""
        return self.opened.batch_dir if self.opened.continued else None

    def actions(self) -> list[tuple[EntryRecord, str]]:
        """(entry, action) for every entry: skip, resume, run, rerun, busy or collect."""
        from ce_lab.batches.plan import describe_plan

        return [(rec, COLLECT if rec.index in self.collecting else action)
                for rec, action in describe_plan(self.opened)]


@dataclass
class RanBatch:
    """What a batch run produced: the entries' outcomes and, unless interrupted or nothing
    finished, the comparison written into the batch folder."""

    result: BatchResult
    comparison: ComparisonResult | None


def prepare_batch(batch_file: Path | None = None, *, resume: Path | None = None,
                  overrides: Mapping[str, Any] | None = None, sets: Sequence[str] = (),
                  out_dir: Path | None = None, new: bool = False, jobs: Any = None,
                  threads: Any = None, executor: Any = None, address: str | None = None,
                  cpus_per_task: Any = 1.0, gpus_per_task: Any = 0.0, fuse: bool = True,
                  max_members: Any = DEFAULT_MAX_MEMBERS, split_stacks: Any = DEFAULT_SPLIT,
                  plots: bool = True, max_entries: Any = None,
                  slurm: Mapping[str, Any] | None = None, detach: bool = False) -> BatchRequest:
    """Check the arguments and load the batch, before anything is written. ``sets`` are the
    CLI's ``--set KEY=VALUE`` items (parsed by ``ce_lab.config`` as ``ce-lab train`` parses
    them), ``overrides`` the API's dotted keys; both go on the base, before ``out_dir``.
    ``max_entries`` (None: ``DEFAULT_MAX_ENTRIES``) caps the entries the batch may expand to.
    ``executor`` None: local, or slurm when resuming a batch folder that ran on SLURM.
    ``slurm``: ``slurm_options``' arguments (partition, time, cpus_per_task, ...), for slurm."""
    from ce_lab.batches.plan import find_previous, load_saved_batch
    from ce_lab.batches.sizes import DEFAULT_MAX_ENTRIES
    from ce_lab.batches.spec import load_batch

    jobs = params.optional_positive_int(jobs, "jobs")
    threads = params.optional_positive_int(threads, "threads")
    if executor is None:
        executor = _executor_of(Path(resume)) if resume is not None else "local"
    kind = params.one_of(executor, "executor", EXECUTORS)
    members = params.positive_int(max_members, "max_members")
    cap = (DEFAULT_MAX_ENTRIES if max_entries is None
           else params.positive_int(max_entries, "max_entries"))
    split = _split(split_stacks)
    cpus, gpus = params.number(cpus_per_task, "cpus_per_task"), params.number(gpus_per_task,
                                                                               "gpus_per_task")
    if overrides is not None:
        overrides = params.dotted_overrides(overrides)
    if address is not None and not isinstance(address, str):
        raise ParamError(f"«address» must be auto or ray://HOST:PORT, got {address!r}")
    if (batch_file is None) == (resume is None):
        raise ParamError("give a batch file or «resume» BATCH_DIR (one of them)")
    if resume is not None:
        given = [n for n, v in (("overrides", overrides or sets), ("out_dir", out_dir),
                                ("new", new)) if v]
        if given:
            raise ParamError(f"{', '.join(f'«{n}»' for n in given)} cannot change a batch being "
                             "resumed; run the batch file instead")
        batch = load_saved_batch(Path(resume), cap)
        batch_dir: Path | None = Path(resume)
    else:
        batch = load_batch(Path(batch_file), sets, None if out_dir is None else Path(out_dir),
                           overrides=overrides, max_entries=cap)
        batch_dir = find_previous(batch, bool(new))
    if kind == "local" and address is not None:
        raise ParamError("«address» applies to «executor» ray")
    if kind == "ray" and threads is not None:
        raise ParamError("«threads» applies to the local executor; Ray tasks use «cpus_per_task»")
    options = _slurm_request(kind, slurm or {}, bool(detach), threads, address, batch_dir,
                             batch.out_dir)
    if batch_dir is not None:
        from ce_lab.batches.slurm_exec import uncollected

        _collect_first(kind, batch_dir, uncollected(batch_dir))
    return BatchRequest(batch, batch_dir, kind, jobs, threads, address, cpus, gpus, bool(fuse),
                        members, split, bool(plots), new=bool(new), slurm=options,
                        detach=bool(detach))


def _executor_of(batch_dir: Path) -> str:
    """The executor a batch folder being resumed ran on, when it was SLURM (its jobs need it);
    else local."""
    from ce_lab.batches.slurm_exec import uncollected
    from ce_lab.batches.store import read_state
    from ce_lab.errors import CeLabError

    try:
        ran_on = read_state(batch_dir).executor
    except (CeLabError, OSError):
        ran_on = None  # load_saved_batch says what is wrong with the folder
    return "slurm" if ran_on == "slurm" or uncollected(batch_dir) else "local"


def _slurm_request(kind: str, given: Mapping[str, Any], detach: bool, threads: Any,
                   address: Any, batch_dir: Path | None, out_dir: Path) -> SlurmOptions | None:
    """The checked SLURM options, or None for another executor (which takes none of them). A
    batch folder that ran on SLURM is continued with the options it ran with, unless given."""
    from ce_lab.batches.slurm_exec import check_shared, saved_options
    from ce_lab.lab.slurm_params import slurm_options

    if not isinstance(given, Mapping):
        raise ParamError(f"«slurm» must be a mapping of SLURM options, got {given!r}")
    if kind != "slurm":
        named = [f"«slurm_{k}»" for k, v in given.items() if v not in (None, {}, [], ())]
        if detach:
            named.append("«detach»")
        if named:
            raise ParamError(f"{', '.join(named)} applies to «executor» slurm")
        return None
    if threads is not None:
        raise ParamError("«threads» applies to the local executor; SLURM jobs use "
                         "«slurm_cpus_per_task»")
    if address is not None:
        raise ParamError("«address» applies to «executor» ray")
    unknown = sorted(set(given) - {"partition", "time", "cpus_per_task", "gpus_per_task",
                                    "mem", "extra"})
    if unknown:
        raise ParamError(f"«slurm» has no option {unknown[0]!r}: partition, time, "
                         "cpus_per_task, gpus_per_task, mem, extra")
    check_shared(batch_dir if batch_dir is not None else out_dir)
    saved = saved_options(batch_dir) if batch_dir is not None else {}
    return slurm_options(**{**saved, **{k: v for k, v in given.items() if v not in (None, [])}})


def _split(value: Any) -> Split:
    try:
        return Split(value)
    except ValueError:
        valid = ", ".join(s.value for s in Split)
        raise ParamError(f"«split_stacks» must be one of {valid}, got {value!r}") from None


def dry_run_batch(request: BatchRequest) -> BatchPlan:
    """What running ``request`` would do; writes nothing."""
    from ce_lab.batches.plan import plan
    from ce_lab.batches.tasks import plan_batch

    opened = plan(request.batch, request.batch_dir, request.executor)
    collecting = _collecting(opened.batch_dir) if opened.continued else set()
    return BatchPlan(opened, plan_batch(opened, **request.how(), exclude=collecting), collecting)


def _collecting(batch_dir: Path) -> set[int]:
    """The entries whose SLURM jobs an earlier call submitted and no call has collected."""
    from ce_lab.batches.slurm_exec import uncollected

    return {i for job in uncollected(batch_dir) for i in job["task"]["entries"]}


def run_batch(request: BatchRequest, *,
              on_start: Callable[[Opened, list[tuple[EntryRecord, str]]], None] | None = None,
              on_event: Event | None = None,
              on_executed: Callable[[BatchResult], None] | None = None) -> RanBatch:
    """Run the request's plan: ``on_start(opened, actions)`` once the folder is open and each
    entry's action known, ``on_event(kind, entry, state)`` as an entry starts ("start") and ends
    ("end"), ``on_executed(result)`` when every task has ended (or Ctrl-C stopped them), before
    the comparison is written. Ctrl-C (or SIGTERM) interrupts the workers, which checkpoint:
    ``result.interrupted``, and nothing is compared."""
    from ce_lab.batches.execute import compare_finished, execute
    from ce_lab.batches.tasks import plan_batch

    ray = _ray_executor(request) if request.executor == "ray" else None  # before any folder
    try:
        with ExitStack() as held:
            opened = _open_locked(request, held)
            ex, adopted = _executor(request, opened, ray)
            awaited = {i for task in adopted for i in task["entries"]}
            planned = BatchPlan(opened, plan_batch(opened, **request.how(), exclude=awaited),
                                awaited)
            if on_start is not None:
                on_start(opened, planned.actions())
            with _sigterm_as_interrupt():
                result = execute(opened, planned.plan, ex, on_event=on_event, adopted=adopted)
            result.jobs = list(getattr(ex, "job_ids", []))
            if on_executed is not None:
                on_executed(result)
            if result.interrupted or result.detached:
                return RanBatch(result, None)  # no tables of half a batch: run it again
            return RanBatch(result, compare_finished(result, plots=request.plots))
    finally:
        if ray is not None:
            ray.close()


COLLECT = "collect"  # an entry whose SLURM job an earlier call submitted: its result is awaited


def _executor(request: BatchRequest, opened: Opened, ray):
    """The executor to run the request on, and the tasks it adopts: SLURM jobs that an earlier
    call of this folder submitted and never collected (those need the slurm executor)."""
    from ce_lab.batches.slurm_exec import uncollected

    adopted = uncollected(opened.batch_dir)
    _collect_first(request.executor, opened.batch_dir, adopted)
    if request.executor == "slurm":
        from ce_lab.batches.slurm_exec import SlurmExecutor

        return SlurmExecutor(opened.batch_dir, request.slurm, request.jobs, request.detach,
                             adopt=adopted), [a["task"] for a in adopted]
    if ray is not None:
        return ray, []
    from ce_lab.batches.local import LocalExecutor

    return LocalExecutor(opened.batch_dir, request.jobs or 1, request.threads), []


def _collect_first(kind: str, batch_dir: Path, adopted: list[dict[str, Any]]) -> None:
    """Jobs an earlier call left in SLURM are collected by the slurm executor only."""
    if adopted and kind != "slurm":
        raise ParamError(f"{batch_dir} has {len(adopted)} SLURM jobs not collected yet; resume "
                         "it with «executor» slurm")


def _open_locked(request: BatchRequest, held: ExitStack) -> Opened:
    """Open the request's batch folder with its lock held (until ``held`` closes). A new folder
    is chosen under the batch name's claim (``ce_lab.batches.claim``): a batch of the same file
    started at the same moment has made its folder by then, and that folder's lock refuses this
    process with one line naming it, instead of both training every entry."""
    from ce_lab.batches.claim import choosing_folder
    from ce_lab.batches.plan import find_previous, open_batch
    from ce_lab.batches.store import locked
    from ce_lab.runs.folder import create_batch_dir

    batch = request.batch
    claim = (choosing_folder(batch.out_dir, batch.name)
             if request.batch_dir is None and not request.new else nullcontext())
    with claim:
        target = request.batch_dir
        if target is None and not request.new:
            target = find_previous(batch, False)  # made since the request was prepared
        if target is None:
            target = create_batch_dir(batch.out_dir, batch.name)
        held.enter_context(locked(target))
        return open_batch(batch, target, request.executor)


def _ray_executor(request: BatchRequest):
    """The Ray executor; one line when Ray is missing, refuses the resources or has no cluster.
    A resource it refuses exits 1, as ``ce-lab batch`` always has."""
    from ce_lab.batches.ray_exec import RayExecutor

    for param, value, ok, bound in (("cpus_per_task", request.cpus_per_task,
                                     request.cpus_per_task > 0, "> 0"),
                                    ("gpus_per_task", request.gpus_per_task,
                                     request.gpus_per_task >= 0, ">= 0")):
        if not ok:
            error = ParamError(f"«{param}» must be {bound}, got {value}")
            error.exit_code = 1
            raise error
    return RayExecutor(request.address, request.cpus_per_task, request.gpus_per_task,
                       request.jobs)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM takes the Ctrl-C path too: interrupt the workers, save the state, exit 130.
    SIGINT gets its handler here as ``train``'s loop installs its own: a batch started in the
    background by a script inherits SIGINT ignored, and would otherwise never hear Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, how) for sig, how in (
        (signal.SIGTERM, handler), (signal.SIGINT, signal.default_int_handler))}
    try:
        yield
    finally:
        for sig, how in old.items():
            if how is not None:  # None: a handler not set from Python, which cannot be restored
                signal.signal(sig, how)


def entry_label(rec: EntryRecord) -> str:
    """An entry's overrides as ``key=value ...``, ``(base)`` when it has none."""
    return " ".join(f"{k}={v}" for k, v in rec.overrides.items()) or "(base)"
