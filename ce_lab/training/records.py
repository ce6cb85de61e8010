"""What a ``Trainer`` records about its members: metric and evaluation rows, divergence,
the endings (test numbers, interruption, failure) and the outcomes. A mixin of ``Trainer``
(ce_lab.training.loop), kept apart so that the loop's class stays about the loop; it reads the
trainer's ``members``, ``stack``, ``state``, ``watch``, ``data``, ``cfg``, ``reporter``,
``steps_per_epoch``, ``n_train``, ``order``, ``resume`` and ``_t0``, and its ``_save``.
"""

from __future__ import annotations

import math
import time

import torch

from ce_lab.metrics import logged_metric
from ce_lab.runs.folder import Status
from ce_lab.training.members import Member, RunOutcome, close_member
from ce_lab.training.stack import GRAD_NORM, WATCH_LOGITS

GRAD_TOTAL = logged_metric("grad_norm/total").name


class MemberRecords:
    """The member-facing half of ``Trainer`` (see the module docstring)."""

    def _wall(self) -> float:
        return self.state.wall_offset + (time.perf_counter() - self._t0)

    def _alive(self) -> list[Member]:
        return [m for m in self.members if m.alive]

    def _examples_at(self, step: int) -> int:
        """Training examples seen after ``step`` steps (only an epoch's last batch is short)."""
        epochs, rest = divmod(step, self.steps_per_epoch)
        return epochs * self.n_train + rest * self.cfg.train.batch_size

    def _eval_and_log(self, epoch: int) -> None:
        alive = self._alive()
        if not alive or self.data.val_x.shape[0] == 0:
            return
        ev = self.stack.evaluate(self.data.val_x, self.data.val_y, self.cfg.train.eval_batch_size)
        wall, step = self._wall(), self.state.step
        for mem in alive:
            i = mem.index
            mem.write_eval({"step": step, "epoch": epoch, "examples": self._examples_at(step),
                            "wall_s": wall, "val_loss": ev.losses[i], "val_acc": ev.accs[i],
                            **{f"val_{k}": v for k, v in ev.calibration[i].items()}})
        self.reporter.evaluated(step, {m.label: ev.accs[m.index] for m in alive})

    def _check_divergence(self, step: int) -> None:
        """Read back the divergence watch (a sync point) and stop the members that diverged."""
        newly_stopped = False
        for mem, found in zip(self.members, self.watch.read(step)):
            if found is None or not mem.alive:
                continue
            mem.diverged_at, mem.diverged_quantity = found
            if mem.diverged_at % self.cfg.log.log_every:  # not a logged step: no row of its own
                self._write_diverged_row(mem)
            mem.stop(Status.DIVERGED, mem.diverged_at, self._wall())
            self.reporter.note(f"{mem.label}: {mem.diverged_quantity} became non-finite at step "
                               f"{mem.diverged_at}")
            newly_stopped = True
        if newly_stopped:  # a new mask for the step only when it changed (a host-device copy)
            self.stack.stop_members([not m.alive for m in self.members])

    def _write_diverged_row(self, mem: Member) -> None:
        """metrics.csv's row of a diverged step that was not a logged one, from what the watch
        recorded at that step: loss, logit_grad_norm and the gradient norms, so the non-finite
        values are on disk. A non-logged step computes no other statistic: those cells (and
        wall_s, unknown for a past step) are empty."""
        step = mem.diverged_at
        recorded = dict(zip(self.watch.quantities, self.watch.values(step, mem.index)))
        row = {c: "" for c in mem.metrics.header}
        grads = {q: math.sqrt(v) if math.isfinite(v) else v for q, v in recorded.items()
                 if q.startswith(GRAD_NORM)}
        row.update(grads, loss=recorded["loss"], step=step,
                   epoch=(step - 1) // self.steps_per_epoch + 1, examples=self._examples_at(step),
                   lr=self.stack.optimizer.lrs(step - 1)[mem.index])
        row[WATCH_LOGITS] = recorded[WATCH_LOGITS]
        row[GRAD_TOTAL] = math.sqrt(math.fsum(v * v for v in grads.values()))
        mem.write_metrics({k: v for k, v in row.items() if k in mem.metrics.header})

    def _write_rows(self, stats: dict[str, torch.Tensor], step: int, epoch: int) -> None:
        """metrics.csv rows of the members still running, and of any that diverged at this step."""
        names = list(stats)
        table = torch.stack([stats[n] for n in names], 1).cpu().double().tolist()  # the one sync
        lrs = self.stack.optimizer.lrs(step - 1)
        wall, examples = self._wall(), self._examples_at(step)
        for mem in self.members:
            if not (mem.alive or mem.diverged_at == step):
                continue
            row = dict(zip(names, table[mem.index]))
            row.update(step=step, epoch=epoch, examples=examples, wall_s=wall, lr=lrs[mem.index])
            mem.write_metrics(row)
        self.reporter.logged(step, epoch, {m.label: table[m.index][0] for m in self._alive()})

    def _finish_alive(self) -> None:
        alive = self._alive()
        if not alive:
            return
        ev = self.stack.evaluate(self.data.test_x, self.data.test_y,
                                 self.cfg.train.eval_batch_size, keep_logits=True)
        assert ev.logits is not None
        wall = self._wall()
        labels = self.data.test_y.cpu().numpy().astype("int64")
        for mem in alive:
            i = mem.index
            mem.test = {"loss": ev.losses[i], "acc": ev.accs[i], **ev.calibration[i],
                        "reliability": ev.reliability[i].to_dict()}
            mem.test_logits = (ev.logits[i].float().numpy(), labels)  # written as it closes
            mem.stop(Status.COMPLETED, self.state.step, wall)
            if self.cfg.log.checkpoint:
                self._save(mem)

    def _interrupt(self) -> None:
        for mem in self._alive():
            self._save(mem)
        self.mark_interrupted()

    def mark_interrupted(self) -> None:
        wall = self._wall() if hasattr(self, "_t0") else self.state.wall_offset
        for mem in self._alive():
            mem.stop(Status.INTERRUPTED, self.state.step, wall)

    def fail(self, exc: BaseException) -> None:
        for mem in self._alive():
            mem.fail(exc, self.state.step)

    def close(self) -> list[RunOutcome]:
        """Every member's outcome, in the order the configs were given."""
        outcomes = [close_member(mem, steps_per_epoch=self.steps_per_epoch,
                                 examples=self._examples_at(mem.end_step)) for mem in self.members]
        self.reporter.finish()
        if self.resume is not None:
            return outcomes
        by_position = dict(zip(self.order, outcomes))
        return [by_position[i] for i in range(len(outcomes))]
