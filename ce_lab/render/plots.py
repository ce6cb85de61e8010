"""PNG plots of a comparison: each loss's training loss in its own panel, validation accuracy
(also against epochs, one panel per setting the runs differ in, or per loss at its tuned rate),
gradient norms, d loss / d logits, and the test set's reliability diagram.

Every figure draws a loss in the same colour, dash and marker (``ce_lab.render.plotting``), with
one legend below its axes. Figures are built by the ``figure_*`` functions (a matplotlib Figure,
or None when no run has the data) and written by ``plot_*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ce_lab.render.plotting import (
    EPOCHS,
    Group,
    band_note,
    diverged_note,
    draw,
    grid_shape,
    group_loss,
    legend_below,
    looks,
    losses_of,
    new_figure,
    save,
    styles_for,
    used_axes,
)
from ce_lab.render.style import LossStyle
from ce_lab.runs.names import (
    GRAD_NORMS_PNG,
    LOGIT_GRAD_PNG,
    LOSS_PNG,
    RELIABILITY_PNG,
    VAL_ACC_BY_SETTING_PNG,
    VAL_ACC_PNG,
)
from ce_lab.runs.record import RunRecord

Styles = Mapping[str, LossStyle] | None
Panels = Sequence[tuple[str, Sequence[Group]]]  # (title, groups): the groups of one setting


def _saved(fig, path: Path) -> Path | None:
    return None if fig is None else save(fig, path)


def figure_metric(groups: Sequence[Group], column: str, ylabel: str, title: str,
                  styles: Styles = None):
    """One metrics.csv column against step, log scale, every loss on one axis."""
    fig, axes = new_figure()
    ax = axes[0][0]
    if not draw(ax, groups, "metrics", "step", column, True, looks(losses_of(groups), styles)):
        return None
    ax.set(xlabel="step", ylabel=ylabel, title=title + band_note(groups) + diverged_note(groups))
    legend_below(fig, [ax])
    return fig


def figure_loss(groups: Sequence[Group], styles: Styles = None):
    """Each loss's training loss in its own panel (log y, x shared): the losses are different
    quantities on different scales, so one axis would compare numbers that do not compare."""
    styles = styles_for(losses_of(groups), styles)
    by_loss: dict[str, list[int]] = {}
    for i, (_, records) in enumerate(groups):
        by_loss.setdefault(group_loss(records), []).append(i)
    group_looks = looks(losses_of(groups), styles)
    ncols, nrows = grid_shape(len(by_loss), 1 if len(by_loss) <= 3 else 2)
    fig, axes = new_figure(4.2 * ncols if ncols > 1 else 7.0, 2.2 * nrows + 1.0, ncols, nrows,
                           sharex=True)
    panels = used_axes(axes, len(by_loss))
    drew = False
    for ax, (loss, members) in zip(panels, by_loss.items()):
        drew = draw(ax, [groups[i] for i in members], "metrics", "step", "loss", True,
                    [group_looks[i] for i in members]) or drew
        ax.set_title(loss, fontsize=9, color=styles[loss].color)
        ax.set_ylabel("loss (log)", fontsize=8)
    if not drew:
        return None
    for ax in panels[-ncols:]:
        ax.set_xlabel("step")
    fig.suptitle("training loss, each loss on its own scale" + band_note(groups)
                 + diverged_note(groups))
    legend_below(fig, panels)
    return fig


def plot_loss(groups: Sequence[Group], path: Path, styles: Styles = None) -> Path | None:
    return _saved(figure_loss(groups, styles), path)


def figure_val_acc(groups: Sequence[Group], thresholds: Sequence[float], styles: Styles = None):
    """Validation accuracy against examples seen; each threshold a dashed line, labelled on an
    axis of its own at the right (outside the curves), the legend below."""
    fig, axes = new_figure()
    ax = axes[0][0]
    if not draw(ax, groups, "evals", "examples", "val_acc", False,
                looks(losses_of(groups), styles)):
        return None
    for t in thresholds:
        ax.axhline(t, color="grey", linestyle="--", linewidth=0.8)
    if thresholds:
        right = ax.secondary_yaxis("right")
        right.set_yticks(list(thresholds), [f"{t:.2f}" for t in thresholds], fontsize=7,
                         color="grey")
        right.set_ylabel("thresholds", fontsize=7, color="grey")
    ax.set(xlabel="training examples seen", ylabel="validation accuracy",
           title="validation accuracy" + band_note(groups))
    legend_below(fig, [ax])
    return fig


def plot_val_acc(groups: Sequence[Group], thresholds: Sequence[float], path: Path,
                 styles: Styles = None) -> Path | None:
    return _saved(figure_val_acc(groups, thresholds, styles), path)


def figure_val_acc_by_setting(panels: Panels, styles: Styles = None):
    """Validation accuracy against epochs, one panel per setting the runs differ in
    (``data.label_noise=0.4``) or, under tuning, per loss at its chosen rate; a loss in its own
    look in every panel. None with fewer than two panels (``val_acc.png`` says it all)."""
    if len(panels) < 2:
        return None
    every = [g for _, groups in panels for g in groups]
    styles = styles_for(losses_of(every), styles)
    ncols, nrows = grid_shape(len(panels), 3, square=True)
    # Shared axes: the panels are read against each other (ce at 40% noise against ce at 0%).
    fig, axes = new_figure(4.2 * ncols, 3.4 * nrows + 0.6, ncols, nrows, sharex=True, sharey=True)
    axs = used_axes(axes, len(panels))
    drew = False
    for ax, (title, groups) in zip(axs, panels):
        drew = draw(ax, groups, "evals", EPOCHS, "val_acc", False, looks(losses_of(groups), styles)) or drew
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("validation accuracy" if ax.get_subplotspec().is_first_col() else "")
    if not drew:
        return None
    for ax in axs[-ncols:]:  # the panels with none below them
        ax.set_xlabel("epoch")
    fig.suptitle("validation accuracy" + band_note(every))
    legend_below(fig, axs)
    return fig


def plot_val_acc_by_setting(panels: Panels, path: Path, styles: Styles = None) -> Path | None:
    return _saved(figure_val_acc_by_setting(panels, styles), path)


def grad_params(groups: Sequence[Group]) -> list[str]:
    """Weight tensors with a grad_norm column in metrics.csv, in model order."""
    names: list[str] = []
    for _, records in groups:
        for r in records:
            for col in r.metrics:
                if col.startswith("grad_norm/") and col.endswith(".weight") and col not in names:
                    names.append(col)
    return names


def figure_grad_norms(groups: Sequence[Group], styles: Styles = None):
    params = grad_params(groups)
    if not params:
        return None  # runs logged with log.grad_stats=false
    group_looks = looks(losses_of(groups), styles)
    ncols, nrows = grid_shape(len(params), 3)
    fig, axes = new_figure(4.2 * ncols, 3.4 * nrows + 0.6, ncols, nrows)
    axs = used_axes(axes, len(params))
    for ax, col in zip(axs, params):
        draw(ax, groups, "metrics", "step", col, True, group_looks)
        ax.set(xlabel="step", ylabel="gradient L2 norm (log)", title=col.removeprefix("grad_norm/"))
    fig.suptitle("gradient norm per layer" + band_note(groups) + diverged_note(groups))
    legend_below(fig, axs)
    return fig


def plot_grad_norms(groups: Sequence[Group], path: Path, styles: Styles = None) -> Path | None:
    return _saved(figure_grad_norms(groups, styles), path)


def figure_logit_grad(groups: Sequence[Group], styles: Styles = None):
    return figure_metric(groups, "logit_grad_norm", "mean ||d loss / d logits|| (log)",
                         "d loss / d logits norm", styles)


def plot_logit_grad(groups: Sequence[Group], path: Path, styles: Styles = None) -> Path | None:
    return _saved(figure_logit_grad(groups, styles), path)


def pooled_reliability(records: Sequence[RunRecord]):
    """Per bin over a group's runs: (examples, mean confidence, accuracy), pooled by count; None
    when no run of the group has a reliability table (older runs, runs that did not complete)."""
    tables = [r.summary.get("test_reliability") for r in records]
    tables = [t for t in tables if isinstance(t, dict)]
    if not tables:
        return None
    bins = tables[0]["bins"]
    count, conf, acc = [0] * bins, [0.0] * bins, [0.0] * bins
    for t in tables:
        for m, n in enumerate(t["count"]):
            if n:
                count[m] += n
                conf[m] += n * t["confidence"][m]
                acc[m] += n * t["accuracy"][m]
    return bins, count, [c / n if n else None for c, n in zip(conf, count)], [
        a / n if n else None for a, n in zip(acc, count)]


def figure_reliability(groups: Sequence[Group], styles: Styles = None):
    """Accuracy against confidence per bin of the test set, one panel per group in its loss's
    colour, the diagonal drawn and each group's test ECE (the mean over its seeds) in its title."""
    panels = [(label, records, look, pooled_reliability(records)) for (label, records), look
              in zip(groups, looks(losses_of(groups), styles))]
    panels = [p for p in panels if p[3] is not None]
    if not panels:
        return None
    ncols, nrows = grid_shape(len(panels), 4)
    fig, axes = new_figure(3.2 * ncols, 3.3 * nrows, ncols, nrows)
    axs = used_axes(axes, len(panels))
    for ax, (label, records, look, (bins, count, conf, acc)) in zip(axs, panels):
        width = 1.0 / bins
        lefts = [m * width for m in range(bins) if count[m]]
        heights = [acc[m] for m in range(bins) if count[m]]
        ax.bar(lefts, heights, width=width, align="edge", color=look.color, alpha=0.7,
               edgecolor="black", linewidth=0.4, label="accuracy")
        ax.plot([conf[m] for m in range(bins) if count[m]], heights, "k.", markersize=3,
                label="at the bin's mean confidence")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        eces = [r.summary.get("final", {}).get("test_ece") for r in records]
        eces = [e for e in eces if isinstance(e, (int, float))]
        ece = f"ECE {sum(eces) / len(eces):.4f}" if eces else "ECE —"
        seeds = f", mean of {len(eces)}" if len(eces) > 1 else ""
        ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{label}\n{ece}{seeds}",
               xlabel="confidence (max softmax)", ylabel="accuracy")
        ax.title.set_fontsize(9)
        ax.grid(True, alpha=0.3)
    axs[0].legend(fontsize=6, loc="upper left")
    fig.suptitle("reliability on the test set (15 bins; dashed: perfect calibration)")
    return fig


def plot_reliability(groups: Sequence[Group], path: Path, styles: Styles = None) -> Path | None:
    return _saved(figure_reliability(groups, styles), path)


def write_plots(groups: Sequence[Group], thresholds: Sequence[float], out_dir: Path,
                panels: Panels = (), styles: Styles = None) -> list[Path]:
    """Every plot the runs have data for, as PNG files in ``out_dir``; returns their paths.
    ``panels``: the groups by the settings they differ in besides the loss (title, groups), or
    by loss under tuning. ``styles``: each loss's look, shared with the comparison's other
    figures (default: by the losses' order in ``groups``)."""
    out_dir = Path(out_dir)
    styles = styles_for(losses_of([*groups, *(g for _, gs in panels for g in gs)]), styles)
    made = [
        plot_loss(groups, out_dir / LOSS_PNG, styles),
        plot_val_acc(groups, thresholds, out_dir / VAL_ACC_PNG, styles),
        plot_val_acc_by_setting(panels, out_dir / VAL_ACC_BY_SETTING_PNG, styles),
        plot_grad_norms(groups, out_dir / GRAD_NORMS_PNG, styles),
        plot_logit_grad(groups, out_dir / LOGIT_GRAD_PNG, styles),
        plot_reliability(groups, out_dir / RELIABILITY_PNG, styles),
    ]
    return [p for p in made if p is not None]
