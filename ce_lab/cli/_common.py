"""What every command shares: error handling, consoles and the run-config options."""

from __future__ import annotations

import errno
import functools
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._output import console, err_console, fail  # noqa: F401  (every command's)
from ce_lab.cli.choices import choice_enum, choices, default, in_words
from ce_lab.cli.completion import complete_loss, complete_set
from ce_lab.cli.hints import check_loss
from ce_lab.errors import CeLabError, ParamError
from ce_lab.losses import loss_names
from ce_lab.progress import PROGRESS_MODES
from ce_lab.runs.folder import Status
from ce_lab.training.fusion import DEFAULT_MAX_MEMBERS

# OSErrors that only a write raises: they are reported as "... while writing PATH".
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)



def cli_errors(fn):
    """Turn a CeLabError raised by domain code into one red line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ParamError as e:  # the orchestration layer names parameters; we name flags
            from ce_lab.cli._parse import flag

            raise fail(e.spelled(flag), e.exit_code) from None
        except CeLabError as e:
            raise fail(str(e), e.exit_code) from None
        except OSError as e:  # a full disk, a read-only folder, ... wherever it surfaced
            from ce_lab.safe_io import os_error_text

            raise fail(os_error_text(e, e.filename, "writing" if e.errno in WRITE_ERRNOS
                                     else "using"), 1) from None
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own)
            raise fail(Status.INTERRUPTED.value, Status.INTERRUPTED.exit_code) from None

    return wrapper


# The choices as the config and the progress module define them (ce_lab/cli/choices.py).
Device = choice_enum("Device", choices("device"))
ProgressMode = choice_enum("ProgressMode", PROGRESS_MODES)
Optimizer = choice_enum("Optimizer", choices("optim.name"))


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
LossOpt = Annotated[
    str | None,
    # A str checked by check_loss, not a LossName: a mistyped name gets one line with a guess.
    typer.Option("--loss", metavar=f"<{'|'.join(loss_names())}>", callback=check_loss,
                 autocompletion=complete_loss,
                 help=f"Loss (config loss.name; default {default('loss.name')})."),
]
EpochsOpt = Annotated[
    int | None, typer.Option("--epochs", help=f"train.epochs (default {default('train.epochs')}).")
]
MaxStepsOpt = Annotated[
    int | None, typer.Option("--max-steps", help="train.max_steps (default: none).")
]
LrOpt = Annotated[float | None, typer.Option("--lr", help=f"optim.lr (default {default('optim.lr')}).")]
OptimOpt = Annotated[
    Optimizer | None,
    typer.Option("--optimizer", help=f"optim.name (default {default('optim.name')}).")
]
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", help=f"train.batch_size (default {default('train.batch_size')}).")
]
DeviceOpt = Annotated[
    Device | None,
    typer.Option("--device", help=f"{in_words(choices('device'))} (default {default('device')}).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help=f"seed (default {default('seed')}).")]
OutDirOpt = Annotated[
    Path | None,
    typer.Option("--out-dir", help=f"Folder for run folders (out_dir, default {default('out_dir')}).")
]
ProgressOpt = Annotated[
    ProgressMode | None,
    typer.Option("--progress", help=f"{in_words(PROGRESS_MODES)} (log.progress; default "
                 f"{default('log.progress')})."),
]
MaxMembersOpt = Annotated[
    int,
    typer.Option("--max-members", min=1, help="Most members one fused stack holds; more are "
                 f"split (default {DEFAULT_MAX_MEMBERS}; memory: docs/fusion.md).",
                 show_default=False),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Torch CPU threads (default: OMP_NUM_THREADS, else "
                 "follow the free CPUs)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="MNIST cache folder (data.root; default "
                 "$CE_LAB_DATA_DIR, else the user cache)."),
]


def run_flags(**flags):
    """The dedicated flags as dotted config keys: ``ce_lab.config.keyword_overrides`` (kept under
    this name for the commands that call it)."""
    from ce_lab.config import keyword_overrides

    return keyword_overrides(**flags)
