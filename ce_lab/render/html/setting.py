"""The paragraph at the top of report.html: what was compared, under which setting.

It says the losses, the learning rates and whether they were tuned (an untuned comparison says
that every loss shared one rate, which mostly measures how well that rate suits each loss, and
points to --tune-lr), the seeds, the training length and the data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ce_lab.comparison.build import show
from ce_lab.config import flatten
from ce_lab.runs.record import RunRecord


def _values(flats: Sequence[dict], key: str) -> list:
    return list(dict.fromkeys(show(f.get(key)) for f in flats))


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _code(s: object) -> str:
    return f"<code>{escape(str(s))}</code>"


def rates(records: Sequence[RunRecord], tuning) -> str:
    from ce_lab.comparison.tuning import LR_KEY, fmt_value, key_name, shared_rate_line

    if tuning is not None and tuning.key == LR_KEY:
        chosen = ", ".join(f"{_code(c.cell)} {escape(fmt_value(c.chosen))}"
                           + (" (edge of the grid)" if c.at_edge else "") for c in tuning.cells)
        seeds = ", ".join(str(s) for s in tuning.seeds) or "unknown"
        return (f"Each loss at its own learning rate, chosen on the validation split "
                f"(by {escape(tuning.criterion.value)}, on seed(s) {escape(seeds)}): {chosen}.")
    if tuning is not None:
        chosen = ", ".join(f"{_code(c.cell)} {escape(fmt_value(c.chosen))}" for c in tuning.cells)
        return f"Each loss at its own best {escape(key_name(tuning.key))}: {chosen}."
    by_loss: dict[str, list[str]] = {}
    for r in records:
        by_loss.setdefault(r.loss, [])
        lr = show(flatten(r.config).get(LR_KEY))
        if lr not in by_loss[r.loss]:
            by_loss[r.loss].append(lr)
    # The console's and report.md's sentence, so the three say the same thing.
    line = shared_rate_line(flatten(r.config).get(LR_KEY) for r in records)
    if line is not None:
        return escape(line[0].upper() + line[1:]) + " (not tuned by this comparison)."
    per = ", ".join(f"{_code(loss)} {escape(' / '.join(lrs))}" for loss, lrs in by_loss.items())
    return f"Learning rates, as set (not tuned by this comparison): {per}."


def _length(flats: Sequence[dict]) -> str:
    epochs = _values(flats, "train.epochs")
    steps = [s for s in _values(flats, "train.max_steps") if s != "None"]
    text = f"{_and(epochs)} epoch{'s' if epochs != ['1'] else ''}"
    if steps:
        text += f" (at most {_and(steps)} steps)"
    return text


def _data(flats: Sequence[dict], records: Sequence[RunRecord]) -> str:
    # The data set's name where the config holds one; every run so far trains on MNIST.
    names = [n for n in _values(flats, "data.dataset") + _values(flats, "data.name") if n != "None"]
    text = escape(_and(names)) if names else "MNIST"
    details = []
    sizes = [s for s in _values(flats, "data.train_size") if s != "None"]
    if sizes:
        details.append(f"training subset of {escape(_and(sizes))} images")
    val = _values(flats, "data.val_size")
    if val and val != ["None"]:
        details.append(f"{escape(_and(val))} held out for validation")
    noise = [n for n in _values(flats, "data.label_noise") if n not in ("0.0", "0", "None")]
    if noise:
        kinds = _values(flats, "data.label_noise_kind")
        details.append(f"label noise {escape(_and(noise))} ({escape(_and(kinds))})")
    return text + (f" ({'; '.join(details)})" if details else "")


def setting_paragraph(records: Sequence[RunRecord], tuning) -> str:
    flats = [flatten(r.config) for r in records]
    losses = list(dict.fromkeys(r.loss for r in records))
    seeds = sorted({r.seed for r in records if r.seed is not None})
    optim = _values(flats, "optim.name")
    return (
        f"<p class=\"setting\">{len(losses)} loss{'es' if len(losses) != 1 else ''} "
        f"({', '.join(_code(x) for x in losses)}), {len(records)} runs, "
        f"seed{'s' if len(seeds) != 1 else ''} {escape(', '.join(map(str, seeds)) or 'unknown')}; "
        f"trained for {escape(_length(flats))} on {_data(flats, records)} with "
        f"{escape(_and(optim))}. {rates(records, tuning)}</p>"
    )
