"""report.md: the comparison as one Markdown page that GitHub renders (tables and images)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ce_lab.calibration import rule
from ce_lab.comparison.build import ComparisonTable, config_value, show
from ce_lab.comparison.paired import PairedDiff
from ce_lab.comparison.tuning import shared_rate_line
from ce_lab.config import flatten
from ce_lab.render.cells import resolution_text
from ce_lab.render.markdown import to_markdown
from ce_lab.runs.read import is_integer
from ce_lab.runs.record import RunRecord

# Settings worth stating at the top of a report, when all runs share them.
KEY_SETTINGS = (
    "model.hidden", "model.activation", "model.init", "model.init_gain", "model.output_gain",
    "data.name", "data.train_size", "data.label_noise", "data.label_noise_kind", "data.val_noise",
    "optim.name",
    "optim.lr",
    "optim.momentum", "schedule.name", "train.epochs", "train.max_steps", "train.batch_size",
    "data.val_size", "log.eval_every", "device",
)
# Stated only where they are not their default (older runs lack them): a gain of 1, no noise,
# MNIST, the default split (null: a twelfth of the set).
UNLESS_DEFAULT = {"model.init_gain": 1.0, "model.output_gain": 1.0, "data.train_size": None,
                  "data.label_noise": 0.0, "data.name": "mnist", "data.val_size": None,
                  "data.val_noise": False}


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def _reading_notes(table: ComparisonTable, records: Sequence[RunRecord]) -> list[str]:
    """How to read the numbers: what a missing one means, resolutions, the AUC's definition."""
    out = ["A threshold shown as “not reached” was never reached; it has no number. “not measured”: "
           "the runs have no validation split (data.val_size=0). “diverged at step k (quantity)” "
           "and “stalled”: the member's numbers are not results of training; it is left out of "
           "every paired difference.", ""]
    quantised = [c.metric.metric for c in table.metric_columns if c.metric.metric.resolution]
    if quantised:
        key = quantised[0].resolution
        values = " or ".join(dict.fromkeys(show(config_value(r, key)) for r in records))
        out += [f"Resolution of steps to a threshold: {resolution_text(records, quantised[0])} — "
                f"validation accuracy is evaluated every {key} = {values} steps and at each epoch "
                "end, so a step count is known to that interval, and so is a paired difference "
                "of two of them.", ""]
    out += ["val acc AUC: the trapezoid-rule area under validation accuracy against examples seen, "
            "from the first evaluation to the last, divided by the examples spanned (a mean "
            "accuracy in [0, 1]).", ""]
    if any((r.summary.get("final") or {}).get("test_ece") is not None for r in records):
        out += [f"The {rule(r.loss for r in records)} (README, “Calibration”).", ""]
    return out
def _noise(meta) -> str:
    """", 1000/5000 training labels changed (symmetric)" where data.label_noise changed any
    (meta.json's ``label_noise``; older runs lack it)."""
    noise = meta.get("label_noise")
    changed = noise.get("changed") if isinstance(noise, dict) else None
    if not is_integer(changed) or changed <= 0:
        return ""
    val = noise.get("val")  # data.val_noise: the validation labels' count too
    also = (f" and {val.get('changed', '?')}/{val.get('n_val', '?')} validation labels"
            if isinstance(val, dict) else "")
    return (f", {noise['changed']}/{noise.get('n_train', '?')} training labels{also} changed "
            f"({noise.get('kind', '?')})")


def render_report(
    title: str,
    table: ComparisonTable,
    diffs: Sequence[PairedDiff],
    reference: str | None,
    plots: Sequence[Path],
    skipped: Sequence[str],
    comp_dir: Path,
    tuning_section: str | None = None,
) -> str:
    records = [r for row in table.rows for r in row.records]
    losses = list(dict.fromkeys(r.loss for r in records))
    seeds = sorted({r.seed for r in records if r.seed is not None})
    flats = [flatten(r.config) for r in records]
    shared = [
        (k, flats[0].get(k)) for k in KEY_SETTINGS
        if flats and all(f.get(k) == flats[0].get(k) for f in flats)
        and not (k in UNLESS_DEFAULT and flats[0].get(k) in (None, UNLESS_DEFAULT[k]))
        and not (k == "data.label_noise_kind" and not flats[0].get("data.label_noise"))
    ]

    out = [f"# {title}", ""]
    out.append(f"- losses: {', '.join(f'`{x}`' for x in losses)}")
    out.append(f"- seeds: {', '.join(str(s) for s in seeds) or 'unknown'}; {len(records)} runs")
    if shared:
        out.append("- shared settings: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shared))
    if table.config_keys:
        out.append("- differing settings: " + ", ".join(f"`{k}`" for k in table.config_keys))
    if reference:
        out.append(f"- reference loss for paired differences: `{reference}`")
    shared_rate = None if tuning_section else shared_rate_line(
        config_value(r, "optim.lr") for r in records)
    if shared_rate:
        out.append(f"- learning rate: {shared_rate}")
    out.append("")
    if tuning_section:
        out.append(tuning_section)  # how each loss's rate was chosen comes before the results
    out += ["## Results", "", to_markdown(table, diffs, reference)]
    if not diffs and reference is None:
        out.append("No paired differences: no reference loss among the runs.\n")
    out += _reading_notes(table, records)
    if plots:
        out += ["## Plots", ""]
        for p in plots:
            rel = Path(p).relative_to(comp_dir) if Path(p).is_relative_to(comp_dir) else Path(p)
            out += [f"![{rel.stem}]({rel.as_posix()})", ""]
    out += ["## Runs", ""]
    for row in table.rows:
        for r in row.records:
            out.append(f"- `{r.run_id}` ({r.loss}, seed {r.seed}, {r.status}{_noise(r.meta)}): "
                       f"`{r.path}`")
    out.append("")
    if skipped:
        out += ["## Skipped", ""]
        out += [f"- {s}" for s in skipped]
        out.append("")
    return "\n".join(out)
