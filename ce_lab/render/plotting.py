"""What every PNG of a comparison draws with: the figure, its file, a line per group of runs in
its loss's look, and one legend below the axes.

Each loss keeps its colour, dash and marker (``ce_lab.render.style``) in every figure of a
comparison. Several groups of one loss on one axis (the same loss at two noise levels) keep that
colour in darker and lighter shades, so the loss is still recognisable and the groups apart.
Markers are drawn sparsely, and each loss starts its markers at its own offset, so two curves that
coincide (ce and nll-manual until one diverges) show both markers side by side.

A group with several seeds is drawn as the mean line and a min–max band over its seeds, only at the
steps every seed logged. Non-finite values (nan, inf) are not drawn: the line has a gap there, and a
mean over seeds is missing wherever one seed is. Nothing is clipped, smoothed or replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ce_lab.render.style import LossStyle, loss_styles
from ce_lab.runs.read import is_integer
from ce_lab.runs.record import RunRecord

Group = tuple[str, Sequence[RunRecord]]  # label, runs (seeds) in the group
EPOCHS = "<epochs>"  # the x of a plot against fractional epochs (not a column)
MARKS_PER_LINE = 8  # markers on a line, about: enough to tell the loss, few enough to read the curve
# Shades of a loss's colour for its 2nd, 3rd, ... group on one axis: toward black (< 0) or white.
SHADES = (0.0, -0.35, 0.35, -0.6, 0.6)


@dataclass(frozen=True)
class Look:
    """How one group's line is drawn."""

    color: str
    dash: str
    marker: str
    slot: int  # the loss's place among the comparison's losses: where its markers start
    slots: int  # how many losses there are


def group_loss(records: Sequence[RunRecord]) -> str:
    return records[0].loss if records else ""


def losses_of(groups: Sequence[Group]) -> list[str]:
    """Each group's loss, in order."""
    return [group_loss(records) for _, records in groups]


def styles_for(losses: Sequence[str], styles: Mapping[str, LossStyle] | None = None
               ) -> dict[str, LossStyle]:
    """``styles`` (the comparison's, shared by its figures), extended by any loss it lacks."""
    given = dict(styles or {})
    missing = [loss for loss in losses if loss not in given]
    if not missing:
        return given
    extended = loss_styles([*given, *missing])  # the given ones keep their places, so their looks
    return {**extended, **given}


def _shade(color: str, amount: float) -> str:
    from matplotlib.colors import to_hex, to_rgb

    target = 1.0 if amount > 0 else 0.0
    return to_hex([c + abs(amount) * (target - c) for c in to_rgb(color)])


def looks(losses: Sequence[str], styles: Mapping[str, LossStyle] | None = None) -> list[Look]:
    """A Look per line, given each line's loss: the loss's style, shaded for its later lines."""
    styles = styles_for(losses, styles)
    order = list(styles)
    seen: dict[str, int] = {}
    out = []
    for loss in losses:
        j = seen.get(loss, 0)
        seen[loss] = j + 1
        s = styles[loss]
        out.append(Look(_shade(s.color, SHADES[j % len(SHADES)]) if j else s.color, s.dash,
                        s.marker, order.index(loss), len(order)))
    return out


def epochs_of(record: RunRecord) -> list[float] | None:
    """The epoch of each eval.csv row, fractional: examples / training images (meta.json's
    ``label_noise.n_train``); eval.csv's whole ``epoch`` for runs that do not record it."""
    noise = record.meta.get("label_noise")
    n_train = noise.get("n_train") if isinstance(noise, dict) else None
    if is_integer(n_train) and n_train > 0 and "examples" in record.evals:
        return [e / n_train for e in record.evals["examples"]]
    return record.evals.get("epoch")


def aligned(records: Sequence[RunRecord], table: str, x: str, y: str):
    """(x, mean, min, max) over runs at the x values every run has; non-finite -> nan.
    ``x`` is a column, or EPOCHS (eval.csv only): each row's fractional epoch."""
    import numpy as np

    per_run = []
    for r in records:
        cols = getattr(r, table)
        xs = epochs_of(r) if x == EPOCHS else cols.get(x)
        if xs is None or y not in cols:
            return None
        per_run.append(dict(zip(xs, cols[y], strict=True)))
    common = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    if not common:
        return None
    ys = np.array([[d[v] for v in common] for d in per_run], dtype=float)
    ys[~np.isfinite(ys)] = np.nan  # not drawn: a gap, not a value
    # Plain mean/min/max: a nan in any seed leaves a gap in the mean (no nanmean hiding it).
    return np.array(common, dtype=float), ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


def mark_every(points: int, look: Look) -> tuple[int, int]:
    """(first, every) for matplotlib's markevery: about MARKS_PER_LINE markers, each loss's
    shifted by its slot so coinciding curves alternate their markers (at least one point apart:
    a short line gets fewer markers rather than two losses' markers on the same points)."""
    every = max(1, points // MARKS_PER_LINE, min(look.slots, points // 2))
    return (look.slot * every) // max(look.slots, 1) % every, every


def draw(ax, groups: Sequence[Group], table: str, x: str, y: str, log: bool,
         line_looks: Sequence[Look]) -> bool:
    """Each group's line (and seed band) in its look; False when no group has the data."""
    drew = False
    for (label, records), look in zip(groups, line_looks):
        series = aligned(records, table, x, y)
        if series is None:
            continue
        xs, mean, lo, hi = series
        n = len(records)
        name = label if n == 1 else f"{label} (mean of {n})"
        ax.plot(xs, mean, color=look.color, linestyle=look.dash, marker=look.marker,
                markersize=4, markevery=mark_every(len(xs), look), label=name, linewidth=1.2)
        if n > 1:
            ax.fill_between(xs, lo, hi, color=look.color, alpha=0.2, linewidth=0)
        else:
            diverged = records[0].summary.get("diverged_at")
            if diverged is not None and x == "step":
                ax.axvline(float(diverged), color=look.color, linestyle=":", linewidth=1)
        drew = True
    if log:
        # mask, not clip: a zero loss (hinge) is not drawn rather than drawn at a made-up floor.
        ax.set_yscale("log", nonpositive="mask")
    ax.grid(True, alpha=0.3)
    return drew


def legend_below(fig, axes: Sequence) -> None:
    """One legend for the figure, under its axes: it never covers a curve or a label."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        # As many columns as fit the figure's width (an entry: its line sample and about 0.07 in
        # a character at size 8), at most 4: a legend wider than its figure is cut off.
        entry = 0.7 + 0.07 * max(len(lab) for lab in labels)
        fits = int(fig.get_figwidth() // entry)
        fig.legend(handles, labels, loc="outside lower center",
                   ncols=max(1, min(len(labels), 4, fits)), fontsize=8)


def band_note(groups: Sequence[Group]) -> str:
    return " (band: min–max over seeds)" if any(len(g[1]) > 1 for g in groups) else ""


def diverged_note(groups: Sequence[Group]) -> str:
    diverged = any(len(g[1]) == 1 and g[1][0].summary.get("diverged_at") is not None
                   for g in groups)
    return "\n(dotted line: step a run diverged)" if diverged else ""


def new_figure(width: float = 7.0, height: float = 4.5, ncols: int = 1, nrows: int = 1,
               sharex: bool = False, sharey: bool = False):
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state: safe headless

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def grid_shape(n: int, max_cols: int, square: bool = False) -> tuple[int, int]:
    """(columns, rows) for ``n`` panels, at most ``max_cols`` wide; ``square``: near square
    (4 as 2 x 2, not 3 + 1)."""
    import math

    ncols = max(1, min(n, max_cols, math.ceil(math.sqrt(n)) if square else n))
    return ncols, -(-n // ncols)


def used_axes(axes, used: int) -> list:
    """The first ``used`` axes of a grid, the rest removed from the figure (so ``fig.axes`` holds
    the panels only); an axis left without a panel below it gets its x tick labels back."""
    flat = [ax for row in axes for ax in row]
    for ax in flat[used:]:
        ax.remove()
    ncols = len(axes[0])
    for i in range(max(used - ncols, 0), used):
        flat[i].xaxis.set_tick_params(labelbottom=True)
    return flat[:used]


def save(fig, path: Path) -> Path:
    """Rendered in memory, then written under a temp name in the same folder and renamed: a full
    disk leaves no partial PNG (and no temp file), only one line (WriteError) naming it."""
    import io

    from ce_lab.safe_io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(Path(path), buf.getvalue())
    return path
