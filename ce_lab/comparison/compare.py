"""Write a comparison of finished runs: tables, paired statistics, plots, report.md and
comparison.json. It trains nothing (training comparisons are ``ce_lab.lab.comparing``).

The comparison folder's name is also the group id the training path gives its runs (meta.json
"group"), so ``ce-lab compare --group compare-...`` finds them again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ce_lab.comparison.build import ComparisonTable, build_table, show
from ce_lab.comparison.paired import PairedDiff, paired_differences
from ce_lab.render import data as data_files
from ce_lab.render.cells import shows_paired
from ce_lab.render.markdown import to_markdown
from ce_lab.render.style import loss_styles
from ce_lab.runs.formats import FORMAT
from ce_lab.runs.names import (
    COMPARISON_JSON,
    PAIRED_CSV,
    REPORT_HTML,
    REPORT_MD,
    SENSITIVITY_PNG,
    TABLE_CSV,
    TABLE_JSON,
    TABLE_MD,
    TUNING_CSV,
)
from ce_lab.runs.record import RunRecord

if TYPE_CHECKING:
    from ce_lab.comparison.tuning import Tuning

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
    files: dict[str, Path] = field(default_factory=dict)  # table.csv, ..., report.md, report.html
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
    html: bool = True,
) -> ComparisonResult:
    """Render the comparison of ``records`` into ``comp_dir``: comparison.json, table.csv /
    table.json / table.md, paired.csv, the PNG plots, report.md and (``html``) report.html; with
    ``tuning`` (how each loss's rate was chosen) also tuning.csv, the sensitivity plot and the
    report's Tuning section."""
    from ce_lab.render.report import render_report

    comp_dir = Path(comp_dir)
    table = build_table(records, group_by=group_by, sort=sort)
    ref = choose_reference(records, reference)
    diffs = paired_differences(table, ref, tuned=tuning.key if tuning else None) if ref else []
    if reference is not None and ref is None:
        table.notes.append(f"reference loss {reference!r} is not among the runs: no paired table")
    result = ComparisonResult(comp_dir, comp_dir.name, table, diffs, ref, skipped=list(skipped))

    result.files[TABLE_CSV] = _write_text(comp_dir / TABLE_CSV, data_files.to_csv(table))
    result.files[TABLE_JSON] = _write_text(
        comp_dir / TABLE_JSON, data_files.to_json(table, diffs, ref, skipped))
    result.files[TABLE_MD] = _write_text(
        comp_dir / TABLE_MD, to_markdown(table, diffs, ref))
    if shows_paired(diffs):  # one seed: no paired table, so no paired.csv either
        result.files[PAIRED_CSV] = _write_text(comp_dir / PAIRED_CSV, data_files.paired_csv(diffs))
    # One look per loss for every figure of the comparison, by the order the runs came in.
    styles = loss_styles([r.loss for r in records])
    if plots:
        from ce_lab.render.plots import write_plots
        from ce_lab.render.tuning import tuned_panels

        groups = [(row.label, row.records) for row in table.rows]
        panels = setting_panels(table) if tuning is None else tuned_panels(groups, tuning)
        result.plots = write_plots(groups, table.thresholds, comp_dir, panels, styles)
    section, tuning_plot = (None, None) if tuning is None else _write_tuning(tuning, comp_dir,
                                                                            result, plots, styles)
    report = render_report(title or f"ce-lab comparison {comp_dir.name}", table, diffs, ref,
                           result.plots, skipped, comp_dir, section)
    if tuning_plot is not None:  # drawn in the Tuning section, not again under Plots
        result.plots.insert(0, tuning_plot)
    result.files[REPORT_MD] = _write_text(comp_dir / REPORT_MD, report)
    if html:
        from ce_lab.render.html import render_html

        page = render_html(title or f"ce-lab comparison {comp_dir.name}", table, diffs, ref,
                           skipped, comp_dir, tuning, styles)
        result.files[REPORT_HTML] = _write_text(comp_dir / REPORT_HTML, page)

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
                  plots: bool, styles: dict) -> tuple[str, Path | None]:
    """tuning.csv and the sensitivity plot; returns report.md's Tuning section and the plot."""
    from ce_lab.render import tuning as render

    result.files[TUNING_CSV] = _write_text(comp_dir / TUNING_CSV, render.tuning_csv(tuning, comp_dir))
    plot = render.plot_sensitivity(tuning, comp_dir / SENSITIVITY_PNG, styles) if plots else None
    return render.tuning_markdown(tuning, plot, comp_dir), plot
