"""The tuning of a comparison as files: tuning.csv, the sensitivity plot and report.md's section.

Renders ``ce_lab.comparison.tuning.Tuning``; computes nothing. Scores are written raw (csv by repr).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ce_lab.comparison.tuning import Criterion, Tuning, cell_of, fmt_value, key_name

if TYPE_CHECKING:
    from ce_lab.render.style import LossStyle
    from ce_lab.runs.record import RunRecord


def tuning_csv(tuning: Tuning, comp_dir: Path | None = None) -> str:
    """One row per tuning member: loss, value, seed, status, why it does not count, each score;
    ``run`` relative to ``comp_dir`` (as comparison.json's runs)."""
    from ce_lab.render.data import relative_path

    def rel(run: str) -> str:
        return run if comp_dir is None else relative_path(run, comp_dir)

    chosen = tuning.chosen()
    value_col = key_name(tuning.key)
    fields = ["loss", value_col, "seed", "status", "excluded",
              *(c.column for c in Criterion), "chosen", "run"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for p in sorted(tuning.points, key=lambda p: (p.cell, p.value, p.seed or 0)):
        writer.writerow({"loss": p.cell, value_col: p.value, "seed": p.seed, "status": p.status,
                         "excluded": p.excluded or "", **p.scores,
                         "chosen": chosen.get(p.cell) == p.value, "run": rel(p.run)})
    return buf.getvalue()


def _score(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def tuning_markdown(tuning: Tuning, plot: Path | None, comp_dir: Path) -> str:
    """report.md's "Tuning" section, placed before the results."""
    name = key_name(tuning.key)
    seeds = ", ".join(str(s) for s in tuning.seeds) or "unknown"
    out = ["## Tuning", ""]
    out.append(f"Each loss was trained at every {name} of its grid on tuning seed(s) {seeds}, "
               f"and its {name} was chosen by **{tuning.criterion.value}** "
               f"({tuning.criterion.description}) on the **validation split only**: the test "
               "set was never used for selection. Diverged and stalled members are excluded; "
               f"an exact tie goes to the smaller {name}.")
    out.append("")
    if tuning.eval_seeds is None:
        out.append("The comparison below reads the same runs the choice was made on, so its "
                   "validation numbers are optimistic for the chosen rates; test accuracy is not.")
        out.append("")
    elif tuning.eval_seeds:
        out.append(f"The chosen rates were then trained on the evaluation seed(s) "
                   f"{', '.join(str(s) for s in tuning.eval_seeds)}, which the choice never saw.")
        out.append("")
    grid = sorted({v for c in tuning.cells for v in c.grid})
    out.append("| loss | " + " | ".join(fmt_value(v) for v in grid) + f" | chosen {name} |")
    out.append("|---|" + "---|" * (len(grid) + 1))
    for c in tuning.cells:
        cells = []
        for v in grid:
            if v not in c.scores:
                cells.append("")
            elif v in c.excluded:
                cells.append(c.excluded[v])
            else:
                text = _score(c.scores[v])
                cells.append(f"**{text}**" if v == c.chosen else text)
        edge = " (edge of grid)" if c.at_edge else ""
        out.append(f"| {c.cell} | " + " | ".join(cells) + f" | {fmt_value(c.chosen)}{edge} |")
    out.append("")
    out.append(f"Scores: mean {tuning.criterion.column} over the tuning seeds; the chosen one in "
               "bold. Every member's numbers are in `tuning.csv`.")
    out.append("")
    for w in tuning.warnings():
        out.append(f"- **warning:** {w}")
    if tuning.warnings():
        out.append("")
    if plot is not None:
        rel = plot.relative_to(comp_dir) if plot.is_relative_to(comp_dir) else plot
        out += [f"![{rel.stem}]({rel.as_posix()})", ""]
    return "\n".join(out)


def plot_sensitivity(tuning: Tuning, path: Path,
                     styles: Mapping[str, LossStyle] | None = None) -> Path | None:
    """Validation score against the key (log x axis), one line per loss over its counting values,
    in the loss's look of the comparison's other plots (``styles``); a diverged or otherwise
    excluded value is an x at the bottom, the chosen value circled."""
    from matplotlib.ticker import NullLocator
    from matplotlib.transforms import blended_transform_factory

    from ce_lab.render.plotting import legend_below, looks, new_figure, save

    if not tuning.cells:
        return None
    fig, axes = new_figure()
    ax = axes[0][0]
    values = [v for c in tuning.cells for v in c.grid]
    if min(values) > 0:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
    grid = sorted(set(values))
    ax.set_xticks(grid, [fmt_value(v) for v in grid])  # the rates tried, as typed: 0.316
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    marked = False
    for c, look in zip(tuning.cells, looks([c.loss for c in tuning.cells], styles)):
        color = look.color
        xs = [v for v in c.grid if c.scores.get(v) is not None]
        ys = [c.scores[v] for v in xs]
        ax.plot(xs, ys, color=color, linestyle=look.dash, marker=look.marker, markersize=4,
                linewidth=1.2, label=c.cell)
        bad = list(c.excluded)
        if bad:
            ax.plot(bad, [0.03] * len(bad), linestyle="none", marker="x", color=color,
                    markersize=7, transform=bottom)
            marked = True
        if c.chosen_score is not None:
            # Rings of a size per loss: two losses that chose the same rate at the same score
            # (ce and nll-manual) show as concentric rings, not one ring over the other.
            ax.plot([c.chosen], [c.chosen_score], linestyle="none", marker="o",
                    markersize=10 + 4 * (look.slot % 4),
                    markerfacecolor="none", markeredgecolor=color, markeredgewidth=1.5)
    name = key_name(tuning.key)
    note = "\n(circled: chosen; x at the bottom: diverged or excluded)" if marked else \
        "\n(circled: chosen)"
    ax.set(xlabel=name + (" (log)" if min(values) > 0 else ""),
           ylabel=f"validation {tuning.criterion.column}",
           title=f"sensitivity to {name}, mean over tuning seeds" + note)
    ax.grid(True, alpha=0.3)
    legend_below(fig, [ax])
    return save(fig, path)


def tuned_panels(rows: Sequence[tuple[str, Sequence[RunRecord]]], tuning: Tuning
                 ) -> list[tuple[str, list[tuple[str, Sequence[RunRecord]]]]]:
    """val_acc_by_setting.png's panels under tuning: one per loss (per cell, with any other
    setting), its runs at the chosen value, titled with that value (``ce, lr=0.1``)."""
    chosen = tuning.chosen()
    name = key_name(tuning.key)
    panels = []
    for label, records in rows:
        cell = cell_of(records[0], tuning.context_keys) if records else label
        at = f", {name}={fmt_value(chosen[cell])} (tuned)" if cell in chosen else ""
        panels.append((f"{cell}{at}", [(label, records)]))
    return panels
