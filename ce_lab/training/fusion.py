"""Which runs can share one stack: the rule, written once, used by train, compare and batch.

A stack trains M members on the same batches from the same initial weights, with one forward,
backward and update for all of them. The arithmetic allows members to differ in whatever enters
only their own slice of the computation:

- the loss and its options (``loss.*``): each member's d loss / d logits is its own;
- the optimizer's hyperparameters ``optim.lr``, ``momentum``, ``nesterov``, ``weight_decay``,
  ``beta1``, ``beta2`` and the schedule (``schedule.*``): the update is element-wise and takes them
  as per-member tensors (``ce_lab.optim``);
- where the run folder goes (``out_dir``) and the thresholds its summary reports
  (``log.thresholds``), which the loop never reads.

Everything else must be equal, because the batches, the initial weights or the shared loop depend
on it: ``seed`` (weights, validation split, batch order), ``data.*``, ``model.*``, ``train.*``
(length, batch sizes), ``optim.name`` (one update rule per stack), ``device`` and the loop's
cadence and logging (``log.*`` but the thresholds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ce_lab.config import RunConfig, differing_keys, flatten, to_dict

PER_MEMBER_SECTIONS = ("loss", "schedule")
PER_MEMBER_KEYS = ("optim.lr", "optim.momentum", "optim.nesterov", "optim.weight_decay",
                   "optim.beta1", "optim.beta2", "out_dir", "log.thresholds")
DEFAULT_MAX_MEMBERS = 32  # members per stack; a larger group is split into several stacks


def shared_part(cfg: RunConfig) -> dict[str, Any]:
    """The part of a config that every member of a stack must have in common."""
    data = to_dict(cfg)
    for section in PER_MEMBER_SECTIONS:
        data.pop(section)
    for dotted in PER_MEMBER_KEYS:
        *parents, key = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        node.pop(key)
    return data


def fusion_key(cfg: RunConfig) -> str:
    """Equal for two configs exactly when they can share a stack."""
    return json.dumps(shared_part(cfg), sort_keys=True)


def fusable(cfgs: Sequence[RunConfig]) -> bool:
    keys = {fusion_key(c) for c in cfgs}
    return len(keys) <= 1


def plan_stacks(cfgs: Sequence[RunConfig], max_members: int = DEFAULT_MAX_MEMBERS) -> list[list[int]]:
    """Indices of ``cfgs`` grouped into stacks: configs that can share one, in their order, split
    into stacks of at most ``max_members``."""
    if max_members < 1:
        raise ValueError("max_members must be at least 1")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(fusion_key(c), []).append(i)
    return [members[i : i + max_members] for members in groups.values()
            for i in range(0, len(members), max_members)]


def member_labels(cfgs: Sequence[RunConfig]) -> list[str]:
    """Short names that tell the members of a stack apart: the loss, plus every per-member key
    whose value differs between members (``mse lr=3.0``)."""
    configs = [to_dict(c) for c in cfgs]
    varying = differing_keys(configs, ignore=("loss.name", "out_dir"))
    flats = [flatten(c) for c in configs]
    labels = []
    for c, f in zip(cfgs, flats):
        extra = " ".join(f"{k.split('.')[-1]}={f[k]}" for k in varying)
        labels.append(f"{c.loss.name} {extra}".strip())
    return labels
