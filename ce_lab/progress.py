"""What a user sees while a run trains: a rich progress bar on a terminal, plain lines otherwise.

When the reader of the output goes away (``ce-lab train | head -1``), the output is dropped and the
run stops as after one Ctrl-C (see ``survive_closed_pipe``): the step finishes, a checkpoint is
written, the run ends interrupted and resumable.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping

from rich.console import Console


def _fmt(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else str(v)


# --progress / log.progress: auto is a bar on a terminal, plain lines otherwise (make_reporter).
PROGRESS_MODES = ("auto", "bar", "plain", "none")
MAX_NAMED = 8  # members named one by one on a progress line; a bigger stack is summarised


def _loss_of(label: str) -> str:
    # A member's label is its loss, then what sets it apart ("mse lr=3.16": member_labels).
    return label.split(" ", 1)[0]


def _by_loss(labels) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(_loss_of(label), []).append(label)
    return groups


def _names(names: list[str]) -> str:
    """"ce, mse lr=3.16" — or, for a stack too big for one line, how many of each loss."""
    if len(names) <= MAX_NAMED:
        return ", ".join(names)
    groups = _by_loss(names)
    if len(groups) > MAX_NAMED:
        return f"{len(names)} members of {len(groups)} losses"
    return f"{len(names)} members ({', '.join(f'{len(g)} {k}' for k, g in groups.items())})"


def _values(values: Mapping[str, float], higher_is_better: bool) -> str:
    """"ce: 0.3069, mse lr=3.16: 0.0161" — or, for a stack too big for one line (a --tune-lr grid
    has 28 members), how many, the best and how many are non-finite.

    An accuracy is the best across members; a loss only within one loss (the lowest of each):
    mse's 0.07 and ce's 0.2 are values of different functions, and neither is the better."""
    if len(values) <= MAX_NAMED:
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in values.items())
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    text = f"{len(values)} members"
    groups = _by_loss(finite)
    if finite and (higher_is_better or len(groups) == 1):
        k = (max if higher_is_better else min)(finite, key=finite.__getitem__)
        text += f", best {k}: {_fmt(finite[k])}"
    elif finite and len(groups) <= MAX_NAMED:
        lowest = (min(g, key=finite.__getitem__) for g in groups.values())
        text += ", lowest per loss: " + ", ".join(f"{k}: {_fmt(finite[k])}" for k in lowest)
    if len(finite) < len(values):
        text += f", {len(values) - len(finite)} non-finite"
    return text


_signalled: list[object] = []  # the SIGINT handler last asked to stop (it is asked only once)


def request_stop() -> bool:
    """Ask the training loop in progress to stop after the current step, as one Ctrl-C does.

    The loop takes Ctrl-C with its own SIGINT handler (``ce_lab.training.run.StopFlag``), so this sends
    that handler one SIGINT, never two (a second would stop mid-step, without a checkpoint).
    Outside a loop (Python's default SIGINT handler, or none) it does nothing. True if it sent one.
    """
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler) or handler is signal.default_int_handler:
        return False
    if _signalled and _signalled[0] is handler:
        return False
    _signalled[:] = [handler]
    signal.raise_signal(signal.SIGINT)
    return True


def _silence(console: Console) -> None:
    """Drop whatever ``console`` would still write, and point its file descriptor at /dev/null so
    no later flush (the interpreter's at exit included) fails on the closed pipe."""
    console.quiet = True
    try:
        fd = console.file.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file: nothing to redirect
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    except OSError:
        pass


def survive_closed_pipe(console: Console, on_close: Callable[[], object] = request_stop) -> None:
    """When ``console``'s reader goes away (EPIPE), silence it and call ``on_close`` (by default:
    stop the training loop as one Ctrl-C does), instead of rich's ``SystemExit(1)``."""

    def closed() -> None:
        _silence(console)
        on_close()

    console.on_broken_pipe = closed  # type: ignore[method-assign]


class Reporter:
    """Silent base: the training loop calls these hooks; subclasses decide what to show.

    ``stop_requested`` turns True when the reporter's output was closed under it; the reporter has
    then already asked the loop to stop (``request_stop``).
    """

    stop_requested: bool = False

    def _output_closed(self) -> None:
        self.stop_requested = True
        request_stop()

    def start(self, names: list[str], total_steps: int) -> None: ...

    def logged(self, step: int, epoch: int, losses: Mapping[str, float]) -> None: ...

    def evaluated(self, step: int, val_acc: Mapping[str, float]) -> None: ...

    def note(self, text: str) -> None: ...

    def finish(self) -> None: ...


class PlainReporter(Reporter):
    """Periodic lines, for logs and pipes (at most one every ``every`` seconds, plus evaluations)."""

    def __init__(self, console: Console, every: float = 5.0):
        self.console, self.every = console, every
        survive_closed_pipe(console, self._output_closed)
        self._last = 0.0
        self._t0 = time.perf_counter()
        self._total = 0

    def start(self, names, total_steps):
        self._total = total_steps
        self._t0 = time.perf_counter()
        self.console.print(f"training {_names(names)} for {total_steps} steps", highlight=False,
                           soft_wrap=True)

    def _rate(self, step: int) -> str:
        dt = time.perf_counter() - self._t0
        return f"{step / dt:.0f} steps/s" if dt > 0 else ""

    def logged(self, step, epoch, losses):
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self.console.print(
                f"step {step}/{self._total} epoch {epoch} loss {_values(losses, False)} "
                f"({self._rate(step)})",
                highlight=False, soft_wrap=True,
            )

    def evaluated(self, step, val_acc):
        self.console.print(f"step {step}/{self._total} val_acc {_values(val_acc, True)}",
                           highlight=False, soft_wrap=True)

    def note(self, text):
        self.console.print(text, highlight=False, markup=False)


class BarReporter(Reporter):
    """A rich progress bar: step, epoch, loss, validation accuracy, steps/s."""

    def __init__(self, console: Console):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        survive_closed_pipe(console, self._output_closed)
        self._task = None
        self._t0 = time.perf_counter()
        self._loss = ""
        self._acc = ""
        self._epoch: int | None = None

    def start(self, names, total_steps):
        self.progress.start()
        self._t0 = time.perf_counter()
        self._task = self.progress.add_task(
            _names(names), total=total_steps, rate="", info=""
        )

    def _refresh(self, step: int, epoch: int | None = None):
        self._epoch = epoch or self._epoch
        dt = time.perf_counter() - self._t0
        rate = f"{step / dt:.0f} steps/s" if dt > 0 else ""
        parts = (f"epoch {self._epoch}" if self._epoch else "", self._loss, self._acc)
        info = " ".join(x for x in parts if x)
        self.progress.update(self._task, completed=step, rate=rate, info=info)

    def logged(self, step, epoch, losses):
        self._loss = "loss " + _values(losses, False)
        self._refresh(step, epoch)

    def evaluated(self, step, val_acc):
        self._acc = "val " + _values(val_acc, True)
        self._refresh(step)

    def note(self, text):
        self.progress.console.print(text, highlight=False, markup=False)

    def finish(self):
        self.progress.stop()


def make_reporter(mode: str, console: Console) -> Reporter:
    """auto: a bar on a terminal, plain lines when the console is a pipe or a file (one of
    PROGRESS_MODES)."""
    if mode == "auto":
        mode = "bar" if console.is_terminal else "plain"
    return {"bar": BarReporter, "plain": PlainReporter}.get(mode, lambda c: Reporter())(console)
