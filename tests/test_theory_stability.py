"""Where each cross-entropy pipeline fails, against thresholds derived from the float formats."""

from __future__ import annotations

import io
import json
import math

import pytest
from rich.console import Console

from ce_lab.theory import stability as st
from ce_lab.theory.jsonsafe import dumps
from ce_lab.theory.render import render_stability

LN2 = math.log(2)
# exp(-g) rounds to 0 below half the smallest subnormal (2^-150 in float32, 2^-1075 in float64);
# 1/p overflows once p < 2^-128 (float32) or 2^-1024 (float64).
UNDERFLOW = {"float32": 150 * LN2, "float64": 1075 * LN2}  # 103.972, 745.133
RECIPROCAL_OVERFLOW = {"float32": 128 * LN2, "float64": 1024 * LN2}  # 88.723, 709.783


@pytest.fixture(scope="module")
def report() -> st.StabilityReport:
    return st.stability()


def _onset(report, pipeline, dtype, target) -> st.Onset:
    return next(o for o in report.onsets
                if (o.pipeline, o.dtype, o.target) == (pipeline, dtype, target))


def _row(report, pipeline, dtype, target, scale) -> st.Measurement:
    return next(m for m in report.measurements
                if (m.pipeline, m.dtype, m.target, m.scale) == (pipeline, dtype, target, scale))


@pytest.mark.parametrize("dtype", st.DTYPES)
def test_manual_pipeline_fails_where_the_float_format_says(report, dtype):
    # Target at the max: a non-target probability underflows to 0; the loss stays finite but
    # log's backward divides 0 by 0, so the gradient is NaN.
    at_max = _onset(report, "softmax_log_nll", dtype, "max")
    assert at_max.status == "nan"
    assert at_max.onset_scale == pytest.approx(UNDERFLOW[dtype], abs=0.01)
    # Target at the min: its probability is still a (subnormal) number, but 1/p overflows first.
    at_min = _onset(report, "softmax_log_nll", dtype, "min")
    assert at_min.status == "nan"
    assert at_min.onset_scale == pytest.approx(RECIPROCAL_OVERFLOW[dtype], abs=0.01)


def test_measured_underflow_and_overflow_gaps(report):
    for dtype in st.DTYPES:
        assert report.exp_underflow_gap[dtype] == pytest.approx(UNDERFLOW[dtype], abs=1e-3)
        assert report.reciprocal_overflow_gap[dtype] == pytest.approx(
            RECIPROCAL_OVERFLOW[dtype], abs=1e-3)


def test_manual_pipeline_past_the_threshold(report):
    right = _row(report, "softmax_log_nll", "float32", "max", 200.0)
    assert math.isfinite(right.loss) and math.isnan(right.grad_norm)
    wrong = _row(report, "softmax_log_nll", "float32", "min", 200.0)
    assert wrong.loss == math.inf and wrong.status == "nan"
    assert _row(report, "softmax_log_nll", "float64", "min", 500.0).status == "ok"


@pytest.mark.parametrize("pipeline", ["cross_entropy", "log_softmax_nll", "log_softmax_into_ce"])
def test_stable_pipelines_never_fail(report, pipeline):
    for dtype in st.DTYPES:
        for target in st.TARGETS:
            assert _onset(report, pipeline, dtype, target).first_failing_scale is None


def test_double_softmax_has_a_floor_and_shrunken_gradients(report):
    floor = math.log(1 + 9 / math.e)  # probabilities (1, 0, ..., 0) through softmax again
    assert floor == pytest.approx(1.4612, abs=1e-4)
    assert report.double_softmax_floor == pytest.approx(floor, rel=1e-12)
    assert report.double_softmax_lowest >= floor - 1e-6
    confident = _row(report, "softmax_into_ce", "float64", "max", 1000.0)
    assert confident.loss == pytest.approx(floor, abs=1e-9)
    assert confident.ref_loss < 1e-40  # the real loss is ~0
    assert _row(report, "softmax_into_ce", "float64", "min", 1000.0).loss == pytest.approx(
        math.log(math.e + 9), abs=1e-9)
    small = _row(report, "softmax_into_ce", "float64", "max", 1.0)
    assert small.status == "wrong" and small.grad_norm < 0.2 * small.ref_grad_norm
    assert all(_onset(report, "softmax_into_ce", d, t).fails_from_start
               for d in st.DTYPES for t in st.TARGETS)


def test_log_softmax_is_idempotent(report):
    assert all(v <= 1e-4 for v in report.log_softmax_idempotence.values())


def test_cross_entropy_against_an_independent_closed_form():
    fn = st._loss_functions()["cross_entropy"]
    m = st.measure(fn, "cross_entropy", "float64", "min", 10.0)
    z = [10.0 * v for v in st.PATTERN]
    total = sum(math.exp(v) for v in z)
    probs = [math.exp(v) / total for v in z]
    assert m.loss == pytest.approx(-math.log(probs[-1]), rel=1e-12)
    grad = [p - (1.0 if i == len(z) - 1 else 0.0) for i, p in enumerate(probs)]
    assert m.grad_norm == pytest.approx(math.sqrt(sum(g * g for g in grad)), rel=1e-12)


def test_json_is_valid_and_spells_non_finite_values():
    def reject(token):
        raise AssertionError(f"bare {token} in JSON")

    data = json.loads(dumps(st.stability([1, 200]).to_dict()), parse_constant=reject)
    manual = [m for m in data["measurements"]
              if m["pipeline"] == "softmax_log_nll" and m["dtype"] == "float32" and m["scale"] == 200]
    assert {m["target"]: m["loss"] for m in manual}["min"] == "inf"
    assert all(m["grad_norm"] == "nan" for m in manual)


def test_table_marks_failures():
    out = io.StringIO()
    render_stability(st.stability([1, 200]), Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "nan✗" in text and "inf✗" in text
    assert "nan ≥ 103.97" in text and "nan ≥ 88.72" in text
