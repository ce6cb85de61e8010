"""request.json: what a training comparison was asked to do, written into its folder as it
starts, so ``ce-lab compare --resume DIR`` can finish it exactly as asked (the same base config,
losses, seeds, overrides, tuning grid and seeds, reference, sort, plots, report.html, stack size).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import UsageError

if TYPE_CHECKING:
    from ce_lab.lab.comparing import CompareRequest

REQUEST = "request.json"
FORMAT = 1  # bumped when the fields below change meaning; read() upgrades older ones


def to_json(request: CompareRequest) -> dict[str, Any]:
    from ce_lab.config import to_dict

    tune = request.tune
    return {
        "format": FORMAT,
        "kind": "compare-request",
        "base": to_dict(request.base),
        "losses": list(request.losses),
        "seeds": list(request.seeds),
        "loss_overrides": request.loss_overrides,
        "reference": request.reference,
        "sort": request.sort,
        "plots": request.plots,
        "html": request.html,
        "max_members": request.max_members,
        "tune": None if tune is None else {"lr_grid": tune.lr_grid,
                                           "select": tune.criterion.value,
                                           "tune_seeds": tune.tune_seeds},
    }


def write(comp_dir: Path, request: CompareRequest) -> None:
    from ce_lab.safe_io import atomic_write_text

    atomic_write_text(comp_dir / REQUEST, json.dumps(to_json(request), indent=2) + "\n")


def read(comp_dir: Path) -> dict[str, Any]:
    """The request of a comparison folder as plan_comparison's arguments (``base`` a RunConfig);
    UsageError (one line) for a folder that is not a training comparison ce-lab can resume."""
    from ce_lab.config import validate
    from ce_lab.runs.files import RunFolderError
    from ce_lab.runs.read import read_mapping

    path = Path(comp_dir) / REQUEST
    if not Path(comp_dir).is_dir():
        raise UsageError(f"{comp_dir}: no such comparison folder")
    if not path.is_file():
        raise UsageError(f"{comp_dir}: not a comparison that trained (no {REQUEST}); only "
                         "`ce-lab compare` runs that trained can be resumed")
    try:
        data = read_mapping(path)
    except RunFolderError as e:
        raise UsageError(f"{e}; cannot resume") from None
    if data.get("kind") != "compare-request" or data.get("format") != FORMAT:
        raise UsageError(f"{path}: not a request this ce-lab can read (format "
                         f"{data.get('format')!r}); cannot resume")
    try:
        tune = data.get("tune") or {}
        return {"base": validate(data["base"], str(path)), "losses": data["losses"],
                "seeds": data["seeds"], "loss_overrides": data["loss_overrides"],
                "reference": data["reference"], "sort": data["sort"],
                "plots": bool(data["plots"]), "max_members": data["max_members"],
                "html": bool(data.get("html", True)),  # requests written before report.html
                "tune_lr": bool(tune), "lr_grid": tune.get("lr_grid"),
                "select": tune.get("select"), "tune_seeds": tune.get("tune_seeds")}
    except (KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{path}: a field is missing or malformed ({e}); cannot resume") from None
