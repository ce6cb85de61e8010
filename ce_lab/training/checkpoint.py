"""Per-member checkpoints: one member's slice of a stack, saved as a lone run's checkpoint.

A checkpoint holds what a run needs to continue exactly: weights, optimizer state (in
torch.optim's state_dict layout), the step and position in the epoch, the generator state that
draws the epoch's batch order and torch's RNG state. It loads with
``torch.load(path, weights_only=True)``; older checkpoints (written through torch.optim) load too.

A checkpoint is read as untrusted: before torch allocates anything, the sizes it declares (the
file's, and each record's in its zip) are checked against what the run's model implies
(``size_bound``), so a small zip bomb is refused instead of filling the memory.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ce_lab.errors import UsageError
from ce_lab.runs.names import CHECKPOINT, CHECKPOINT_TMP
from ce_lab.safe_io import (
    LinkRefused,
    WriteError,
    check_regular_file,
    open_for_writing,
    os_error_text,
    replace_file,
)

FORMAT = 1


@dataclass
class LoopState:
    """Everything, besides weights and optimizer, that a checkpoint must hold to continue exactly."""

    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0
    wall_offset: float = 0.0
    epoch_gen_state: torch.Tensor | None = None


def _member_slice(tensors: dict[str, Any], m: int, members: int) -> dict[str, Any]:
    """Member ``m``'s part of stacked tensors, kept with a leading dimension of one."""
    out = {}
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == members:
            out[k] = v[m : m + 1].detach().cpu().clone()
        elif isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu().clone()
        else:
            out[k] = v
    return out


def save(stack, m: int, state: LoopState, examples: int, wall: float, run_dir: Path) -> None:
    """Member ``m`` of ``stack`` into ``run_dir/checkpoint.pt``, written under a temp name first."""
    ckpt = {
        "format": FORMAT,
        "model": _member_slice(stack.model.state_dict(), m, stack.M),
        "optimizer": stack.optimizer.member_state_dict(m),
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "examples": examples,  # for readers; derived from the step on load
        "wall_seconds": wall,
        "epoch_gen_state": state.epoch_gen_state,
        "torch_rng_state": torch.get_rng_state(),
    }
    # Serialised in memory, then written by plain OS calls: a full disk is an OSError naming the
    # file (torch's own writer turns it into an opaque RuntimeError), the temp file is removed and
    # the last good checkpoint stays as it was.
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    tmp = run_dir / CHECKPOINT_TMP
    try:
        with open_for_writing(tmp, "wb") as f:  # a link planted there: refused, not followed
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, run_dir / CHECKPOINT)
    except LinkRefused:
        if not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WriteError(os_error_text(e, tmp)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Optimizer state per parameter (Adam: exp_avg, exp_avg_sq; SGD: a momentum buffer; amsgrad
# would add one more) and a margin of as much again, for any layout torch may write.
STATE_PER_PARAM = 4
MARGIN = 2
# The RNG states (about 5 KB each), the step counters and the pickle of the structure.
FIXED_BYTES = 4 << 20


def size_bound(stack) -> int:
    """The most bytes the checkpoint of ``stack`` (a lone run) can hold: its weights and buffers,
    optimizer state for each, the generator states and the pickle, with a margin."""
    model = sum(t.numel() * t.element_size() for t in stack.model.state_dict().values()
                if isinstance(t, torch.Tensor))
    return MARGIN * (1 + STATE_PER_PARAM) * model + FIXED_BYTES


def check_declared_sizes(path: Path, bound: int) -> None:
    """Refuse (ValueError, one line) a checkpoint whose file, or whose zip records once inflated,
    declare more than ``bound`` bytes: what torch would allocate to read it, checked before it
    does. Only the zip's directory is read, not its data."""
    size = check_regular_file(path).st_size  # a FIFO or /dev/zero would hang torch.load
    if size > bound:
        raise ValueError(f"it is {size:,} bytes, more than the {bound:,} this run's model and "
                         "optimizer state can take")
    # torch.save has written zip archives since torch 1.6; the legacy format declares its
    # storages' sizes only inside its pickle, where they cannot be checked before torch allocates.
    if not zipfile.is_zipfile(path):
        raise ValueError("not a checkpoint torch.save wrote (no zip archive)")
    with zipfile.ZipFile(path) as z:
        declared = sum(info.file_size for info in z.infolist())
    if declared > bound:
        raise ValueError(f"it declares {declared:,} bytes, more than the {bound:,} this run's "
                         "model and optimizer state can take")


def load(stack, path: Path) -> LoopState:
    """A lone stack (M = 1) restored from ``path``; the loop state to continue from. UsageError
    (exit 2, one line) for a checkpoint that is unreadable, too large or does not fit the model."""
    if not path.exists():
        raise UsageError(f"{path.parent}: no {CHECKPOINT} to resume from")
    try:
        check_declared_sizes(path, size_bound(stack))
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        stack.model.load_state_dict(ckpt["model"])
        stack.optimizer.load_member_state_dict(0, ckpt["optimizer"])
        state = LoopState(
            step=ckpt["step"], epoch=ckpt["epoch"], batch_in_epoch=ckpt["batch_in_epoch"],
            wall_offset=ckpt["wall_seconds"], epoch_gen_state=ckpt["epoch_gen_state"],
        )
        torch.set_rng_state(ckpt["torch_rng_state"])
    except Exception as e:  # truncated, foreign, too large, or not matching config.yaml's model
        reason = " ".join(str(e).split())[:200]
        raise UsageError(f"{path}: cannot resume from this checkpoint "
                         f"({type(e).__name__}: {reason})") from None
    return state
