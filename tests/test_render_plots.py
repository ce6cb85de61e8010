"""The comparison's PNG plots (ce_lab/render/plots.py, plotting.py, and the tuning plots of
render/tuning.py): what each figure holds, checked on the matplotlib Figure the plot is built from,
and the files write_comparison writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from ce_lab.comparison.compare import write_comparison
from ce_lab.comparison.tuning import Criterion, select
from ce_lab.render import plots
from ce_lab.render import tuning as render_tuning
from ce_lab.render.plotting import looks, mark_every
from ce_lab.render.style import loss_styles
from ce_lab.runs.record import load_run
from tests.run_factory import make_run

LOSSES = ("ce", "nll-manual", "mse", "hinge")


def groups_of(out: Path, losses=LOSSES, seeds=(0,), **kw):
    return [(loss, [load_run(make_run(out, loss, s, **kw)) for s in seeds]) for loss in losses]


def with_reliability(record):
    """The run with a test reliability table in its summary (the factory writes none)."""
    path = Path(record.path) / "summary.json"
    summary = json.loads(path.read_text())
    summary["test_reliability"] = {"bins": 15, "count": [0] * 10 + [5, 10, 20, 40, 925],
                                   "confidence": [0.0] * 10 + [0.7, 0.75, 0.82, 0.88, 0.98],
                                   "accuracy": [0.0] * 10 + [0.6, 0.7, 0.8, 0.9, 0.99]}
    path.write_text(json.dumps(summary))
    return load_run(record.path)


def line_colors(fig) -> dict[str, set[str]]:
    """Each legend label's line colours over every axis of ``fig`` (labels '(mean of n)' cut)."""
    out: dict[str, set[str]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label().split(" (mean of")[0]
            if not label.startswith("_"):
                out.setdefault(label, set()).add(to_hex(line.get_color()))
    return out


def test_loss_png_has_one_panel_per_loss_on_a_shared_x_axis(tmp_path):
    groups = groups_of(tmp_path, seeds=(0, 1))
    fig = plots.figure_loss(groups)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(LOSSES)
    assert len(fig.axes) == len(LOSSES)  # no empty grid cell left over
    assert all(ax.get_yscale() == "log" for ax in panels)
    first = panels[0]
    assert all(first.get_shared_x_axes().joined(first, ax) for ax in panels[1:])
    # each panel holds its own loss's line only
    for ax, loss in zip(panels, LOSSES):
        assert {line.get_label() for line in ax.get_lines()} == {f"{loss} (mean of 2)"}
    assert plots.plot_loss(groups, tmp_path / "loss.png") == tmp_path / "loss.png"
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_three_losses_stack_in_one_column_and_odd_grids_keep_x_labels(tmp_path):
    fig = plots.figure_loss(groups_of(tmp_path, LOSSES[:3]))
    assert len(fig.axes) == 3 and {ax.get_subplotspec().colspan.start for ax in fig.axes} == {0}
    five = groups_of(tmp_path / "five", (*LOSSES, "mae"))
    fig = plots.figure_loss(five)
    assert len(fig.axes) == 5
    fig.draw_without_rendering()
    above_empty = fig.axes[3]  # row 2, column 2: nothing below it
    assert any(t.get_text() for t in above_empty.get_xticklabels() if t.get_visible())


def test_every_line_of_one_loss_has_one_colour_in_every_figure(tmp_path):
    groups = groups_of(tmp_path / "runs")
    styles = loss_styles(LOSSES)
    figures = [plots.figure_loss(groups, styles), plots.figure_val_acc(groups, [0.9], styles),
               plots.figure_grad_norms(groups, styles), plots.figure_logit_grad(groups, styles)]
    for fig in figures:
        colors = line_colors(fig)
        for loss in LOSSES:
            assert colors[loss] == {styles[loss].color}, (fig.axes[0].get_title(), loss)
    # the reliability bars too
    fig = plots.figure_reliability([(loss, [with_reliability(r) for r in records])
                                    for loss, records in groups], styles)
    assert len(fig.axes) == len(LOSSES)
    for ax, loss in zip(fig.axes, LOSSES):
        assert {to_hex(p.get_facecolor()[:3]) for p in ax.patches} == {styles[loss].color}


def test_identical_curves_differ_in_dash_and_markers_on_different_points(tmp_path):
    groups = groups_of(tmp_path, ("ce", "nll-manual"))  # the factory writes the same numbers
    fig = plots.figure_val_acc(groups, [])
    ce, nll = fig.axes[0].get_lines()[:2]
    assert list(ce.get_ydata()) == list(nll.get_ydata())
    assert ce.get_linestyle() != nll.get_linestyle()
    assert ce.get_marker() != nll.get_marker()
    first_ce, every_ce = ce.get_markevery()
    first_nll, every_nll = nll.get_markevery()
    n = len(ce.get_xdata())
    assert set(range(first_ce, n, every_ce)).isdisjoint(range(first_nll, n, every_nll))
    assert 2 <= len(range(first_ce, n, every_ce)) <= n // 2  # sparse, not on every point


@pytest.mark.parametrize("points", [2, 5, 12, 18, 86, 1000])
def test_markers_of_four_losses_never_share_a_point(points):
    lks = looks(list(LOSSES))
    marked = [set(range(*mark_every(points, lk)[:1], points)[::mark_every(points, lk)[1]])
              for lk in lks]
    for i in range(len(marked)):
        for j in range(i + 1, len(marked)):
            if points >= 2 * len(LOSSES):
                assert marked[i].isdisjoint(marked[j])
    assert all(marked)


def test_threshold_labels_sit_clear_of_the_legend(tmp_path):
    groups = groups_of(tmp_path, seeds=(0, 1))
    fig = plots.figure_val_acc(groups, [0.9, 0.95, 0.97])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the canvas the PNG is drawn on
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    every_axis = [a for ax in fig.axes for a in (ax, *ax.child_axes)]  # the right axis is a child
    labels = [t for ax in every_axis for t in ax.get_yticklabels()
              if t.get_text() in ("0.90", "0.95", "0.97") and t.get_visible()]
    assert sorted(t.get_text() for t in labels) == ["0.90", "0.95", "0.97"]
    for t in labels:
        assert not box.overlaps(t.get_window_extent(renderer)), t.get_text()
    for ax in fig.axes:  # and the legend covers no axes (no curve under it)
        assert not box.overlaps(ax.get_window_extent(renderer))


def test_a_legend_of_long_labels_stays_inside_its_figure(tmp_path):
    groups = [(f"{loss} optim.lr=0.316 data.label_noise=0.4", records)
              for loss, records in groups_of(tmp_path, seeds=(0, 1))]
    for fig in (plots.figure_val_acc(groups, [0.9]), plots.figure_logit_grad(groups)):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent(canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # not cut off at the sides


def test_two_groups_of_one_loss_on_one_axis_keep_its_hue_in_two_shades(tmp_path):
    groups = [(f"ce noise={n}", [load_run(make_run(tmp_path, "ce", 0, overrides={
        "data.label_noise": n}))]) for n in (0.0, 0.4)]
    a, b = looks([r[0].loss for _, r in groups])
    assert a.color == loss_styles(["ce"])["ce"].color and b.color != a.color
    assert a.dash == b.dash and a.marker == b.marker


def test_tuning_plots_one_panel_per_loss_at_its_chosen_rate_in_its_colour(tmp_path):
    runs = tmp_path / "runs"
    recs = []
    for loss, best in (("ce", 0.1), ("mse", 1.0), ("hinge", 0.1)):
        for lr in (0.1, 1.0):
            recs.append(load_run(make_run(runs, loss, 5, overrides={"optim.lr": lr},
                                          final_val_acc=0.97 if lr == best else 0.9)))
    t = select(recs, criterion=Criterion.final_val_acc)
    chosen = [r for r in recs if t.chosen()[r.loss] == r.config["optim"]["lr"]]
    comp = tmp_path / "comp"
    comp.mkdir()
    result = write_comparison(chosen, comp, tuning=t)
    assert comp / "val_acc_by_setting.png" in result.plots

    styles = loss_styles([r.loss for r in chosen])
    groups = [(r.loss, [r]) for r in chosen]
    panels = render_tuning.tuned_panels(groups, t)
    assert [title for title, _ in panels] == ["ce, lr=0.1 (tuned)", "mse, lr=1 (tuned)",
                                              "hinge, lr=0.1 (tuned)"]
    fig = plots.figure_val_acc_by_setting(panels, styles)
    assert len(fig.axes) == 3
    for ax, loss in zip(fig.axes, ("ce", "mse", "hinge")):
        (line,) = ax.get_lines()
        assert to_hex(line.get_color()) == styles[loss].color
    # the sensitivity plot draws each loss in the same colour and dash
    drawn = render_tuning.plot_sensitivity(t, tmp_path / "s.png", styles)
    assert drawn == tmp_path / "s.png"


def test_sensitivity_lines_take_the_comparison_styles(tmp_path, monkeypatch):
    recs = [load_run(make_run(tmp_path, loss, 5, overrides={"optim.lr": lr}))
            for loss in ("mse", "ce") for lr in (0.1, 1.0)]
    t = select(recs, criterion=Criterion.final_val_acc)
    styles = loss_styles(["ce", "mse"])  # ce first, though mse is the first cell
    figs = []
    import ce_lab.render.plotting as plotting

    monkeypatch.setattr(plotting, "save", lambda fig, path: figs.append(fig) or path)
    render_tuning.plot_sensitivity(t, tmp_path / "s.png", styles)
    (fig,) = figs
    colors = line_colors(fig)
    assert colors["ce"] == {styles["ce"].color} and colors["mse"] == {styles["mse"].color}
    # the factory's runs score alike: both losses chose 0.1 at one score, and both rings show
    rings = [line for line in fig.axes[0].get_lines() if line.get_markerfacecolor() == "none"]
    assert len(rings) == 2 and rings[0].get_xydata().tolist() == rings[1].get_xydata().tolist()
    assert rings[0].get_markersize() != rings[1].get_markersize()


def test_write_comparison_draws_every_figure_with_the_same_styles(tmp_path):
    runs = tmp_path / "runs"
    recs = [load_run(make_run(runs, loss, s)) for loss in ("mse", "ce") for s in (0, 1)]
    (tmp_path / "comp").mkdir()
    result = write_comparison(recs, tmp_path / "comp")
    assert sorted(p.name for p in result.plots) == [
        "grad_norms.png", "logit_grad.png", "loss.png", "val_acc.png"]  # no reliability table
    for p in result.plots:
        assert p.read_bytes()[:4] == b"\x89PNG"
