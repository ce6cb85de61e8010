"""report.html's interactive figures (plotly), each returned as an HTML fragment without plotly.js
(the page inlines it once, ``ce_lab.render.html.page``).

The curves are those of the static plots (``ce_lab.render.plots``), from the same helpers: a
group's mean over seeds with its min–max band, only at the steps every seed logged, non-finite
values left as gaps and nothing smoothed. Validation accuracy also draws each seed as a thin
line beneath; every trace of a group shares its legend group, so a click on a loss in the legend
hides its mean, band and seeds together. Colours and dashes come from ``loss_styles``, as in the
PNGs.

The y values travel as float32 (plotly's base64 typed arrays): 7 significant digits, more than a
hover shows, at half the bytes; steps and examples stay exact integers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ce_lab.render.plots import grad_params, pooled_reliability
from ce_lab.render.plotting import Group, aligned, group_loss, losses_of, styles_for
from ce_lab.render.style import LossStyle

# matplotlib's dash names (style.py) as plotly spells the same patterns
_DASH = {"solid": "solid", "dashed": "dash", "dashdot": "dashdot", "dotted": "dot"}
# matplotlib's marker letters (style.py) as plotly's symbol names
_SYMBOL = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down",
           "P": "cross", "X": "x", "*": "star"}
Styles = Mapping[str, LossStyle] | None  # the comparison's looks by loss (render/style.py)
FEW_POINTS = 30  # a curve with fewer points also marks them: one evaluation is a point, not a line
_CONFIG = {"displaylogo": False, "responsive": True,
           "toImageButtonOptions": {"format": "png", "scale": 2}}
SATURATION = (("saturated_frac", "saturated (below 0.01 or above 0.99)"),
              ("saturated_wrong_frac", "saturated on the wrong side"),
              ("saturated_right_frac", "saturated on the right side"))


def text(s: Any) -> str:
    """A name from disk as plotly text: plotly reads a few HTML tags in names and titles, so
    the name's own ``<``, ``>`` and ``&`` are escaped to show as typed."""
    return html.escape(str(s), quote=False)


def _x(values) -> Any:
    """Steps and examples as exact int32 where they are whole, else float64."""
    import numpy as np

    xs = np.asarray(values, dtype=float)
    if xs.size and np.all(np.isfinite(xs)) and np.all(xs == np.round(xs)) \
            and np.abs(xs).max() < 2**31:
        return xs.astype(np.int32)
    return xs


def _y(values) -> Any:
    import numpy as np

    ys = np.asarray(values, dtype=float)
    ys[~np.isfinite(ys)] = np.nan  # a gap, as in the static plots
    return ys.astype(np.float32)


def _marked(n: int, style: LossStyle, size: int = 6) -> dict:
    """A trace's mode and marker: points drawn too where there are few of them."""
    if n >= FEW_POINTS:
        return {"mode": "lines"}
    return {"mode": "lines+markers",
            "marker": {"symbol": _SYMBOL.get(style.marker, "circle"), "size": size}}


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _banded(fig, records, table: str, x: str, y: str, label: str, style: LossStyle, *,
            row: int | None = None, col: int | None = None, legend: bool = True,
            xname: str = "step") -> bool:
    """The group's mean line and its min–max band over seeds; False when it has no such data."""
    import plotly.graph_objects as go

    series = aligned(records, table, x, y)
    if series is None:
        return False
    xs, mean, lo, hi = series
    n = len(records)
    where = {} if row is None else {"row": row, "col": col}
    name = text(label) if n == 1 else f"{text(label)} (mean of {n})"
    if n > 1:
        band = dict(x=_x(xs), mode="lines", line={"width": 0}, legendgroup=label,
                    showlegend=False, hoverinfo="skip")
        fig.add_trace(go.Scatter(y=_y(hi), **band), **where)
        fig.add_trace(go.Scatter(y=_y(lo), fill="tonexty", fillcolor=_rgba(style.color, 0.18),
                                 **band), **where)
    fig.add_trace(go.Scatter(
        x=_x(xs), y=_y(mean), name=name, legendgroup=label, showlegend=legend,
        **_marked(len(xs), style),
        line={"color": style.color, "dash": _DASH[style.dash], "width": 2},
        hovertemplate=f"{text(label)}<br>{xname} %{{x}}<br>%{{y:.4g}}"
                      + (f" (mean of {n}; band min–max)" if n > 1 else "") + "<extra></extra>",
    ), **where)
    diverged = records[0].summary.get("diverged_at") if n == 1 else None
    if diverged is not None and x == "step":  # where the run's numbers stop being training's
        fig.add_vline(x=float(diverged), line={"color": style.color, "dash": "dot", "width": 1},
                      annotation_text="diverged", annotation_font_color=style.color, **where)
    return True


def _styles(groups: Sequence[Group], styles: Styles = None) -> dict[str, LossStyle]:
    """Each group's look by its label: its loss's look in the comparison's ``styles``, the one its
    PNG plots use, so a loss has one colour on the page and in the PNGs."""
    by_loss = styles_for(losses_of(groups), styles)
    return {label: by_loss[group_loss(records)] for label, records in groups}


def _layout(fig, title: str, height: int, **more) -> None:
    # No template: plotly's named ones add ~7 KB of JSON to every figure; a white plot with light
    # grid lines is all the page uses of one.
    fig.update_layout(title={"text": title, "x": 0}, height=height, template="none",
                      plot_bgcolor="white", font={"size": 12},
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, hovermode="closest",
                      legend={"groupclick": "togglegroup"}, **more)


def _grid(fig) -> None:
    fig.update_xaxes(gridcolor="#e8e8e8", zeroline=False, linecolor="#888", showline=True)
    fig.update_yaxes(gridcolor="#e8e8e8", zeroline=False, linecolor="#888", showline=True)


def fragment(fig) -> str:
    """The figure as a <div> and its script, plotly.js left to the page."""
    _grid(fig)
    return fig.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG)


def val_acc(groups: Sequence[Group], thresholds: Sequence[float], styles: Styles = None):
    """Validation accuracy against examples seen: mean and band per group, each seed beneath."""
    import plotly.graph_objects as go

    fig = go.Figure()
    styles = _styles(groups, styles)
    drew = False
    for label, records in groups:
        style = styles[label]
        if len(records) > 1:
            for r in records:
                if "val_acc" not in r.evals or "examples" not in r.evals:
                    continue
                fig.add_trace(go.Scatter(
                    x=_x(r.evals["examples"]), y=_y(r.evals["val_acc"]),
                    **_marked(len(r.evals["examples"]), style, size=3),
                    name=f"{text(label)} seed {r.seed}", legendgroup=label, showlegend=False,
                    opacity=0.45, line={"color": style.color, "width": 0.8},
                    hovertemplate=f"{text(label)}, seed {r.seed}<br>examples %{{x}}<br>"
                                  "val acc %{y:.4f}<extra></extra>"))
        drew = _banded(fig, records, "evals", "examples", "val_acc", label, style,
                       xname="examples") or drew
    if not drew:
        return None
    for t in thresholds:
        fig.add_hline(y=t, line={"color": "grey", "dash": "dot", "width": 1},
                      annotation_text=f"{t:.2f}", annotation_position="top right")
    _layout(fig, "validation accuracy (band: min–max over seeds; thin lines: each seed)", 480,
            xaxis_title="training examples seen", yaxis_title="validation accuracy")
    return fig


def _stacked(groups: Sequence[Group], panels: Sequence[tuple[str, str]], title: str, *,
             log: bool, ylabel: str, height_per: int = 230, styles: Styles = None):
    """One panel per (column, panel title) of metrics.csv against step, shared x; None when
    no group has any of the columns."""
    from plotly.subplots import make_subplots

    if not panels:
        return None
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[t for _, t in panels])
    styles = _styles(groups, styles)
    drew = False
    shown: set[str] = set()
    for i, (column, _) in enumerate(panels, start=1):
        for label, records in groups:
            if _banded(fig, records, "metrics", "step", column, label, styles[label], row=i,
                       col=1, legend=label not in shown):
                shown.add(label)
                drew = True
        # a fraction's axis starts at 0, not at an autoscaled -0.5
        fig.update_yaxes(title_text=ylabel, row=i, col=1,
                         **({"type": "log", "dtick": "D2"} if log else {"rangemode": "nonnegative"}))
    if not drew:
        return None
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    _layout(fig, title, 90 + height_per * len(panels))
    return fig


def training_loss(groups: Sequence[Group], styles: Styles = None):
    """Each loss's own training loss in its own panel (different quantities, different scales),
    x shared; log y, where a zero (hinge) is left out rather than drawn at a made-up floor."""
    from plotly.subplots import make_subplots

    labels = [(label, records) for label, records in groups
              if aligned(records, "metrics", "step", "loss") is not None]
    if not labels:
        return None
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[text(label) for label, _ in labels])
    styles = _styles(groups, styles)
    for i, (label, records) in enumerate(labels, start=1):
        _banded(fig, records, "metrics", "step", "loss", label, styles[label], row=i, col=1)
        fig.update_yaxes(title_text="loss (log)", type="log", dtick="D2", row=i, col=1)
    fig.update_xaxes(title_text="step", row=len(labels), col=1)
    _layout(fig, "training loss, each loss on its own scale (band: min–max over seeds)",
            90 + 200 * len(labels))
    return fig


def logit_grad(groups: Sequence[Group], styles: Styles = None):
    return _stacked(groups, [("logit_grad_norm", "mean ‖∂L/∂z‖ per example")],
                    "‖∂L/∂z‖: the signal the loss sends back through the logits (log)",
                    log=True, ylabel="‖∂L/∂z‖ (log)", height_per=380, styles=styles)


def grad_norms(groups: Sequence[Group], styles: Styles = None):
    params = grad_params(groups)
    return _stacked(groups, [(p, text(p.removeprefix("grad_norm/"))) for p in params],
                    "gradient L2 norm per layer (log; band: min–max over seeds)", log=True,
                    ylabel="norm (log)", styles=styles)


def saturation(groups: Sequence[Group], styles: Styles = None):
    """The saturated fractions of sigmoid outputs, for the losses that log them (mse, bce)."""
    present = [(c, t) for c, t in SATURATION
               if any(c in r.metrics for _, records in groups for r in records)]
    return _stacked(groups, present, "saturation of sigmoid outputs (losses that squash)",
                    log=False, ylabel="fraction", styles=styles)


def reliability(groups: Sequence[Group], styles: Styles = None):
    """Accuracy per confidence bin of the test set (pooled over seeds), one panel per group, with
    the diagonal of perfect calibration and the group's mean test ECE in its title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(label, records, pooled_reliability(records)) for label, records in groups]
    panels = [p for p in panels if p[2] is not None]
    if not panels:
        return None
    styles = _styles(groups, styles)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    titles = []
    for label, records, _ in panels:
        eces = [(r.summary.get("final") or {}).get("test_ece") for r in records]
        eces = [e for e in eces if isinstance(e, (int, float)) and math.isfinite(e)]
        ece = f"ECE {sum(eces) / len(eces):.4f}" if eces else "ECE —"
        titles.append(f"{text(label)}: {ece}" + (f", mean of {len(eces)}" if len(eces) > 1 else ""))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.15)
    for i, (label, _, (bins, count, conf, acc)) in enumerate(panels):
        where = {"row": i // ncols + 1, "col": i % ncols + 1}
        width = 1.0 / bins
        used = [m for m in range(bins) if count[m]]
        fig.add_trace(go.Bar(
            x=[(m + 0.5) * width for m in used], y=[acc[m] for m in used], width=width,
            marker={"color": styles[label].color, "line": {"color": "black", "width": 0.5}},
            opacity=0.75, name=text(label), legendgroup=label, showlegend=False,
            customdata=[[count[m], conf[m]] for m in used],
            hovertemplate=f"{text(label)}<br>bin %{{x:.3f}} ± {width / 2:.3f}<br>accuracy "
                          "%{y:.4f}<br>mean confidence %{customdata[1]:.4f}<br>examples "
                          "%{customdata[0]}<extra></extra>"), **where)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", showlegend=False,
                                 hoverinfo="skip", line={"color": "grey", "dash": "dash",
                                                         "width": 1}), **where)
        fig.update_xaxes(range=[0, 1], title_text="confidence", **where)
        fig.update_yaxes(range=[0, 1], title_text="accuracy" if where["col"] == 1 else None,
                         **where)
    _layout(fig, "reliability on the test set (pooled over seeds; dashed: perfect calibration)",
            110 + 300 * nrows)
    return fig


def sensitivity(tuning, styles: Styles = None) -> Any:
    """Validation score against the tuned key (log x), a line per loss; the chosen value ringed,
    a diverged or otherwise excluded value an x at the bottom with its reason on hover."""
    import plotly.graph_objects as go

    from ce_lab.comparison.tuning import fmt_value, key_name

    if tuning is None or not tuning.cells:
        return None
    fig = go.Figure()
    styles = styles_for([c.cell for c in tuning.cells], styles)
    values = sorted({v for c in tuning.cells for v in c.grid})
    name = key_name(tuning.key)
    for c in tuning.cells:
        style = styles[c.cell]
        xs = [v for v in c.grid if c.scores.get(v) is not None]
        fig.add_trace(go.Scatter(
            x=xs, y=[c.scores[v] for v in xs], mode="lines+markers", name=text(c.cell),
            legendgroup=c.cell, line={"color": style.color, "dash": _DASH[style.dash]},
            hovertemplate=f"{text(c.cell)}<br>{name} %{{x:g}}<br>score %{{y:.4f}}<extra></extra>"))
        if c.chosen_score is not None:
            fig.add_trace(go.Scatter(
                x=[c.chosen], y=[c.chosen_score], mode="markers", legendgroup=c.cell,
                showlegend=False, marker={"size": 16, "color": "rgba(0,0,0,0)",
                                          "line": {"color": style.color, "width": 2}},
                hovertemplate=f"{text(c.cell)}: chosen {name} {fmt_value(c.chosen)}"
                              + (" (edge of grid)" if c.at_edge else "") + "<extra></extra>"))
        if c.excluded:
            bad = list(c.excluded)
            fig.add_trace(go.Scatter(
                x=bad, y=[0.02] * len(bad), yaxis="y2", mode="markers", legendgroup=c.cell,
                showlegend=False, marker={"symbol": "x", "size": 10, "color": style.color},
                text=[text(c.excluded[v]) for v in bad],
                hovertemplate=f"{text(c.cell)}<br>{name} %{{x:g}}: %{{text}}<extra></extra>"))
    log = min(values) > 0
    fig.update_xaxes(type="log" if log else "linear", tickvals=values,
                     ticktext=[fmt_value(v) for v in values], title_text=name + (" (log)" if log else ""))
    _layout(fig, f"sensitivity to {name}: validation {tuning.criterion.column}, mean over tuning "
            "seeds (ringed: chosen; x at the bottom: diverged or excluded)", 460,
            yaxis_title=f"validation {tuning.criterion.column}",
            yaxis2={"overlaying": "y", "range": [0, 1], "visible": False})
    return fig


def all_figures(groups: Sequence[Group], thresholds: Sequence[float],
                tuning=None, styles: Styles = None) -> dict[str, Any]:
    """Section id -> figure (or None where the runs have no data for it), in page order."""
    return {  # how each rate was chosen first, as in report.md
        "sensitivity": sensitivity(tuning, styles),
        "val-acc": val_acc(groups, thresholds, styles),
        "training-loss": training_loss(groups, styles),
        "logit-grad": logit_grad(groups, styles),
        "grad-norms": grad_norms(groups, styles),
        "saturation": saturation(groups, styles),
        "reliability": reliability(groups, styles),
    }

