"""``ce-lab entropy | xent | saturation | stability``: the case for cross-entropy, computed.

Each command parses, calls ``ce_lab.theory``, and renders a table or JSON. In JSON, non-finite
numbers are the strings "inf", "-inf" and "nan" (never bare NaN/Infinity), so any parser reads it.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ce_lab.cli._common import cli_errors, console
from ce_lab.errors import UsageError

# Negative numbers must reach the validator (and its one-line message), not be taken for options.
NUMBERS_CONTEXT = {"ignore_unknown_options": True}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", show_default=False,
                 help='table or json (default table). JSON writes non-finite numbers as the '
                      'strings "inf", "-inf", "nan".'),
]
NormalizeOpt = Annotated[
    bool,
    typer.Option("--normalize", help="Divide the values by their sum instead of refusing values "
                 "that do not sum to 1 (default: refuse)."),
]
ToleranceOpt = Annotated[
    float,
    typer.Option("--tolerance", show_default=False,
                 help="How far from 1 a sum may be, in [0, 1) (default 1e-6)."),
]


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


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _table(title: str | None = None):
    """A compact table (light rules, no outer edge) so the wide ones fit 80 columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                 header_style="bold", title_justify="left", title_style="bold")


def _emit_json(payload: dict) -> None:
    from ce_lab.theory.jsonsafe import dumps

    typer.echo(dumps(payload))


def _check_tolerance(tolerance: float) -> None:
    # A tolerance of 1 or more would pass values that are no distribution (negative entropy).
    if not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance must lie in [0, 1), not {tolerance:g}")


# ---------------------------------------------------------------------------------------------
# entropy


@cli_errors
def entropy(
    values: Annotated[
        list[str],
        typer.Argument(metavar="P1 P2 ...", show_default=False,
                       help="The probabilities, e.g. 0.7 0.1 0.1 0.1 (also 0.7,0.1,0.1,0.1; "
                            "fractions such as 1/3 are accepted)."),
    ],
    normalize: NormalizeOpt = False,
    tolerance: ToleranceOpt = 1e-6,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Entropy H(p) = -Σ p_i log p_i in bits and nats, and the maximum for that many outcomes."""
    from ce_lab.theory.information import entropy_report, parse_values

    _check_tolerance(tolerance)
    for v in values:  # unknown options arrive here too, so that -0.1 is a (negative) value
        if v.startswith("--"):
            raise UsageError(f"no such option: {v}")
    r = entropy_report(parse_values(values, "entropy"), normalize=normalize,
                       tolerance=tolerance)
    if format_ is OutputFormat.json:
        _emit_json({
            "p": r.p, "outcomes": len(r.p), "input_sum": r.input_sum, "normalized": r.normalized,
            "entropy": {"bits": r.entropy_bits, "nats": r.entropy_nats},
            "max_entropy": {"bits": r.max_bits, "nats": r.max_nats},
            "fraction_of_max": r.entropy_nats / r.max_nats if r.max_nats else None,
        })
        return
    note = f"  (normalized: the values summed to {r.input_sum:.6g})" if r.normalized else ""
    _say(f"p = {_vector(r.p)}, {len(r.p)} outcomes{note}")
    table = _table()
    table.add_column("")
    table.add_column("bits", justify="right")
    table.add_column("nats", justify="right")
    table.add_row("H(p)", num(r.entropy_bits), num(r.entropy_nats))
    table.add_row(f"max: uniform over {len(r.p)}, log {len(r.p)}", num(r.max_bits),
                  num(r.max_nats))
    console.print(table)
    if r.max_nats:
        _say(f"H(p) is {100 * r.entropy_nats / r.max_nats:.1f}% of the maximum.")


# ---------------------------------------------------------------------------------------------
# xent


@cli_errors
def xent(
    p: Annotated[
        str | None,
        typer.Option("--p", metavar="P1,P2,...", show_default=False,
                     help="The true distribution p, comma-separated, e.g. --p 1,0,0 or "
                          "--p 0.7,0.1,0.1,0.1 (fractions such as 1/3 work)."),
    ] = None,
    q: Annotated[
        str | None,
        typer.Option("--q", metavar="Q1,Q2,...", show_default=False,
                     help="The predicted distribution q, same outcomes in the same order."),
    ] = None,
    binary: Annotated[
        tuple[str, str] | None,
        typer.Option("--binary", metavar="Y P", show_default=False,
                     help="Two classes instead: label Y (0 or 1, or a soft label in [0, 1]) and "
                          "predicted probability P of class 1; evaluates "
                          "-[Y log P + (1 - Y) log(1 - P)]."),
    ] = None,
    normalize: NormalizeOpt = False,
    tolerance: ToleranceOpt = 1e-6,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Cross-entropy H(p, q), entropy H(p) and KL(p || q), and the check H(p) + KL = H(p, q)."""
    from ce_lab.theory.information import (
        binary_report,
        parse_number,
        parse_values,
        xent_report,
    )

    _check_tolerance(tolerance)
    if binary is not None:
        if p is not None or q is not None:
            raise UsageError("give either --p and --q, or --binary Y P, not both")
        r = binary_report(parse_number(binary[0], "--binary Y"),
                          parse_number(binary[1], "--binary P"))
    else:
        if p is None or q is None:
            raise UsageError("give --p and --q (comma-separated probabilities), or --binary Y P")
        r = xent_report(parse_values([p], "--p"), parse_values([q], "--q"),
                        normalize=normalize, tolerance=tolerance)

    if format_ is OutputFormat.json:
        _emit_json({
            "p": r.p, "q": r.q,
            "nats": {"entropy": r.entropy_nats, "cross_entropy": r.cross_entropy_nats,
                     "kl": r.kl_nats},
            "bits": {"entropy": r.entropy_nats / math.log(2),
                     "cross_entropy": r.cross_entropy_nats / math.log(2),
                     "kl": r.kl_nats / math.log(2)},
            "identity_holds": r.identity_holds, "identity_gap": r.identity_gap,
            "one_hot": r.one_hot, "infinite_at": r.infinite_at,
            "binary": None if r.binary is None else
            {"y": r.binary[0], "p": r.binary[1], "loss_nats": r.binary[2]},
        })
        return
    if r.binary is not None:
        y, pb, loss = r.binary
        _say(f"two classes, label y = {y:g}, predicted P(class 1) = {pb:g}:")
        _say(f"  -[y ln p + (1 - y) ln(1 - p)] = {num(loss)} nats = {num(loss / math.log(2))} "
             "bits")
        _say(f"  as distributions over (class 1, class 0): p = {_vector(r.p)}, "
             f"q = {_vector(r.q)}")
    else:
        _say(f"p = {_vector(r.p)}")
        _say(f"q = {_vector(r.q)}")
    table = _table()
    table.add_column("")
    table.add_column("nats", justify="right")
    table.add_column("bits", justify="right")
    rows = [("H(p)", r.entropy_nats), ("H(p, q)", r.cross_entropy_nats),
            ("KL(p || q)", r.kl_nats), ("H(p) + KL(p || q)", r.entropy_nats + r.kl_nats)]
    for name, value in rows:
        table.add_row(name, num(value), num(value / math.log(2)))
    console.print(table)
    verdict = "holds" if r.identity_holds else "FAILS"
    _say(f"H(p) + KL(p || q) = H(p, q): {verdict} (difference {r.identity_gap:.1e} nats)")
    if r.infinite_at:
        where = ", ".join(str(i) for i in r.infinite_at)
        _say(f"infinite: q gives probability 0 to outcome {where}, which p gives positive "
             "probability; -log 0 = inf, so H(p, q) and KL(p || q) are infinite.")
    if r.one_hot:
        k = next(i for i, v in enumerate(r.p) if v > 0)
        _say(f"p is one-hot (all mass on outcome {k + 1}): H(p) = 0, so H(p, q) = KL(p || q) = "
             f"-ln q_{k + 1} = {num(r.cross_entropy_nats)}; minimising cross-entropy "
             "minimises the KL divergence.")


# ---------------------------------------------------------------------------------------------
# saturation


@cli_errors
def saturation(
    probs: Annotated[
        str | None,
        typer.Option("--probs", metavar="P1,P2,...", show_default=False,
                     help="Predicted probabilities of the true class for the table rows, "
                          "comma-separated, each in (0, 1) (default 0.001,0.01,0.05,0.1,...,"
                          "0.9,0.95,0.99,0.999)."),
    ] = None,
    hinge_margin: Annotated[
        float, typer.Option("--hinge-margin", show_default=False, help="The hinge margin m (default 1.0).")
    ] = 1.0,
    collapse: Annotated[
        float,
        typer.Option("--collapse", show_default=False,
                     help="Mark MSE's gradient as collapsed below this fraction of its maximum "
                          "(default 0.1)."),
    ] = 0.1,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", show_default=False,
                     help="PNG to write (default saturation.png; a suffix such as .svg or .pdf "
                          "picks that format)."),
    ] = Path("saturation.png"),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write the PNG.")] = False,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """|d loss / d logit| of one output unit against the predicted probability of the true class.

    One unit with logit z and p = sigmoid(z), true label 1; gradients by autograd (float64)
    through ce-lab's own losses: mse (on sigmoid), bce, ce (softmax over the logits 0 and z) and
    hinge (margin m on z). Marks where MSE + sigmoid's gradient collapses; writes a PNG plot.
    """
    from ce_lab.theory.information import parse_values
    from ce_lab.theory.saturation import DEFAULT_PROBS
    from ce_lab.theory.saturation import plot as plot_saturation
    from ce_lab.theory.saturation import saturation as compute

    if not (hinge_margin > 0 and math.isfinite(hinge_margin)):
        raise UsageError(f"--hinge-margin must be a positive finite number, not {hinge_margin:g}")
    if not 0 < collapse < 1:
        raise UsageError(f"--collapse must lie in (0, 1), not {collapse:g}")
    if not no_plot:
        output = _plot_path(output)
    grid = parse_values([probs], "--probs") if probs is not None else DEFAULT_PROBS
    r = compute(grid, hinge_margin=hinge_margin, collapse_fraction=collapse)
    plot_path = None if no_plot else plot_saturation(r, output)

    if format_ is OutputFormat.json:
        _emit_json({
            "setup": "one output unit, logit z, p = sigmoid(z), true label 1; |d loss / d z| by "
                     "autograd in float64. mse: (sigmoid(z) - 1)^2; bce: -ln sigmoid(z); ce: "
                     "softmax over logits (0, z); hinge: max(0, m - z)",
            "hinge_margin": r.hinge_margin,
            "rows": [
                {"p": p, "z": z, "sigmoid_prime": sp,
                 **{name: r.grads[name][i] for name in r.grads},
                 "mse_collapsed": r.collapsed(p)}
                for i, (p, z, sp) in enumerate(zip(r.probs, r.logits, r.sigmoid_prime,
                                                   strict=True))
            ],
            "mse_max": {"grad": r.mse_max, "p": r.mse_argmax},
            "collapse_fraction": r.collapse_fraction,
            "mse_collapsed_below_p": r.collapsed_below,
            "mse_collapsed_above_p": r.collapsed_above,
            "plot": None if plot_path is None else str(plot_path),
        })
        return
    _say("One output unit: logit z, predicted probability of the true class p = sigmoid(z), "
         "label 1. |d loss / d z| by autograd (float64) through ce-lab's losses:")
    _say("  mse   = (sigmoid(z) - 1)^2")
    _say("  bce   = -ln sigmoid(z)")
    _say("  ce    = cross-entropy of softmax over the two logits (0, z)")
    _say(f"  hinge = max(0, {r.hinge_margin:g} - z)")
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
    _say(f"mse's gradient peaks at {r.mse_max:.4f} (p = {r.mse_argmax:.3f}) and is below "
         f"{r.collapse_fraction:g} of that for p < {r.collapsed_below:.4f} (confidently wrong: "
         f"it learns slowest) and p > {r.collapsed_above:.4f} (already right). bce and ce give "
         "|p - y| = 1 - p.")
    if plot_path is not None:
        _say(f"wrote {plot_path}")


def _plot_path(output: Path) -> Path:
    """The file the plot really goes to: matplotlib adds .png to a name without a suffix."""
    if str(output).strip() in ("", ".") or output.name in ("", ".", ".."):
        raise UsageError(f"--output must name a file, not {str(output)!r}")
    if not output.suffix:
        return output.with_name(output.name + ".png")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if output.suffix[1:].lower() not in formats:
        raise UsageError(f"--output {output}: cannot write a {output.suffix} file; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return output


# ---------------------------------------------------------------------------------------------
# stability


@cli_errors
def stability(
    scales: Annotated[
        str | None,
        typer.Option("--scales", metavar="S1,S2,...", show_default=False,
                     help="Logit scales, comma-separated (default 1,10,50,100,200,500,1000). "
                          "The logits are scale * (1, 8/9, ..., 0), so the gap between the "
                          "largest and smallest logit equals the scale."),
    ] = None,
    format_: FormatOpt = OutputFormat.table,
) -> None:
    """Loss and gradient of five ways to compute cross-entropy, in float32 and float64.

    Each is checked against a float64 log_softmax reference on the same logits and marked where
    it turns inf, NaN, or wrong (off by more than 1e-6 + 1e-4 |reference|). The first failing
    scale of each is then located by bisection.
    """
    from ce_lab.theory import stability as st
    from ce_lab.theory.information import parse_values

    grid = parse_values([scales], "--scales") if scales is not None else st.DEFAULT_SCALES
    r = st.stability(grid)

    if format_ is OutputFormat.json:
        _emit_json({
            "classes": st.NUM_CLASSES, "pattern": list(st.PATTERN), "scales": r.scales,
            "targets": st.TARGETS,
            "tolerance": {"rtol": st.RTOL, "atol": st.ATOL},
            "pipelines": {p.key: {"computes": p.label, "registry_loss": p.registry}
                          for p in st.PIPELINES},
            "measurements": [{**m.__dict__, "status": m.status} for m in r.measurements],
            "onsets": [o.__dict__ for o in r.onsets],
            "exp_underflow_gap": r.exp_underflow_gap,
            "reciprocal_overflow_gap": r.reciprocal_overflow_gap,
            "double_softmax_floor": r.double_softmax_floor,
            "double_softmax_lowest": r.double_softmax_lowest,
            "log_softmax_idempotence_max_abs_diff": r.log_softmax_idempotence,
        })
        return
    _render_stability(r, st)


def _render_stability(r, st) -> None:
    def snum(x: float) -> str:
        if not math.isfinite(x) or x == 0:
            return num(x)
        return f"{x:.4g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"

    def cell(value: float, status: str) -> str:
        # The mark takes the place of a trailing space, so the digits stay aligned.
        return snum(value) + (" " if status == "ok" else "✗")

    _say(f"logits z = scale * (1, 8/9, ..., 1/9, 0) over {st.NUM_CLASSES} classes: the gap "
         "between the largest and smallest logit is the scale.")
    _say("✗ = inf, NaN, or finite but off the float64 reference -log_softmax(z)[y] (gradient "
         f"softmax(z) - onehot(y)) by more than {st.ATOL:g} + {st.RTOL:g}·|reference|.")
    for p in st.PIPELINES:
        reuse = f"  (ce-lab loss '{p.registry}')" if p.registry else ""
        _say(f"  {p.short:<7} {p.label}{reuse}")
    captions = {"max": "the largest logit (confident and right)",
                "min": "the smallest logit (confident and wrong)"}
    for target, cls in st.TARGETS.items():
        for quantity in ("loss", "grad"):
            what = "loss" if quantity == "loss" else "|d loss / d z|"
            console.print()
            _say(f"{what}, target = class {cls}, {captions[target]}")
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
                        cells = [cell(ms[k].loss, ms[k].loss_status) for k in ms]
                    else:
                        ref = first.ref_grad_norm
                        cells = [cell(ms[k].grad_norm, ms[k].grad_status) for k in ms]
                    table.add_row(f"{scale:g}", snum(ref) + " ", *cells)
            console.print(table)

    console.print()
    _say("where each first fails (bisected between the listed scales)")
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
    console.print(summary)
    _say(f"'ok ≤ {top}': fine at every scale tried. 'nan ≥ x': fine below scale x (= the logit "
         "gap), nan from x on; likewise wrong and inf.")

    e, rec = r.exp_underflow_gap, r.reciprocal_overflow_gap
    _say(f"Measured: exp(-g) underflows to 0 for g > {e['float32']:.3f} in float32 and "
         f"g > {e['float64']:.3f} in float64; 1/exp(-g) overflows to inf for g > "
         f"{rec['float32']:.3f} (float32) and {rec['float64']:.3f} (float64).")
    _say(f"Double softmax: floor log(1 + {st.NUM_CLASSES - 1}/e) = "
         f"{r.double_softmax_floor:.6f}; lowest loss measured {r.double_softmax_lowest:.6f}.")
    idem = r.log_softmax_idempotence
    _say("log_softmax is idempotent: max |log_softmax(log_softmax(z)) - log_softmax(z)| = "
         + ", ".join(f"{idem[d]:.1e} ({d})" for d in st.DTYPES) + ".")
