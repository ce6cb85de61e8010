"""The training loop: epochs, the logging and evaluation cadence, divergence read-back, the stop
flag and the endings. It drives a ``Stack`` (the arithmetic) and its ``Member``s (the run folders)
and knows neither the arithmetic nor the file formats.

The loop avoids host-device synchronisation except on logged, evaluated and checkpointed steps:
non-finite values are tracked on the device and read back only then.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

import torch

from ce_lab import threads
from ce_lab.config import RunConfig
from ce_lab.progress import Reporter
from ce_lab.runs.names import CHECKPOINT
from ce_lab.training import checkpoint
from ce_lab.training.checkpoint import LoopState
from ce_lab.training.divergence import DivergenceWatch
from ce_lab.training.fusion import fusable, member_labels
from ce_lab.training.members import Member, create_members, open_logs, resumed_member
from ce_lab.training.records import MemberRecords
from ce_lab.training.stack import Stack, loss_group_key

BATCH_SEED_OFFSET = 1_000_003  # batch order uses its own stream, apart from the validation split
# A run killed (kill -9, a crash) before its first epoch end must still be resumable: the first
# checkpoint is written at the first evaluation or after this many seconds, whichever comes first,
# and then again at least this often (besides every epoch end).
FIRST_CHECKPOINT_S = 30.0
CHECKPOINT_EVERY_S = 300.0


def batch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)


class Trainer(MemberRecords):
    """One stack of members, from its first step (or a checkpoint) to its end."""

    def __init__(self, cfgs: Sequence[RunConfig], *, group: str | None, reporter: Reporter | None,
                 resume: tuple[Path, dict] | None = None, data=None, on_open=None):
        from ce_lab.data.loader import load_mnist
        from ce_lab.device import resolve_device

        if not fusable(cfgs):
            raise ValueError("these configs cannot share a stack (ce_lab.training.fusion)")
        if cfgs[0].log.tensorboard:  # before any run folder exists: one line naming the extra
            from ce_lab.errors import require

            require("tensorboard", "tensorboard", "log.tensorboard: true")
        # Members with the same loss side by side: each loss then gets one slice of the logits.
        self.order = sorted(range(len(cfgs)), key=lambda i: loss_group_key(cfgs[i]))
        self.cfgs = [cfgs[i] for i in self.order]
        self.cfg = self.cfgs[0]
        self.group = group
        self.reporter = reporter or Reporter()
        self.device = resolve_device(self.cfg.device)
        # Torch's CPU threads for this stack: --threads, OMP_NUM_THREADS, or the CPUs that other
        # processes leave free, followed as it trains (ce_lab.threads, one policy for every entry
        # point; ``tick`` every step).
        self.cpu_threads = threads.apply()
        self.data = data if data is not None else load_mnist(self.cfg.data, self.cfg.seed, self.device)
        noise = getattr(self.data, "label_noise", None)
        if noise is not None and (noise.fraction, noise.kind, noise.val is not None) != (
                self.cfg.data.label_noise, self.cfg.data.label_noise_kind, self.cfg.data.val_noise):
            raise ValueError("the data given were corrupted for another data.label_noise")
        self.n_train = int(self.data.train_x.shape[0])
        bs = self.cfg.train.batch_size
        self.steps_per_epoch = math.ceil(self.n_train / bs)
        epochs, max_steps = self.cfg.train.epochs, self.cfg.train.max_steps
        total = epochs * self.steps_per_epoch
        if max_steps is not None:  # a cap on the epochs; with epochs 0, the length on its own
            total = max_steps if epochs == 0 else min(total, max_steps)
        self.total_steps = total
        spec = self.data.spec  # the model is sized from the data set
        n_eval = max(int(self.data.val_x.shape[0]), int(self.data.test_x.shape[0]))
        self.stack = Stack(self.cfgs, self.device, total, spec.n_inputs, spec.n_classes,
                           self.n_train, n_eval)
        self.M = self.stack.M
        self.state = LoopState()
        self.members: list[Member] = []
        self.resume = resume
        # Called with [(config, run folder)] once new run folders exist, before any training:
        # a batch worker tells its batch where its entries' runs are (ce_lab.batches.worker).
        self.on_open = on_open

    # --- run folders -----------------------------------------------------------------------

    def open_runs(self) -> None:
        if self.resume is not None:
            run_dir, meta = self.resume
            self.state = checkpoint.load(self.stack, run_dir / CHECKPOINT)
            self.members = [resumed_member(self.cfg, run_dir, meta, self.state.step)]
        else:
            self.members = create_members(self.cfgs, member_labels(self.cfgs), str(self.device),
                                          self.group)
            noise = getattr(self.data, "label_noise", None)
            describe = getattr(self.data, "meta", None)  # the data set, its splits and md5s
            for mem in self.members:  # how many training labels data.label_noise changed
                mem.meta["label_noise"] = noise.to_dict() if noise is not None else None
                if describe is not None:
                    mem.meta["data"] = describe()
            if self.on_open is not None:
                self.on_open([(mem.cfg, mem.run_dir) for mem in self.members])
        keep = self.state.step if self.resume is not None else None
        open_logs(self.members, self.stack.param_names, self.stack.squashes, keep)

    def _save(self, mem: Member) -> None:
        checkpoint.save(self.stack, mem.index, self.state, self._examples_at(self.state.step),
                        self._wall(), mem.run_dir)

    # --- the loop ----------------------------------------------------------------------------

    def _checkpoint_due(self, eval_now: bool) -> bool:
        """An early checkpoint: the first at the first evaluation or after FIRST_CHECKPOINT_S,
        then every CHECKPOINT_EVERY_S (checked on logged and evaluated steps only)."""
        elapsed = time.perf_counter() - (self._last_ckpt or self._t0)
        if self._last_ckpt is None:
            return eval_now or elapsed >= FIRST_CHECKPOINT_S
        return elapsed >= CHECKPOINT_EVERY_S

    def _stopping(self, stop) -> bool:
        """Ctrl-C or SIGTERM arrived, or the progress output was closed under the reporter."""
        return stop.signum is not None or getattr(self.reporter, "stop_requested", False)

    @torch.no_grad()  # once for the loop; losses without a closed form enable autograd for themselves
    def run(self, stop) -> None:
        from ce_lab.data.loader import epoch_batches

        cfg = self.cfg
        bs = cfg.train.batch_size
        log_every, eval_every = cfg.log.log_every, cfg.log.eval_every
        quantities = ["loss", *self.stack.watch_names]  # in the order the step computes them
        self.watch = DivergenceWatch(self.M, quantities, min(log_every, eval_every), self.device,
                                     self.state.step)
        gen = batch_generator(cfg.seed)
        train_x, train_y = self.data.train_x, self.data.train_y
        self._t0 = time.perf_counter()
        self._last_ckpt: float | None = None
        self.reporter.start([m.label for m in self.members], self.total_steps)
        while self.state.step < self.total_steps and self._alive():
            # epoch_gen_state is the generator state that draws this epoch's order; a checkpoint
            # holds it, so a resumed run (mid-epoch or at an epoch end) draws the same order.
            if self.state.epoch_gen_state is None:
                self.state.epoch_gen_state = gen.get_state()
            else:
                gen.set_state(self.state.epoch_gen_state)
            epoch = self.state.epoch + 1
            batches = islice(epoch_batches(self.n_train, bs, gen, self.device),
                             self.state.batch_in_epoch, None)
            for idx in batches:
                self.state.step += 1
                step = self.state.step
                self.state.batch_in_epoch += 1
                log_now = step % log_every == 0
                losses, sq_norms, stats = self.stack.step(
                    train_x.index_select(0, idx), train_y.index_select(0, idx), step - 1, log_now)
                self.cpu_threads.tick()  # follows the load (a clock read unless a check is due)
                # Every step: each member's loss and squared gradient norms go to the divergence
                # watch, on the device and without a sync.
                self.watch.record(step, losses, sq_norms)
                end_of_epoch = self.state.batch_in_epoch == self.steps_per_epoch
                last = step >= self.total_steps
                eval_now = step % eval_every == 0 or end_of_epoch or last
                if log_now or eval_now or self._stopping(stop) or self.watch.must_read(step):
                    self._check_divergence(step)
                if stats is not None:
                    self._write_rows(stats, step, epoch)
                if end_of_epoch:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
                    self.state.epoch_gen_state = gen.get_state()  # the next epoch's order
                if eval_now:
                    self._eval_and_log(epoch)
                if cfg.log.checkpoint and (end_of_epoch or (
                        (log_now or eval_now) and not last and self._checkpoint_due(eval_now))):
                    for mem in self._alive():
                        self._save(mem)
                    self._last_ckpt = time.perf_counter()
                if log_now or eval_now:
                    # Every member (a diverged one too): its meta.json says running until the
                    # stack ends and closes it. At most every few seconds.
                    for mem in self.members:
                        mem.heartbeat()
                if self._stopping(stop):  # asked during this step (its rows were just written)
                    self._interrupt()
                    return
                if last or not self._alive():
                    break
        self._finish_alive()

    # --- endings -----------------------------------------------------------------------------

