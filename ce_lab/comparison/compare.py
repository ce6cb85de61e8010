"""Compare runs: make the comparison folder, train the losses paired by seed, render everything.

The comparison folder's name is also the group id the training path gives its runs (meta.json
"group"), so ``ce-lab compare --group compare-...`` finds them again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ce_lab.comparison.build import ComparisonTable, build_table, show
from ce_lab.comparison.paired import PairedDiff, paired_differences
from ce_lab.errors import ConfigError, UsageError
from ce_lab.render import data as data_files
from ce_lab.render.markdown import to_markdown
from ce_lab.runs.folder import Status, create_comparison_dir
from ce_lab.runs.formats import FORMAT
from ce_lab.runs.names import (
    COMPARISON_JSON,
    PAIRED_CSV,
    REPORT_MD,
    SENSITIVITY_PNG,
    TABLE_CSV,
    TABLE_JSON,
    TABLE_MD,
    TUNING_CSV,
)
from ce_lab.runs.record import RunFolderError, RunRecord, load_run

if TYPE_CHECKING:
    from ce_lab.comparison.tuning import Tuning
    from ce_lab.config import RunConfig

DEFAULT_LOSSES = ("ce", "mse", "hinge", "nll-manual")
DEFAULT_REFERENCE = "ce"


def choose_reference(records: Sequence[RunRecord], requested: str | None) -> str | None:
    """The requested loss; else ce, else the first loss among the runs; None if absent."""
    losses = list(dict.fromkeys(r.loss for r in records))
    if requested is not None:
        return requested if requested in losses else None
    if DEFAULT_REFERENCE in losses:
        return DEFAULT_REFERENCE
    return losses[0] if losses else None


@dataclass
class ComparisonResult:
    comp_dir: Path
    group: str
    table: ComparisonTable
    diffs: list[PairedDiff]
    reference: str | None
    files: dict[str, Path] = field(default_factory=dict)  # table.csv, ..., report.md
    plots: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _write_text(path: Path, text: str) -> Path:
    from ce_lab.safe_io import atomic_write_text

    atomic_write_text(path, text)  # a full disk: one line (WriteError) naming the file
    return path


def setting_panels(table: ComparisonTable) -> list[tuple[str, list[tuple[str, list]]]]:
    """The table's rows by the config values they differ in besides the loss: (title, [(loss,
    runs)]), ordered by those values; one panel when only the loss differs."""
    def order(row):  # numbers by value (noise 0.2 before 0.4), anything else by its text
        values = [row.values.get(k) for k in table.config_keys]
        return [(0, v, "") if isinstance(v, (int, float)) else (1, 0, show(v)) for v in values]

    panels: dict[str, list[tuple[str, list]]] = {}
    for row in sorted(table.rows, key=order):
        # "label_noise=0.4": the key without its section, short enough for a panel's title
        title = ", ".join(f"{k.rsplit('.', 1)[-1]}={show(row.values.get(k))}"
                          for k in table.config_keys)
        panels.setdefault(title, []).append((str(row.values["loss"]), row.records))
    return list(panels.items())


def write_comparison(
    records: Sequence[RunRecord],
    comp_dir: Path,
    *,
    reference: str | None = None,
    sort: str | None = None,
    group_by: Sequence[str] | None = None,
    plots: bool = True,
    skipped: Sequence[str] = (),
    title: str | None = None,
    tuning: Tuning | None = None,
) -> ComparisonResult:
    """Render the comparison of ``records`` into ``comp_dir``: comparison.json, table.csv /
    table.json / table.md, paired.csv, the PNG plots and report.md; with ``tuning`` (how each
    loss's rate was chosen) also tuning.csv, the sensitivity plot and the report's Tuning section."""
    from ce_lab.render.report import render_report

    comp_dir = Path(comp_dir)
    table = build_table(records, group_by=group_by, sort=sort)
    ref = choose_reference(records, reference)
    diffs = paired_differences(table, ref) if ref else []
    if reference is not None and ref is None:
        table.notes.append(f"reference loss {reference!r} is not among the runs: no paired table")
    result = ComparisonResult(comp_dir, comp_dir.name, table, diffs, ref, skipped=list(skipped))

    result.files[TABLE_CSV] = _write_text(comp_dir / TABLE_CSV, data_files.to_csv(table))
    result.files[TABLE_JSON] = _write_text(
        comp_dir / TABLE_JSON, data_files.to_json(table, diffs, ref, skipped))
    result.files[TABLE_MD] = _write_text(
        comp_dir / TABLE_MD, to_markdown(table, diffs, ref))
    if diffs:
        result.files[PAIRED_CSV] = _write_text(comp_dir / PAIRED_CSV, data_files.paired_csv(diffs))
    if plots:
        from ce_lab.render.plots import write_plots

        groups = [(row.label, row.records) for row in table.rows]
        result.plots = write_plots(groups, table.thresholds, comp_dir, setting_panels(table))
    section, tuning_plot = (None, None) if tuning is None else _write_tuning(tuning, comp_dir,
                                                                            result, plots)
    report = render_report(title or f"ce-lab comparison {comp_dir.name}", table, diffs, ref,
                           result.plots, skipped, comp_dir, section)
    if tuning_plot is not None:  # drawn in the Tuning section, not again under Plots
        result.plots.insert(0, tuning_plot)
    result.files[REPORT_MD] = _write_text(comp_dir / REPORT_MD, report)

    comparison = {
        "format": FORMAT,  # of the folder: ce_lab.runs.formats
        "kind": "comparison",
        "group": comp_dir.name,
        "runs": [data_files.relative_path(r.path, comp_dir) for r in records],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "reference": ref,
        "skipped": list(skipped),
        "files": sorted([*result.files, *(p.name for p in result.plots)]),
        "paired": [data_files.paired_json(d) for d in diffs],
    }
    if tuning is not None:
        from ce_lab.comparison.tuning import to_json as tuned_json

        comparison["tuned"] = tuned_json(tuning)
    result.files[COMPARISON_JSON] = _write_text(
        comp_dir / COMPARISON_JSON, json.dumps(comparison, indent=2, allow_nan=False) + "\n")
    return result


def _write_tuning(tuning: Tuning, comp_dir: Path, result: ComparisonResult,
                  plots: bool) -> tuple[str, Path | None]:
    """tuning.csv and the sensitivity plot; returns report.md's Tuning section and the plot."""
    from ce_lab.render import tuning as render

    result.files[TUNING_CSV] = _write_text(comp_dir / TUNING_CSV, render.tuning_csv(tuning, comp_dir))
    plot = render.plot_sensitivity(tuning, comp_dir / SENSITIVITY_PNG) if plots else None
    return render.tuning_markdown(tuning, plot, comp_dir), plot


# ---------------------------------------------------------------------------------------------
# Training path


def parse_csv_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def parse_losses(text: str | None) -> list[str]:
    """``a,b,c`` -> validated loss names; UsageError (exit 2) listing the valid ones."""
    from ce_lab.losses import loss_names

    names = parse_csv_list(text) if text is not None else list(DEFAULT_LOSSES)
    valid = loss_names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UsageError(
            f"unknown loss{'es' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid losses: {', '.join(valid)}"
        )
    if not names:
        raise UsageError(f"--losses is empty; valid losses: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--losses names a loss twice: {text}")
    return names


def parse_seeds(text: str | None, option: str = "--seeds") -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in parse_csv_list(text)]
    except ValueError:
        raise UsageError(f"{option} expects comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UsageError(f"{option} expects non-negative integers, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{option} names a seed twice: {text}")
    return seeds


def parse_loss_overrides(items: Sequence[str], losses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``mse:optim.lr=0.5`` items -> {"mse": {"optim.lr": 0.5}} (values parsed as YAML)."""
    from ce_lab.config import parse_set

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        loss, sep, assignment = item.partition(":")
        loss = loss.strip()
        if not sep or not loss or "=" not in assignment:
            raise UsageError(f"--set-loss expects LOSS:dotted.key=value, got {item!r}")
        if loss not in losses:
            raise UsageError(
                f"--set-loss {item}: {loss!r} is not among the compared losses "
                f"({', '.join(losses)})"
            )
        path, value = parse_set(assignment)
        out.setdefault(loss, {})[".".join(path)] = value
    return out


def build_configs(
    base: RunConfig,
    losses: Sequence[str],
    seeds: Sequence[int],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[int, list[RunConfig]]:
    """One config per (seed, loss): the base config, that seed and loss, then its overrides."""
    from ce_lab.config import with_overrides

    overrides = overrides or {}
    out: dict[int, list[RunConfig]] = {}
    for seed in seeds:
        cfgs = []
        for loss in losses:
            try:
                cfgs.append(with_overrides(
                    base, {"seed": seed, "loss.name": loss, **overrides.get(loss, {})}))
            except ConfigError as e:
                raise ConfigError(f"--set-loss for {loss}: {e}") from None
        out[seed] = cfgs
    return out


@dataclass
class TrainedComparison:
    result: ComparisonResult | None
    outcomes: list[Any]  # ce_lab.training.RunOutcome
    interrupted: bool


def train_and_compare(
    configs_by_seed: Mapping[int, Sequence[RunConfig]],
    out_dir: Path,
    *,
    reference: str | None = None,
    sort: str | None = None,
    plots: bool = True,
    reporter: Any = None,
    on_dir: Callable[[Path, str], None] | None = None,
    max_members: int | None = None,
    comp_dir: Path | None = None,
    tuning: Tuning | None = None,
) -> TrainedComparison:
    """Train each seed's configs with ``train_paired`` (same weights and batches across losses)
    under one group id, then compare what was produced. Stops after an interrupted seed.

    ``comp_dir``: a comparison folder made already (by a tuning before); ``tuning``: how the
    configs' rates were chosen, rendered with the comparison."""
    if comp_dir is None:
        comp_dir = create_comparison_dir(out_dir)
        if on_dir is not None:
            on_dir(comp_dir, comp_dir.name)
    outcomes, interrupted = train_seeds(configs_by_seed, comp_dir.name, reporter=reporter,
                                        max_members=max_members)
    records, skipped = load_outcomes(outcomes)
    if not records:
        return TrainedComparison(None, outcomes, interrupted)
    result = write_comparison(records, comp_dir, reference=reference, sort=sort, plots=plots,
                              skipped=skipped, tuning=tuning)
    return TrainedComparison(result, outcomes, interrupted)


def train_seeds(configs_by_seed: Mapping[int, Sequence[RunConfig]], group: str, *,
                reporter: Any = None, max_members: int | None = None) -> tuple[list[Any], bool]:
    """Each seed's configs trained paired under ``group``; (outcomes, interrupted). Stops after
    an interrupted seed."""
    from ce_lab.training import train_paired

    outcomes: list[Any] = []
    kwargs = {} if max_members is None else {"max_members": max_members}
    for _seed, cfgs in configs_by_seed.items():
        done = train_paired(list(cfgs), group=group, reporter=reporter, **kwargs)
        outcomes.extend(done)
        if any(o.status == Status.INTERRUPTED for o in done):
            return outcomes, True
    return outcomes, False


def load_outcomes(outcomes: Sequence[Any]) -> tuple[list[RunRecord], list[str]]:
    """The trained runs as records, and one line for each that cannot be read back."""
    records: list[RunRecord] = []
    skipped: list[str] = []
    for o in outcomes:
        try:
            records.append(load_run(o.run_dir))
        except RunFolderError as e:
            skipped.append(str(e))
    return records, skipped
