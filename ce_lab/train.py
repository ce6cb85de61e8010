"""The training loop: one or more members (losses) trained side by side on identical batches.

``train(cfg)`` is the case of one member. ``train_paired(cfgs)`` stacks the members of a comparison
into one ``StackedMLP`` when their configs differ only in the loss, so they share initial weights,
batches and optimizer settings, and one forward/backward/step serves all of them. Members stay
independent: each has its own loss, gradients, run folder and outcome.

The loop avoids host-device synchronisation except on logged, evaluated and checkpointed steps:
non-finite values are tracked on the device and read back only then.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ce_lab.backprop import Backprop
from ce_lab.config import RunConfig, load_config, to_dict, to_yaml
from ce_lab.divergence import DivergenceWatch
from ce_lab.errors import CeLabError, UsageError
from ce_lab.losses import get_loss, make_loss, make_loss_grad
from ce_lab.optim import lr_at
from ce_lab.progress import Reporter
from ce_lab.runs.files import CsvLog, atomic_write_text, base_meta, now_iso, read_json, write_json
from ce_lab.runs.folder import Status, create_run_dir
from ce_lab.summary import summarize

BATCH_SEED_OFFSET = 1_000_003  # batch order uses its own stream, apart from the validation split
CHECKPOINT = "checkpoint.pt"


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    exit_code: int
    message: str | None = None
    summary: dict[str, Any] | None = None


@dataclass
class _Member:
    index: int
    cfg: RunConfig
    run_dir: Path
    meta: dict[str, Any]
    metrics: CsvLog | None = None
    evals: CsvLog | None = None
    status: str = Status.RUNNING
    diverged_at: int | None = None
    diverged_quantity: str | None = None
    end_step: int = 0
    end_wall: float = 0.0
    test: dict[str, float] | None = None
    message: str | None = None

    @property
    def name(self) -> str:
        return self.cfg.loss.name

    @property
    def alive(self) -> bool:
        return self.status == Status.RUNNING


@dataclass
class _State:
    """Everything, besides weights and optimizer, that a checkpoint must hold to continue exactly."""

    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0
    wall_offset: float = 0.0
    epoch_gen_state: torch.Tensor | None = None


def fusable(cfgs: Sequence[RunConfig]) -> bool:
    """Members can share one stacked model when everything but the loss is the same."""

    def rest(c: RunConfig) -> dict[str, Any]:
        d = to_dict(c)
        d.pop("loss")
        return d

    first = rest(cfgs[0])
    return all(rest(c) == first for c in cfgs[1:])


def metric_header(param_names: Sequence[str], grad_stats: bool, squashes: bool) -> list[str]:
    header = ["step", "epoch", "examples", "wall_s", "lr", "loss", "acc"]
    if grad_stats:
        header += [f"grad_norm/{n}" for n in param_names]
        header += ["grad_norm/total", "logit_grad_norm"]
        header += [f"update_ratio/{n}" for n in param_names]
        if squashes:
            header.append("saturated_frac")
    return header


EVAL_HEADER = ["step", "epoch", "examples", "wall_s", "val_loss", "val_acc"]


class _StopFlag:
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


def _cpu_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)


def _slice_state(tensor_dict: dict[str, Any], m: int, members: int) -> dict[str, Any]:
    """Member ``m``'s part of stacked tensors, kept with a leading dimension of one."""
    out = {}
    for k, v in tensor_dict.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == members:
            out[k] = v[m : m + 1].detach().cpu().clone()
        elif isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu().clone()
        else:
            out[k] = v
    return out


class _Trainer:
    def __init__(self, cfgs: Sequence[RunConfig], *, group: str | None, reporter: Reporter | None,
                 resume_dir: Path | None = None, data=None):
        from ce_lab.data.loader import load_mnist
        from ce_lab.device import resolve_device
        from ce_lab.model import build_model, param_names
        from ce_lab.optim import build_optimizer, update_function

        self.cfgs = list(cfgs)
        self.cfg = self.cfgs[0]
        self.group = group
        self.reporter = reporter or Reporter()
        self.device = resolve_device(self.cfg.device)
        self.data = data if data is not None else load_mnist(self.cfg.data, self.cfg.seed, self.device)
        self.n_train = int(self.data.train_x.shape[0])
        bs = self.cfg.train.batch_size
        self.steps_per_epoch = math.ceil(self.n_train / bs)
        epochs, max_steps = self.cfg.train.epochs, self.cfg.train.max_steps
        total = epochs * self.steps_per_epoch
        if max_steps is not None:  # a cap on the epochs; with epochs 0, the length on its own
            total = max_steps if epochs == 0 else min(total, max_steps)
        self.total_steps = total
        self.M = len(self.cfgs)
        m = self.cfg.model
        self.model = build_model(self.M, m.hidden, m.activation, m.init, self.cfg.seed, self.device)
        self.params = list(self.model.parameters())
        self.param_names = param_names(self.model)
        self.opt = build_optimizer(self.params, self.cfg.optim)
        self.update = update_function(self.opt, self.cfg.optim)
        self.backprop = Backprop(self.model)  # sets every .grad to a buffer it overwrites
        self.loss_fns = [make_loss(c.loss) for c in self.cfgs]
        self.loss_grads = [make_loss_grad(c.loss) for c in self.cfgs]
        self.squashes = [get_loss(c.loss.name).squashes_sigmoid for c in self.cfgs]
        self.grad_stats = self.cfg.log.grad_stats
        self.state = _State()
        self.members: list[_Member] = []
        self.resume_dir = resume_dir

    # --- run folders -----------------------------------------------------------------------

    def open_runs(self) -> None:
        if self.resume_dir is not None:
            meta = read_json(self.resume_dir / "meta.json")
            self.members = [_Member(0, self.cfg, self.resume_dir, meta)]
            self._load_checkpoint(self.resume_dir / CHECKPOINT)
            meta["status"] = Status.RUNNING
            meta["ended"] = None
            meta.setdefault("resumed", []).append({"at_step": self.state.step, "time": now_iso()})
        else:
            dirs = [create_run_dir(c.out_dir, c.loss.name) for c in self.cfgs]
            ids = [d.name for d in dirs]
            for i, (c, d) in enumerate(zip(self.cfgs, dirs)):
                others = [x for x in ids if x != d.name] if self.M > 1 else None
                meta = base_meta(d.name, str(self.device), self.group, others)
                self.members.append(_Member(i, c, d, meta))
                atomic_write_text(d / "config.yaml", to_yaml(c))
        keep = self.state.step if self.resume_dir is not None else None
        for mem in self.members:
            write_json(mem.run_dir / "meta.json", mem.meta)
            header = metric_header(self.param_names, self.grad_stats, self.squashes[mem.index])
            mem.metrics = CsvLog(mem.run_dir / "metrics.csv", header, keep_until_step=keep)
            mem.evals = CsvLog(mem.run_dir / "eval.csv", EVAL_HEADER, keep_until_step=keep)

    # --- checkpoints -------------------------------------------------------------------------

    def _save_checkpoint(self, mem: _Member) -> None:
        m = mem.index
        model_state = _slice_state(self.model.state_dict(), m, self.M)
        opt_state = self.opt.state_dict()
        opt_state = {
            "state": {k: _slice_state(v, m, self.M) for k, v in opt_state["state"].items()},
            "param_groups": opt_state["param_groups"],
        }
        ckpt = {
            "format": 1,
            "model": model_state,
            "optimizer": opt_state,
            "step": self.state.step,
            "epoch": self.state.epoch,
            "batch_in_epoch": self.state.batch_in_epoch,
            "examples": self._examples_at(self.state.step),  # for readers; derived on load
            "wall_seconds": self._wall(),
            "epoch_gen_state": self.state.epoch_gen_state,
            "torch_rng_state": torch.get_rng_state(),
        }
        tmp = mem.run_dir / f".{CHECKPOINT}.tmp"
        torch.save(ckpt, tmp)
        tmp.replace(mem.run_dir / CHECKPOINT)

    def _load_checkpoint(self, path: Path) -> None:
        if not path.exists():
            raise UsageError(f"{path.parent}: no {CHECKPOINT} to resume from")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.state = _State(
                step=ckpt["step"], epoch=ckpt["epoch"], batch_in_epoch=ckpt["batch_in_epoch"],
                wall_offset=ckpt["wall_seconds"],
                epoch_gen_state=ckpt["epoch_gen_state"],
            )
            torch.set_rng_state(ckpt["torch_rng_state"])
        except Exception as e:  # truncated, foreign, or not matching config.yaml's model
            reason = " ".join(str(e).split())[:200]
            raise CeLabError(f"{path}: cannot resume from this checkpoint "
                             f"({type(e).__name__}: {reason})") from None

    # --- the loop ----------------------------------------------------------------------------

    def _wall(self) -> float:
        return self.state.wall_offset + (time.perf_counter() - self._t0)

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Mean loss and accuracy of every member over (x, y), in chunks."""
        bs = self.cfg.train.eval_batch_size
        losses, correct, sizes = [], [], []
        for i in range(0, x.shape[0], bs):
            xb, yb = x[i : i + bs], y[i : i + bs]
            logits = self.model(xb)
            losses.append(torch.stack([fn(logits[m], yb) for m, fn in enumerate(self.loss_fns)]))
            correct.append((logits.argmax(-1) == yb).sum(-1))
            sizes.append(xb.shape[0])
        # One transfer per evaluation (a sync point); sums in float64 on the CPU, which MPS lacks.
        losses_cpu = torch.stack(losses).cpu().double()
        correct_cpu = torch.stack(correct).cpu().double()
        w = torch.tensor(sizes, dtype=torch.float64).unsqueeze(1)
        n = x.shape[0]
        return ((losses_cpu * w).sum(0) / n).tolist(), (correct_cpu.sum(0) / n).tolist()

    def _eval_and_log(self, epoch: int) -> None:
        alive = [m for m in self.members if m.alive]
        if not alive or self.data.val_x.shape[0] == 0:
            return
        losses, accs = self._evaluate(self.data.val_x, self.data.val_y)
        wall = self._wall()
        for mem in alive:
            mem.evals.write({
                "step": self.state.step, "epoch": epoch, "examples": self._examples_at(self.state.step),
                "wall_s": wall, "val_loss": losses[mem.index], "val_acc": accs[mem.index],
            })
        self.reporter.evaluated(self.state.step, {m.name: accs[m.index] for m in alive})

    def _check_divergence(self, step: int) -> None:
        """Read back the divergence watch (a sync point) and stop the members that diverged."""
        for mem, found in zip(self.members, self.watch.read(step)):
            if found is None or not mem.alive:
                continue
            mem.status = Status.DIVERGED
            mem.diverged_at, mem.diverged_quantity = found
            mem.end_step = mem.diverged_at
            mem.end_wall = self._wall()
            self.reporter.note(f"{mem.name}: {mem.diverged_quantity} became non-finite at step "
                               f"{mem.diverged_at}")

    def _examples_at(self, step: int) -> int:
        """Training examples seen after ``step`` steps (only an epoch's last batch is short)."""
        epochs, rest = divmod(step, self.steps_per_epoch)
        return epochs * self.n_train + rest * self.cfg.train.batch_size

    @torch.no_grad()  # once for the loop; losses without a closed form enable autograd for themselves
    def run(self, stop: _StopFlag) -> None:
        cfg = self.cfg
        bs = cfg.train.batch_size
        log_every, eval_every = cfg.log.log_every, cfg.log.eval_every
        self.watch = DivergenceWatch(self.M, ["loss"] + [f"grad_norm/{n}" for n in self.param_names],
                                     min(log_every, eval_every), self.device, self.state.step)
        gen = _cpu_generator(cfg.seed)
        train_x, train_y = self.data.train_x, self.data.train_y
        from ce_lab.data.loader import epoch_batches

        self._t0 = time.perf_counter()
        self.reporter.start([m.name for m in self.members], self.total_steps)
        while self.state.step < self.total_steps and any(m.alive for m in self.members):
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
                lr = lr_at(step - 1, self.total_steps, cfg.optim.lr, cfg.schedule)
                log_now = step % log_every == 0
                table = self._train_step(train_x.index_select(0, idx), train_y.index_select(0, idx),
                                         step, lr, log_now)
                end_of_epoch = self.state.batch_in_epoch == self.steps_per_epoch
                last = step >= self.total_steps
                eval_now = step % eval_every == 0 or end_of_epoch or last
                if log_now or eval_now or stop.signum is not None or self.watch.must_read(step):
                    self._check_divergence(step)
                if table is not None:
                    self._write_rows(table, step, epoch, lr)
                if end_of_epoch:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
                    self.state.epoch_gen_state = gen.get_state()  # the next epoch's order
                if eval_now:
                    self._eval_and_log(epoch)
                if end_of_epoch and cfg.log.checkpoint:
                    for mem in self.members:
                        if mem.alive:
                            self._save_checkpoint(mem)
                if stop.signum is not None:
                    self._interrupt()
                    return
                if last or not any(m.alive for m in self.members):
                    break
        self._finish_alive()

    def _loss_gradients(self, logits: torch.Tensor, y: torch.Tensor
                        ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every member's loss (a list of M scalars) and d loss / d logits (M, B, C).

        A loss with a closed-form gradient uses it; the others go through autograd, all in one
        call, so whatever their pipeline does (a NaN from softmax -> log included) reaches the
        gradient exactly as autograd computes it. The layers below are differentiated by hand
        (``ce_lab.backprop``). A member that has stopped gets a zero gradient.
        """
        losses: list[torch.Tensor] = []
        grads: list[torch.Tensor | None] = []
        by_autograd: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        for m, (z, fn, grad_fn) in enumerate(zip(logits.unbind(0), self.loss_fns, self.loss_grads)):
            if grad_fn is not None:
                loss, grad = grad_fn(z, y)
            else:
                z = z.detach().requires_grad_()
                with torch.enable_grad():
                    loss = fn(z, y)
                by_autograd.append((m, z, loss))
                grad = None
            losses.append(loss)
            grads.append(grad)
        if by_autograd:
            _, leaves, outputs = zip(*by_autograd)
            for (m, _, loss), grad in zip(by_autograd, torch.autograd.grad(outputs, leaves)):
                losses[m], grads[m] = loss.detach(), grad
        for mem in self.members:
            if not mem.alive:
                grads[mem.index] = torch.zeros_like(grads[mem.index])
        # With one member, a view: no copy.
        return losses, grads[0].unsqueeze(0) if self.M == 1 else torch.stack(grads)

    def _train_step(self, x, y, step: int, lr: float, log_now: bool):
        """One forward/backward/update of every member; on a logged step, its metrics (M, K)."""
        logits = self.backprop.forward(x)
        losses, grad_logits = self._loss_gradients(logits, y)
        self.backprop.backward(grad_logits)

        # Every step, logged or not: each member's loss and squared gradient norms go to the
        # divergence watch, on the device and without a sync.
        checked = self.watch.record(step, losses, self.backprop.squared_grad_norms())

        stats_now = log_now and self.grad_stats
        if log_now:
            cols = [checked[:, 0], (logits.argmax(-1) == y).float().mean(-1)]
            if stats_now:
                gnorm = checked[:, 1:].sqrt()
                cols += list(gnorm.unbind(1))
                cols.append(gnorm.norm(dim=1))
                # Gradient of each example's own loss: the batch mean divides it by B.
                cols.append((grad_logits * x.shape[0]).norm(dim=-1).mean(-1))
                before = [p.clone() for p in self.params]

        self.update(lr)

        if not log_now:
            return None
        if stats_now:
            for p, b in zip(self.params, before):
                dims = tuple(range(1, p.dim()))
                cols.append(torch.linalg.vector_norm(p - b, dim=dims)
                            / torch.linalg.vector_norm(b, dim=dims))
            if any(self.squashes):
                probs = torch.sigmoid(logits)
                cols.append(((probs < 0.01) | (probs > 0.99)).float().mean((-1, -2)))
        return torch.stack(cols, 1).cpu().double().tolist()  # the one sync of a logged step

    def _write_rows(self, table: list[list[float]], step: int, epoch: int, lr: float) -> None:
        """metrics.csv rows of the members still running, and of any that diverged at this step."""
        stats_now = self.grad_stats
        wall = self._wall()
        names = self.param_names
        for mem in self.members:
            if not (mem.alive or mem.diverged_at == step):
                continue
            vals = table[mem.index]
            row = {"step": step, "epoch": epoch, "examples": self._examples_at(step), "wall_s": wall,
                   "lr": lr, "loss": vals[0], "acc": vals[1]}
            if stats_now:
                P = len(names)
                for j, n in enumerate(names):
                    row[f"grad_norm/{n}"] = vals[2 + j]
                    row[f"update_ratio/{n}"] = vals[4 + P + j]
                row["grad_norm/total"] = vals[2 + P]
                row["logit_grad_norm"] = vals[3 + P]
                if self.squashes[mem.index]:
                    row["saturated_frac"] = vals[4 + 2 * P]
            mem.metrics.write(row)
        self.reporter.logged(step, epoch, {m.name: table[m.index][0] for m in self.members
                                           if m.alive})

    # --- endings -----------------------------------------------------------------------------

    def _finish_alive(self) -> None:
        alive = [m for m in self.members if m.alive]
        if not alive:
            return
        test_loss, test_acc = self._evaluate(self.data.test_x, self.data.test_y)
        wall = self._wall()
        for mem in alive:
            mem.status = Status.COMPLETED
            mem.test = {"loss": test_loss[mem.index], "acc": test_acc[mem.index]}
            mem.end_step, mem.end_wall = self.state.step, wall
            if self.cfg.log.checkpoint:
                self._save_checkpoint(mem)

    def _interrupt(self) -> None:
        for mem in self.members:
            if mem.alive:
                self._save_checkpoint(mem)
        self.mark_interrupted()

    def mark_interrupted(self) -> None:
        wall = self._wall()
        for mem in self.members:
            if mem.alive:
                mem.status = Status.INTERRUPTED
                mem.end_step, mem.end_wall = self.state.step, wall

    def fail(self, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        for mem in self.members:
            if mem.alive:
                mem.status = Status.FAILED
                mem.message = f"{type(exc).__name__}: {exc}"
                mem.end_step = self.state.step
                atomic_write_text(mem.run_dir / "error.log", text)

    def close(self) -> list[RunOutcome]:
        outcomes = []
        for mem in self.members:
            for log in (mem.metrics, mem.evals):
                if log is not None:
                    log.close()
            summary = summarize(
                mem.run_dir, status=mem.status, loss=mem.name, seed=mem.cfg.seed,
                steps=mem.end_step, examples=self._examples_at(mem.end_step), wall_seconds=mem.end_wall,
                steps_per_epoch=self.steps_per_epoch, thresholds=mem.cfg.log.thresholds,
                test=mem.test, diverged_at=mem.diverged_at,
                diverged_quantity=mem.diverged_quantity, group=mem.meta.get("group"),
            )
            write_json(mem.run_dir / "summary.json", summary)
            mem.meta["status"] = mem.status
            mem.meta["ended"] = now_iso()
            write_json(mem.run_dir / "meta.json", mem.meta)
            outcomes.append(RunOutcome(mem.run_dir, mem.status, Status(mem.status).exit_code,
                                       mem.message, summary))
        self.reporter.finish()
        return outcomes


def _execute(trainer: _Trainer) -> list[RunOutcome]:
    trainer.open_runs()
    exiting: SystemExit | None = None
    with _StopFlag() as stop:
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
          data=None) -> RunOutcome:
    """Train one run; returns its folder and outcome."""
    return _execute(_Trainer([cfg], group=group, reporter=reporter, data=data))[0]


def train_paired(cfgs: Sequence[RunConfig], *, group: str | None = None,
                 reporter: Reporter | None = None, data=None) -> list[RunOutcome]:
    """Train several configs on identical batches: fused when only the loss differs, else in turn."""
    if not cfgs:
        return []
    if fusable(cfgs):
        return _execute(_Trainer(cfgs, group=group, reporter=reporter, data=data))
    if reporter is not None:
        reporter.note("configs differ beyond the loss: training them one after another")
    outcomes = []
    for c in cfgs:
        outcomes.append(train(c, group=group, reporter=reporter, data=data))
        if outcomes[-1].status == Status.INTERRUPTED:
            break  # Ctrl-C stops the comparison, not just the run in progress
    return outcomes


def resume(run_dir: Path, *, reporter: Reporter | None = None, data=None) -> RunOutcome:
    """Continue an interrupted (or failed) run from its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "meta.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no meta.json / config.yaml)")
    meta = read_json(run_dir / "meta.json")
    status = meta.get("status")
    if status in (Status.COMPLETED, Status.DIVERGED):
        raise UsageError(f"{run_dir}: run already {status}; nothing to resume")
    cfg = load_config(run_dir / "config.yaml")
    trainer = _Trainer([cfg], group=meta.get("group"), reporter=reporter, resume_dir=run_dir,
                       data=data)
    return _execute(trainer)[0]
