"""What a user sees while a run trains: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from rich.console import Console


def _fmt(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else str(v)


class Reporter:
    """Silent base: the training loop calls these hooks; subclasses decide what to show."""

    def start(self, names: list[str], total_steps: int) -> None: ...

    def logged(self, step: int, epoch: int, losses: Mapping[str, float]) -> None: ...

    def evaluated(self, step: int, val_acc: Mapping[str, float]) -> None: ...

    def note(self, text: str) -> None: ...

    def finish(self) -> None: ...


class PlainReporter(Reporter):
    """Periodic lines, for logs and pipes (at most one every ``every`` seconds, plus evaluations)."""

    def __init__(self, console: Console, every: float = 5.0):
        self.console, self.every = console, every
        self._last = 0.0
        self._t0 = time.perf_counter()
        self._total = 0

    def start(self, names, total_steps):
        self._total = total_steps
        self._t0 = time.perf_counter()
        self.console.print(f"training {', '.join(names)} for {total_steps} steps", highlight=False,
                           soft_wrap=True)

    def _rate(self, step: int) -> str:
        dt = time.perf_counter() - self._t0
        return f"{step / dt:.0f} steps/s" if dt > 0 else ""

    def logged(self, step, epoch, losses):
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            parts = " ".join(f"{k}={_fmt(v)}" for k, v in losses.items())
            self.console.print(
                f"step {step}/{self._total} epoch {epoch} loss {parts} ({self._rate(step)})",
                highlight=False, soft_wrap=True,
            )

    def evaluated(self, step, val_acc):
        parts = " ".join(f"{k}={_fmt(v)}" for k, v in val_acc.items())
        self.console.print(f"step {step}/{self._total} val_acc {parts}", highlight=False,
                           soft_wrap=True)

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
        self._task = None
        self._t0 = time.perf_counter()
        self._loss = ""
        self._acc = ""
        self._epoch: int | None = None

    def start(self, names, total_steps):
        self.progress.start()
        self._t0 = time.perf_counter()
        self._task = self.progress.add_task(
            ", ".join(names), total=total_steps, rate="", info=""
        )

    def _refresh(self, step: int, epoch: int | None = None):
        self._epoch = epoch or self._epoch
        dt = time.perf_counter() - self._t0
        rate = f"{step / dt:.0f} steps/s" if dt > 0 else ""
        parts = (f"epoch {self._epoch}" if self._epoch else "", self._loss, self._acc)
        info = " ".join(x for x in parts if x)
        self.progress.update(self._task, completed=step, rate=rate, info=info)

    def logged(self, step, epoch, losses):
        self._loss = "loss " + " ".join(_fmt(v) for v in losses.values())
        self._refresh(step, epoch)

    def evaluated(self, step, val_acc):
        self._acc = "val " + " ".join(_fmt(v) for v in val_acc.values())
        self._refresh(step)

    def note(self, text):
        self.progress.console.print(text, highlight=False, markup=False)

    def finish(self):
        self.progress.stop()


def make_reporter(mode: str, console: Console) -> Reporter:
    """auto: a bar on a terminal, plain lines when stdout is a pipe or a file."""
    if mode == "auto":
        mode = "bar" if console.is_terminal else "plain"
    return {"bar": BarReporter, "plain": PlainReporter}.get(mode, lambda c: Reporter())(console)
