"""The theory reports as text and rich tables: what ``ce-lab entropy | xent | saturation |
stability`` print in their default table format. Each renderer takes a report and the console
to print on; the data itself (and its JSON form, ``to_dict``) lives with the report.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ce_lab.theory import stability as st
from ce_lab.theory.information import LN2, EntropyReport, XentReport
from ce_lab.theory.saturation import SaturationReport


def num(x: float, digits: int = 4) -> str:
    """A number for a table: fixed decimals in the everyday range, otherwise scientific."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}f}"
    return f"{x:.{digits - 1}e}"


def _vector(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _table(title: str | None = None) -> Table:
    """A compact table (light rules, no outer edge) so the wide ones fit 80 columns."""
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                 header_style="bold", title_justify="left", title_style="bold")


def render_entropy(r: EntropyReport, console: Console) -> None:
    note = f"  (normalized: the values summed to {r.input_sum:.6g})" if r.normalized else ""
    _say(console, f"p = {_vector(r.p)}, {len(r.p)} outcomes{note}")
    table = _table()
    table.add_column("")
    table.add_column("bits", justify="right")
    table.add_column("nats", justify="right")
    table.add_row("H(p)", num(r.entropy_bits), num(r.entropy_nats))
    table.add_row(f"max: uniform over {len(r.p)}, log {len(r.p)}", num(r.max_bits),
                  num(r.max_nats))
    console.print(table)
    if r.max_nats:
        _say(console, f"H(p) is {100 * r.entropy_nats / r.max_nats:.1f}% of the maximum.")


def render_xent(r: XentReport, console: Console) -> None:
    if r.binary is not None:
        y, pb, loss = r.binary
        _say(console, f"two classes, label y = {y:g}, predicted P(class 1) = {pb:g}:")
        _say(console, f"  -[y ln p + (1 - y) ln(1 - p)] = {num(loss)} nats = {num(loss / LN2)} "
             "bits")
        _say(console, f"  as distributions over (class 1, class 0): p = {_vector(r.p)}, "
             f"q = {_vector(r.q)}")
    else:
        _say(console, f"p = {_vector(r.p)}")
        _say(console, f"q = {_vector(r.q)}")
    table = _table()
    table.add_column("")
    table.add_column("nats", justify="right")
    table.add_column("bits", justify="right")
    rows = [("H(p)", r.entropy_nats), ("H(p, q)", r.cross_entropy_nats),
            ("KL(p || q)", r.kl_nats), ("H(p) + KL(p || q)", r.entropy_nats + r.kl_nats)]
    for name, value in rows:
        table.add_row(name, num(value), num(value / LN2))
    console.print(table)
    verdict = "holds" if r.identity_holds else "FAILS"
    _say(console, f"H(p) + KL(p || q) = H(p, q): {verdict} (difference {r.identity_gap:.1e} nats)")
    if r.infinite_at:
        where = ", ".join(str(i) for i in r.infinite_at)
        _say(console, f"infinite: q gives probability 0 to outcome {where}, which p gives positive "
             "probability; -log 0 = inf, so H(p, q) and KL(p || q) are infinite.")
    if r.one_hot:
        k = next(i for i, v in enumerate(r.p) if v > 0)
        _say(console, f"p is one-hot (all mass on outcome {k + 1}): H(p) = 0, so H(p, q) = "
             f"KL(p || q) = -ln q_{k + 1} = {num(r.cross_entropy_nats)}; minimising "
             "cross-entropy minimises the KL divergence.")


def render_saturation(r: SaturationReport, console: Console, plot_path: Path | None) -> None:
    _say(console, "One output unit: logit z, predicted probability of the true class p = "
         "sigmoid(z), label 1. |d loss / d z| by autograd (float64) through ce-lab's losses:")
    _say(console, "  mse   = (sigmoid(z) - 1)^2")
    _say(console, "  bce   = -ln sigmoid(z)")
    _say(console, "  ce    = cross-entropy of softmax over the two logits (0, z)")
    _say(console, f"  hinge = max(0, {r.hinge_margin:g} - z)")
    table = _table()
    for header in ("p", "z", "σ'(z)", "mse", "bce", "ce", "hinge", "mse gradient"):
        table.add_column(header, justify="left" if header == "mse gradient" else "right")
    for i, (p, z, sp) in enumerate(zip(r.probs, r.logits, r.sigmoid_prime, strict=True)):
        if p < r.collapsed_below:
            regime = "COLLAPSED (wrong)"
        elif p > r.collapsed_above:
            regime = "small (right)"
        else:
            regime = ""
        table.add_row(f"{p:g}", f"{z:.3f}", num(sp), *(num(r.grads[n][i]) for n in r.grads),
                      regime)
    console.print(table)
    _say(console, f"mse's gradient peaks at {r.mse_max:.4f} (p = {r.mse_argmax:.3f}) and is "
         f"below {r.collapse_fraction:g} of that for p < {r.collapsed_below:.4f} (confidently "
         f"wrong: it learns slowest) and p > {r.collapsed_above:.4f} (already right). bce and ce "
         "give |p - y| = 1 - p.")
    if plot_path is not None:
        _say(console, f"wrote {plot_path}")


def _snum(x: float) -> str:
    if not math.isfinite(x) or x == 0:
        return num(x)
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _cell(value: float, status: str) -> str:
    # The mark takes the place of a trailing space, so the digits stay aligned.
    return _snum(value) + (" " if status == "ok" else "✗")


def render_stability(r: st.StabilityReport, console: Console) -> None:
    _say(console, f"logits z = scale * (1, 8/9, ..., 1/9, 0) over {st.NUM_CLASSES} classes: the "
         "gap between the largest and smallest logit is the scale.")
    _say(console, "✗ = inf, NaN, or finite but off the float64 reference -log_softmax(z)[y] "
         f"(gradient softmax(z) - onehot(y)) by more than {st.ATOL:g} + {st.RTOL:g}·|reference|.")
    for p in st.PIPELINES:
        reuse = f"  (ce-lab loss '{p.registry}')" if p.registry else ""
        _say(console, f"  {p.short:<7} {p.label}{reuse}")
    captions = {"max": "the largest logit (confident and right)",
                "min": "the smallest logit (confident and wrong)"}
    for target, cls in st.TARGETS.items():
        for quantity in ("loss", "grad"):
            what = "loss" if quantity == "loss" else "|d loss / d z|"
            console.print()
            _say(console, f"{what}, target = class {cls}, {captions[target]}")
            console.print(_measurements_table(r, target, quantity))

    console.print()
    _say(console, "where each first fails (bisected between the listed scales)")
    console.print(_onsets_table(r))
    top = f"{r.scales[-1]:g}"
    _say(console, f"'ok ≤ {top}': fine at every scale tried. 'nan ≥ x': fine below scale x (= the "
         "logit gap), nan from x on; likewise wrong and inf.")

    e, rec = r.exp_underflow_gap, r.reciprocal_overflow_gap
    _say(console, f"Measured: exp(-g) underflows to 0 for g > {e['float32']:.3f} in float32 and "
         f"g > {e['float64']:.3f} in float64; 1/exp(-g) overflows to inf for g > "
         f"{rec['float32']:.3f} (float32) and {rec['float64']:.3f} (float64).")
    _say(console, f"Double softmax: floor log(1 + {st.NUM_CLASSES - 1}/e) = "
         f"{r.double_softmax_floor:.6f}; lowest loss measured {r.double_softmax_lowest:.6f}.")
    idem = r.log_softmax_idempotence
    _say(console, "log_softmax is idempotent: max |log_softmax(log_softmax(z)) - log_softmax(z)| "
         "= " + ", ".join(f"{idem[d]:.1e} ({d})" for d in st.DTYPES) + ".")


def _measurements_table(r: st.StabilityReport, target: str, quantity: str) -> Table:
    """Loss (or gradient norm) of every pipeline at every scale, per dtype, for one target."""
    table = _table()
    table.add_column("scale", justify="right")
    table.add_column("reference", justify="right")
    for p in st.PIPELINES:
        table.add_column(p.short, justify="right")
    for dtype in st.DTYPES:
        table.add_row(dtype, style="bold")
        for scale in r.scales:
            ms = {m.pipeline: m for m in r.measurements
                  if m.target == target and m.dtype == dtype and m.scale == scale}
            first = next(iter(ms.values()))
            if quantity == "loss":
                ref = first.ref_loss
                cells = [_cell(ms[k].loss, ms[k].loss_status) for k in ms]
            else:
                ref = first.ref_grad_norm
                cells = [_cell(ms[k].grad_norm, ms[k].grad_status) for k in ms]
            table.add_row(f"{scale:g}", _snum(ref) + " ", *cells)
    return table


def _onsets_table(r: st.StabilityReport) -> Table:
    """Where each pipeline first fails, per dtype and target."""
    summary = _table()
    summary.add_column("")
    combos = [(d, t) for d in st.DTYPES for t in st.TARGETS]
    for dtype, target in combos:
        summary.add_column(f"{dtype}\ntarget {target}", justify="right")
    top = f"{r.scales[-1]:g}"
    for p in st.PIPELINES:
        cells = []
        for dtype, target in combos:
            o = next(o for o in r.onsets
                     if o.pipeline == p.key and o.dtype == dtype and o.target == target)
            if o.first_failing_scale is None:
                cells.append(f"ok ≤ {top}")
            elif o.fails_from_start:
                cells.append(f"{o.status} ≥ {o.first_failing_scale:g}")
            else:
                cells.append(f"{o.status} ≥ {o.onset_scale:.2f}")
        summary.add_row(p.short, *cells)
    return summary
