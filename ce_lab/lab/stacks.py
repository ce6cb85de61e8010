"""Train a comparison's configs as the plan stacks them, one seed after another, or finish them
(``resuming``); read what they wrote back. Shared by the comparison and the tuning before it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.errors import ConfigError, ParamError
from ce_lab.runs.folder import Status

if TYPE_CHECKING:
    from ce_lab.config import RunConfig
    from ce_lab.runs.record import RunRecord


def build_configs(base: RunConfig, losses: Sequence[str], seeds: Sequence[int],
                  overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[int, list[RunConfig]]:
    from ce_lab.config import check_trains, with_overrides

    overrides = overrides or {}
    out: dict[int, list[RunConfig]] = {}
    for seed in seeds:
        cfgs = []
        for loss in losses:
            try:
                cfgs.append(with_overrides(
                    base, {"seed": seed, "loss.name": loss, **overrides.get(loss, {})}))
            except ConfigError as e:
                raise ParamError(f"«loss_overrides» for {loss}: {e}") from None
            check_trains(cfgs[-1])  # a run with no steps: refused before any folder is made
        out[seed] = cfgs
    return out


def train_or_resume(configs_by_seed: Mapping[int, Sequence[RunConfig]], group: str,
                    root: Path, *, reporter: Any = None, max_members: int | None = None,
                    resuming: bool = False) -> tuple[list[Any], bool]:
    """Each seed's configs trained fused under ``group``; with ``resuming``, the runs of the
    group already under ``root`` are matched to the configs first (ce_lab.lab.resuming).
    Returns (outcomes in config order, interrupted); stops after an interrupted seed."""
    from ce_lab.training import train_paired

    kwargs = {} if max_members is None else {"max_members": max_members}
    found = {}
    if resuming:
        from ce_lab.lab.resuming import existing_runs

        found = existing_runs(root, group)
    outcomes: list[Any] = []
    for cfgs in configs_by_seed.values():
        if resuming:
            from ce_lab.lab.resuming import finish

            done = finish(list(cfgs), found, group, reporter=reporter, **kwargs)
        else:
            done = train_paired(list(cfgs), group=group, reporter=reporter, **kwargs)
        outcomes.extend(done)
        if any(o.status == Status.INTERRUPTED for o in done):
            return outcomes, True
    return outcomes, False


def load_outcomes(outcomes: Sequence[Any]) -> tuple[list[RunRecord], list[str]]:
    """The trained runs as records, and one line for each that cannot be read back."""
    from ce_lab.runs.record import RunFolderError, load_run

    records: list[RunRecord] = []
    skipped: list[str] = []
    for o in outcomes:
        try:
            records.append(load_run(o.run_dir))
        except RunFolderError as e:
            skipped.append(str(e))
    return records, skipped
