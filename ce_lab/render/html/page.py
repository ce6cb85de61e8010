"""report.html as one page: the setting, the figures, the tables, the configs and the runs.

plotly.js is inlined once in the head; every figure after it is a <div> and a script that calls
it. The style sheet and the sorting script are inlined too: the page loads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from ce_lab.comparison.build import ComparisonTable
from ce_lab.comparison.paired import PairedDiff
from ce_lab.render.html import figures, setting, tables

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 0 1.5em 3em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-top: 1em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
nav a { margin-right: 1em; }
p.setting { background: #f6f8fa; border-left: 4px solid #1f77b4; padding: .7em 1em; }
p.one-seed { background: #fff8e1; border-left: 4px solid #ff7f0e; padding: .5em 1em; }
p.note { color: #555; font-size: .9em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; vertical-align: top; }
th { background: #f0f3f6; cursor: pointer; user-select: none; }
th[data-dir="asc"]::after { content: " ▲"; }
th[data-dir="desc"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
code { background: #f0f3f6; padding: 0 .2em; border-radius: 3px; }
"""

# Sorts a table.sortable by the clicked column: numbers by the number a cell starts with
# ("0.9712 ± 0.0012", "+0.0040"), cells without one ("not reached", "—") last either way.
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var i = Array.prototype.indexOf.call(th.parentNode.children, th);
    var num = th.classList.contains("num"), asc = th.getAttribute("data-dir") !== "asc";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", asc ? "asc" : "desc");
    function key(r) {
      var t = r.cells[i].textContent.trim();
      if (!num) return t;
      var v = parseFloat(t);
      return isNaN(v) ? null : v;
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = num ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

SECTIONS = {  # section id -> heading and what it shows
    "sensitivity": ("Learning-rate sensitivity", ""),
    "val-acc": ("Validation accuracy", ""),
    "training-loss": ("Training loss", "Each loss's value is its own quantity on its own scale, "
                      "so each has its own panel; the step axis is shared."),
    "logit-grad": ("Gradient at the logits", "The mean norm of ∂L/∂z per example: how strongly "
                   "the loss pushes the logits."),
    "grad-norms": ("Gradient norms per layer", ""),
    "saturation": ("Saturation", "Logged by the losses that pass the logits through a sigmoid."),
    "reliability": ("Reliability", ""),
}


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _tuning(tuning) -> str:
    from ce_lab.comparison.tuning import fmt_value, key_name

    name = key_name(tuning.key)
    rows = [[[c.cell], [fmt_value(c.chosen) + (" (edge of grid)" if c.at_edge else "")],
             ["—" if c.chosen_score is None else f"{c.chosen_score:.4f}"],
             [", ".join(f"{fmt_value(v)}: {why}" for v, why in c.excluded.items()) or "—"]]
            for c in tuning.cells]
    out = tables.sortable([["loss"], [f"chosen {name}"], [tuning.criterion.column], ["excluded"]],
                          rows, [False, True, True, False])
    out += "".join(f'<p class="note">warning: {escape(w)}</p>' for w in tuning.warnings())
    if tuning.eval_seeds is None:
        out += ('<p class="note">The comparison reads the same runs the choice was made on, so '
                "its validation numbers are optimistic for the chosen rates; test accuracy is "
                "not.</p>")
    return out


def render_page(title: str, table: ComparisonTable, diffs: Sequence[PairedDiff],
                reference: str | None, skipped: Sequence[str], comp_dir: Path,
                tuning=None, styles=None) -> str:
    records = [r for row in table.rows for r in row.records]
    groups = [(row.label, row.records) for row in table.rows]
    figs = figures.all_figures(groups, table.thresholds, tuning, styles)
    body: list[str] = [f"<h1>{escape(title)}</h1>", setting.setting_paragraph(records, tuning)]
    shown = [k for k, f in figs.items() if f is not None]
    nav = [(k, SECTIONS[k][0]) for k in shown] + [("tables", "Tables"), ("configs", "Configs"),
                                                   ("runs", "Runs")]
    body.append("<nav>" + "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in nav) + "</nav>")
    for key in shown:
        heading, about = SECTIONS[key]
        body.append(f'<section id="{key}"><h2>{escape(heading)}</h2>')
        if about:
            body.append(f'<p class="note">{escape(about)}</p>')
        if key == "sensitivity":
            body.append(_tuning(tuning))
        body.append(figures.fragment(figs[key]) + "</section>")
    body.append('<section id="tables"><h2>Tables</h2>'
                '<p class="note">Click a column\'s header to sort by it.</p>')
    body.append(tables.main_tables(table))
    body.append(tables.paired_table(diffs, reference, records) + "</section>")
    body.append('<section id="configs"><h2>Configs that differ between the runs</h2>'
                + tables.configs_table(records, comp_dir) + "</section>")
    body.append('<section id="runs"><h2>Runs</h2><p class="note">Links open each run\'s folder '
                "(config.yaml, metrics.csv, eval.csv, summary.json).</p>"
                + tables.runs_list(table, comp_dir) + "</section>")
    if skipped:
        body.append('<section id="skipped"><h2>Skipped</h2>' + tables.skipped_list(skipped)
                    + "</section>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{CSS}</style>",
        f'<script type="text/javascript">{_plotly_js()}</script>', "</head><body>",
        *body, f"<script>{SORT_JS}</script>", "</body></html>", ""])
