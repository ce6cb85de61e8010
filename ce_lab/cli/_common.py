"""What every command shares: error handling, consoles and the run-config options."""

from __future__ import annotations

import errno
import functools
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ce_lab.cli.completion import complete_set
from ce_lab.errors import CeLabError
from ce_lab.losses import loss_names
from ce_lab.runs.folder import Status

# OSErrors that only a write raises: they are reported as "... while writing PATH".
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line on stderr; return the Exit to raise."""
    first = " ".join(str(message).split())  # one line, whatever the message held
    err_console.print(f"[red]error:[/red] {escape(first)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def cli_errors(fn):
    """Turn a CeLabError raised by domain code into one red line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CeLabError as e:
            raise fail(str(e), e.exit_code) from None
        except OSError as e:  # a full disk, a read-only folder, ... wherever it surfaced
            from ce_lab.runs.files import os_error_text

            raise fail(os_error_text(e, e.filename, "writing" if e.errno in WRITE_ERRNOS
                                     else "using"), 1) from None
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own)
            raise fail(Status.INTERRUPTED.value, Status.INTERRUPTED.exit_code) from None

    return wrapper


LossName = Enum("LossName", {n: n for n in loss_names()}, type=str)  # type: ignore[misc]


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class ProgressMode(str, Enum):
    auto = "auto"
    bar = "bar"
    plain = "plain"
    none = "none"


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (keys as in configs/default.yaml)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE",
        help="Override one config key, e.g. --set optim.momentum=0.9 (repeatable; YAML values).",
        autocompletion=complete_set,
    ),
]
LossOpt = Annotated[LossName | None, typer.Option("--loss", help="Loss (config loss.name; default ce).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="train.epochs (default 3).")]
MaxStepsOpt = Annotated[
    int | None, typer.Option("--max-steps", help="train.max_steps (default: none).")
]
LrOpt = Annotated[float | None, typer.Option("--lr", help="optim.lr (default 0.1).")]
OptimOpt = Annotated[
    Optimizer | None, typer.Option("--optimizer", help="optim.name (default sgd).")
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", help="train.batch_size (default 64).")
]
DeviceOpt = Annotated[
    Device | None, typer.Option("--device", help="auto, cpu, cuda or mps (default auto).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed (default 0).")]
OutDirOpt = Annotated[
    Path | None, typer.Option("--out-dir", help="Folder for run folders (out_dir, default runs).")
]
MaxMembersOpt = Annotated[
    int,
    typer.Option("--max-members", min=1, help="Most members one fused stack holds; a larger group "
                 "is split into several stacks (default 32). Memory grows linearly with it; see "
                 "the README's 'Comparing losses fairly'.", show_default=False),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Torch CPU threads (default: OMP_NUM_THREADS if set, else "
                 "the usable CPUs less those other processes keep busy; idle threads sleep)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="MNIST cache folder (data.root; default: $CE_LAB_DATA_DIR, "
                 "else the user cache dir)."),
]


def run_flags(**flags):
    """The dedicated flags as dotted config keys: ``ce_lab.config.keyword_overrides`` (kept under
    this name for the commands that call it)."""
    from ce_lab.config import keyword_overrides

    return keyword_overrides(**flags)
