"""Run tasks on a Ray cluster: each task is one Ray task with its own CPUs and GPU fraction.

Ray is an optional extra (``pip install 'ce-lab[ray]'``) and is imported only here, only when this
executor is chosen. Run folders are written by the Ray workers under the batch's out_dir, so on a
real cluster out_dir (and data.root) must be on a filesystem every node shares, and ce-lab must be
installed on every node. Without ``--address`` a local Ray instance is started (or the one this
process already joined is used).
"""

from __future__ import annotations

import os
from typing import Any

from ce_lab.batches.tasks import absolute_task
from ce_lab.errors import CeLabError
from ce_lab.runs.folder import Status

INSTALL_HINT = "the ray executor needs Ray: pip install 'ce-lab[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise CeLabError(INSTALL_HINT) from None
    return ray


def _task_body(task: dict[str, Any]) -> list[dict[str, Any]]:
    from ce_lab.batches.worker import run_task

    return run_task(task)


class RayExecutor:
    """Submits up to ``capacity`` tasks at once; Ray places them by their resource requests."""

    name = "ray"
    detached = False

    def __init__(self, address: str | None = None, cpus_per_task: float = 1.0,
                 gpus_per_task: float = 0.0, jobs: int | None = None):
        # The resources were checked by ce_lab.lab.batch, which names the parameters.
        ray = import_ray()
        self.ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            env_vars = {k: os.environ[k] for k in ("CE_LAB_DATA_DIR",) if k in os.environ}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": env_vars} if env_vars else None)
            except Exception as e:  # connection refused, bad address, ...
                first = " ".join(str(e).split())[:300]
                raise CeLabError(f"cannot start or join Ray (address {address or 'local'}): "
                                 f"{first}") from None
            self._owns_ray = True
        self.capacity = jobs if jobs else 1_000_000  # default: hand everything to Ray's scheduler
        self.threads = max(1, int(cpus_per_task))
        self._remote = ray.remote(max_retries=0)(_task_body).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task)
        self._refs: dict[Any, dict[str, Any]] = {}

    def running(self) -> int:
        return len(self._refs)

    def log_path(self, task: dict[str, Any]) -> None:
        return None  # task output stays in Ray's worker logs

    def start(self, task: dict[str, Any]) -> None:
        task = {**absolute_task(task), "threads": self.threads}
        self._refs[self._remote.remote(task)] = task

    def submit(self) -> None:
        """Nothing to do: start() started the task."""

    def wait(self, timeout: float) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        if not self._refs:
            return []
        ray = self.ray
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out = []
        for ref in ready:
            task = self._refs.pop(ref)
            out.append((task, self._collect(ref, task)))
        return out

    def _collect(self, ref, task: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            status, error = Status.INTERRUPTED, "cancelled"
        except Exception as e:  # the task raised, or its worker died
            status = Status.FAILED
            error = " ".join(str(e).split())[:500] or type(e).__name__
        return [{"index": i, "run_dir": task.get("run_dir"), "status": status, "error": error,
                 "exit_code": status.exit_code} for i in task["entries"]]

    def interrupt(self) -> None:
        """Cancel every task: queued ones never start, running ones get a KeyboardInterrupt."""
        for ref in list(self._refs):
            self.ray.cancel(ref, force=False)

    def kill(self) -> None:
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished
                pass

    def close(self) -> None:
        if self._refs:
            self.kill()
            self._refs.clear()
        if self._owns_ray:
            self.ray.shutdown()
