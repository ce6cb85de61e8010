"""PNG plots of a comparison: loss, validation accuracy (also against epochs, one panel per
setting the runs differ in), gradient norms, d loss / d logits, and the test set's
reliability diagram.

A group with several seeds is drawn as the mean line and a min–max band over its seeds, only at the
steps every seed logged. Non-finite values (nan, inf) are not drawn: the line has a gap there, and a
mean over seeds is missing wherever one seed is. Nothing is clipped, smoothed or replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ce_lab.runs.names import (
    GRAD_NORMS_PNG,
    LOGIT_GRAD_PNG,
    LOSS_PNG,
    RELIABILITY_PNG,
    VAL_ACC_BY_SETTING_PNG,
    VAL_ACC_PNG,
)
from ce_lab.runs.read import is_integer
from ce_lab.runs.record import RunRecord

Group = tuple[str, Sequence[RunRecord]]  # label, runs (seeds) in the group
EPOCHS = "<epochs>"  # the x of a plot against fractional epochs (not a column)


def _epochs(record: RunRecord) -> list[float] | None:
    """The epoch of each eval.csv row, fractional: examples / training images (meta.json's
    ``label_noise.n_train``); eval.csv's whole ``epoch`` for runs that do not record it."""
    noise = record.meta.get("label_noise")
    n_train = noise.get("n_train") if isinstance(noise, dict) else None
    if is_integer(n_train) and n_train > 0 and "examples" in record.evals:
        return [e / n_train for e in record.evals["examples"]]
    return record.evals.get("epoch")


def _aligned(records: Sequence[RunRecord], table: str, x: str, y: str):
    """(x, mean, min, max) over runs at the x values every run has; non-finite -> nan.
    ``x`` is a column, or EPOCHS (eval.csv only): each row's fractional epoch."""
    import numpy as np

    per_run = []
    for r in records:
        cols = getattr(r, table)
        xs = _epochs(r) if x == EPOCHS else cols.get(x)
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


def _draw(ax, groups: Sequence[Group], table: str, x: str, y: str, log: bool,
          colors: Sequence[int] | None = None) -> bool:
    drew = False
    for i, (label, records) in enumerate(groups):
        series = _aligned(records, table, x, y)
        if series is None:
            continue
        xs, mean, lo, hi = series
        color = f"C{(colors[i] if colors is not None else i) % 10}"
        n = len(records)
        name = label if n == 1 else f"{label} (mean of {n})"
        ax.plot(xs, mean, color=color, label=name, linewidth=1.2)
        if n > 1:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
        else:
            diverged = records[0].summary.get("diverged_at")
            if diverged is not None and x == "step":
                ax.axvline(float(diverged), color=color, linestyle=":", linewidth=1)
        drew = True
    if log:
        # mask, not clip: a zero loss (hinge) is not drawn rather than drawn at a made-up floor.
        ax.set_yscale("log", nonpositive="mask")
    ax.grid(True, alpha=0.3)
    return drew


def _band_note(groups: Sequence[Group]) -> str:
    return " (band: min–max over seeds)" if any(len(g[1]) > 1 for g in groups) else ""


def _diverged_note(groups: Sequence[Group]) -> str:
    diverged = any(len(g[1]) == 1 and g[1][0].summary.get("diverged_at") is not None
                   for g in groups)
    return "\n(dotted line: step a run diverged)" if diverged else ""


def _new_figure(width: float = 7.0, height: float = 4.5, ncols: int = 1, nrows: int = 1):
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state: safe headless

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path: Path) -> Path:
    """Rendered in memory, then written under a temp name in the same folder and renamed: a full
    disk leaves no partial PNG (and no temp file), only one line (WriteError) naming it."""
    import io

    from ce_lab.safe_io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(Path(path), buf.getvalue())
    return path


def _plot_metric(groups: Sequence[Group], path: Path, column: str, ylabel: str,
                 title: str) -> Path | None:
    """One metrics.csv column against step, log scale; None when no run has the column."""
    fig, axes = _new_figure()
    ax = axes[0][0]
    if not _draw(ax, groups, "metrics", "step", column, log=True):
        return None
    ax.set(xlabel="step", ylabel=ylabel,
           title=title + _band_note(groups) + _diverged_note(groups))
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_loss(groups: Sequence[Group], path: Path) -> Path | None:
    return _plot_metric(groups, path, "loss", "training loss (log)", "training loss")


def plot_val_acc(groups: Sequence[Group], thresholds: Sequence[float], path: Path) -> Path | None:
    fig, axes = _new_figure()
    ax = axes[0][0]
    if not _draw(ax, groups, "evals", "examples", "val_acc", log=False):
        return None
    for t in thresholds:
        ax.axhline(t, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f"{t:.2f}", (1.0, t), xycoords=("axes fraction", "data"), fontsize=7,
                    ha="right", va="bottom", color="grey")
    ax.set(xlabel="training examples seen", ylabel="validation accuracy",
           title="validation accuracy" + _band_note(groups))
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_val_acc_by_setting(panels: Sequence[tuple[str, Sequence[Group]]],
                            path: Path) -> Path | None:
    """Validation accuracy against epochs, one panel per setting the runs differ in
    (``data.label_noise=0.4``), a line per loss in the same colour in every panel. None with fewer
    than two panels (``val_acc.png`` says it all)."""
    if len(panels) < 2:
        return None
    labels = list(dict.fromkeys(label for _, groups in panels for label, _ in groups))
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = _new_figure(4.2 * ncols, 3.4 * nrows, ncols, nrows)
    drew = False
    for i, (title, groups) in enumerate(panels):
        ax = axes[i // ncols][i % ncols]
        colors = [labels.index(label) for label, _ in groups]
        drew = _draw(ax, groups, "evals", EPOCHS, "val_acc", log=False, colors=colors) or drew
        ax.set(xlabel="epoch", ylabel="validation accuracy")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    for j in range(len(panels), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    if not drew:
        return None
    fig.suptitle("validation accuracy" + _band_note(
        [g for _, groups in panels for g in groups]))
    return _save(fig, path)


def grad_params(groups: Sequence[Group]) -> list[str]:
    """Weight tensors with a grad_norm column in metrics.csv, in model order."""
    names: list[str] = []
    for _, records in groups:
        for r in records:
            for col in r.metrics:
                if col.startswith("grad_norm/") and col.endswith(".weight") and col not in names:
                    names.append(col)
    return names


def plot_grad_norms(groups: Sequence[Group], path: Path) -> Path | None:
    params = grad_params(groups)
    if not params:
        return None  # runs logged with log.grad_stats=false
    ncols = min(len(params), 3)
    nrows = -(-len(params) // ncols)
    fig, axes = _new_figure(4.2 * ncols, 3.4 * nrows, ncols, nrows)
    for i, col in enumerate(params):
        ax = axes[i // ncols][i % ncols]
        _draw(ax, groups, "metrics", "step", col, log=True)
        ax.set(xlabel="step", ylabel="gradient L2 norm (log)", title=col.removeprefix("grad_norm/"))
    for j in range(len(params), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("gradient norm per layer" + _band_note(groups) + _diverged_note(groups))
    return _save(fig, path)


def plot_logit_grad(groups: Sequence[Group], path: Path) -> Path | None:
    return _plot_metric(groups, path, "logit_grad_norm", "mean ||d loss / d logits|| (log)",
                        "d loss / d logits norm")


def _pooled_reliability(records: Sequence[RunRecord]):
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


def plot_reliability(groups: Sequence[Group], path: Path) -> Path | None:
    """Accuracy against confidence per bin of the test set, one panel per group, the diagonal
    drawn and each group's test ECE (the mean over its seeds) in its title."""
    panels = [(label, records, _pooled_reliability(records)) for label, records in groups]
    panels = [p for p in panels if p[2] is not None]
    if not panels:
        return None
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = _new_figure(3.2 * ncols, 3.3 * nrows, ncols, nrows)
    for i, (label, records, (bins, count, conf, acc)) in enumerate(panels):
        ax = axes[i // ncols][i % ncols]
        width = 1.0 / bins
        lefts = [m * width for m in range(bins) if count[m]]
        heights = [acc[m] for m in range(bins) if count[m]]
        ax.bar(lefts, heights, width=width, align="edge", color=f"C{i % 10}", alpha=0.7,
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
    for j in range(len(panels), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle("reliability on the test set (15 bins; dashed: perfect calibration)")
    return _save(fig, path)


def write_plots(groups: Sequence[Group], thresholds: Sequence[float], out_dir: Path,
                panels: Sequence[tuple[str, Sequence[Group]]] = ()) -> list[Path]:
    """Every plot the runs have data for, as PNG files in ``out_dir``; returns their paths.
    ``panels``: the groups by the settings they differ in besides the loss (title, groups)."""
    out_dir = Path(out_dir)
    made = [
        plot_loss(groups, out_dir / LOSS_PNG),
        plot_val_acc(groups, thresholds, out_dir / VAL_ACC_PNG),
        plot_val_acc_by_setting(panels, out_dir / VAL_ACC_BY_SETTING_PNG),
        plot_grad_norms(groups, out_dir / GRAD_NORMS_PNG),
        plot_logit_grad(groups, out_dir / LOGIT_GRAD_PNG),
        plot_reliability(groups, out_dir / RELIABILITY_PNG),
    ]
    return [p for p in made if p is not None]
