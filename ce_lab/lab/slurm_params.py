"""The SLURM executor's parameters as the CLI and the API give them, checked into
``SlurmOptions``.

They are checked here, in the orchestration layer beside ``params``, rather than in
``ce_lab.batches.slurm_exec``: the executor is below the layer that calls it and imports nothing
from it.
"""

from __future__ import annotations

from typing import Any

from ce_lab.batches.slurm_exec import SlurmOptions
from ce_lab.errors import ParamError
from ce_lab.lab.params import positive_int


def slurm_options(partition: Any = None, time: Any = None, cpus_per_task: Any = None,
                  gpus_per_task: Any = None, mem: Any = None, extra: Any = None) -> SlurmOptions:
    """Checked SLURM options (ParamError naming the parameter, ``slurm_<name>``)."""

    def text(value: Any, name: str) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and (not isinstance(value, str) or not value.strip()
                                  or any(c.isspace() for c in value.strip())):
            raise ParamError(f"«slurm_{name}» must be one word as sbatch takes it, got {value!r}")
        return None if value is None else value.strip()

    cpus = 1 if cpus_per_task is None else positive_int(cpus_per_task,
                                                                "slurm_cpus_per_task")
    gpus = 0 if gpus_per_task is None else gpus_per_task
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ParamError(f"«slurm_gpus_per_task» must be a whole number >= 0, got {gpus!r}")
    return SlurmOptions(text(partition, "partition"), text(time, "time"), cpus, gpus,
                        text(mem, "mem"), _slurm_extra(extra))


def _slurm_extra(value: Any) -> dict[str, str]:
    """``{KEY: VALUE}`` or ``["KEY=VALUE", ...]`` (the CLI's --slurm-extra) as sbatch parameters."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        pairs = {}
        for item in value:
            key, eq, val = str(item).partition("=")
            if not eq:
                raise ParamError(f"«slurm_extra» takes KEY=VALUE (an sbatch option without its "
                                 f"--), got {item!r}")
            pairs[key] = val
        value = pairs
    if not isinstance(value, dict):
        raise ParamError(f"«slurm_extra» must be a mapping of sbatch options, got {value!r}")
    out = {}
    for key, val in value.items():
        key = str(key).strip().lstrip("-")
        if not key or any(c.isspace() for c in key):
            raise ParamError(f"«slurm_extra»: {key!r} is no sbatch option name")
        out[key] = str(val)
    return out
