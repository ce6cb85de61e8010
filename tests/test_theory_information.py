"""Entropy, cross-entropy, KL and the binary formula against values written out in the test."""

from __future__ import annotations

import io
import json
import math

import pytest
from rich.console import Console

from ce_lab.errors import UsageError
from ce_lab.theory.information import (
    binary_report,
    entropy_report,
    parse_number,
    parse_values,
    xent_report,
)
from ce_lab.theory.jsonsafe import dumps
from ce_lab.theory.render import render_xent


def _json(report) -> dict:
    """The report as the commands print it with ``--format json``: strict JSON, no bare NaN."""
    def reject(token):
        raise AssertionError(f"bare {token} in JSON")

    return json.loads(dumps(report.to_dict()), parse_constant=reject)


# --- entropy -----------------------------------------------------------------------------------


def test_entropy_of_the_issue_examples():
    uniform = entropy_report([0.25] * 4)
    assert uniform.entropy_bits == pytest.approx(2.0, abs=1e-12)
    skewed = entropy_report([0.7, 0.1, 0.1, 0.1])
    expected_bits = -(0.7 * math.log2(0.7) + 3 * 0.1 * math.log2(0.1))  # 1.3568 bits
    assert skewed.entropy_bits == pytest.approx(expected_bits, rel=1e-12)
    assert skewed.entropy_nats == pytest.approx(expected_bits * math.log(2), rel=1e-12)
    near_one = entropy_report([0.999, 0.001 / 3, 0.001 / 3, 0.001 / 3])
    assert near_one.entropy_bits < 0.02
    assert uniform.entropy_bits > skewed.entropy_bits > near_one.entropy_bits


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_entropy_maximum_is_log_n_and_reached_by_the_uniform(n):
    r = entropy_report([1 / n] * n)
    assert r.max_bits == pytest.approx(math.log2(n), abs=1e-12)
    assert r.max_nats == pytest.approx(math.log(n), abs=1e-12)
    assert r.entropy_nats == pytest.approx(math.log(n), abs=1e-12)


# --- cross-entropy and KL ----------------------------------------------------------------------

PAIRS = [
    ([0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]),
    ([0.2, 0.3, 0.5], [0.6, 0.3, 0.1]),
    ([0.5, 0.5, 0.0], [0.1, 0.2, 0.7]),
]


@pytest.mark.parametrize(("p", "q"), PAIRS)
def test_cross_entropy_decomposes_into_entropy_plus_kl(p, q):
    r = xent_report(p, q)
    h = -sum(pi * math.log(pi) for pi in p if pi)
    xent = -sum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True) if pi)
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi)
    assert r.entropy_nats == pytest.approx(h, rel=1e-12)
    assert r.cross_entropy_nats == pytest.approx(xent, rel=1e-12)
    assert r.kl_nats == pytest.approx(kl, rel=1e-12, abs=1e-15)
    assert r.entropy_nats + r.kl_nats == pytest.approx(r.cross_entropy_nats, rel=1e-12)
    assert r.identity_holds


def test_one_hot_labels_make_cross_entropy_the_kl_divergence():
    r = xent_report([0, 1, 0], [0.2, 0.5, 0.3])
    assert r.entropy_nats == 0
    assert r.cross_entropy_nats == pytest.approx(-math.log(0.5), rel=1e-12)
    assert r.kl_nats == pytest.approx(r.cross_entropy_nats, rel=1e-12)
    assert r.one_hot


def test_zero_in_q_where_p_is_zero_is_harmless():
    r = xent_report([1, 0], [0.9, 0.1])
    assert math.isfinite(r.cross_entropy_nats)
    r = xent_report([0.5, 0.5, 0], [0.5, 0.5, 0])
    assert r.kl_nats == 0


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [
        (1, 0.4, -math.log(0.4)),  # correct but unsure: about 0.92 nats
        (1, 0.98, -math.log(0.98)),  # confident and correct: about 0.02
        (0, 0.3, -math.log(0.7)),
        (0.3, 0.6, -(0.3 * math.log(0.6) + 0.7 * math.log(0.4))),  # a soft label
    ],
)
def test_binary_formula(y, p, expected):
    r = binary_report(y, p)
    assert r.binary[2] == pytest.approx(expected, rel=1e-12)
    assert r.cross_entropy_nats == pytest.approx(expected, rel=1e-12)  # the general formula agrees


def test_entropy_json_and_normalize():
    data = _json(entropy_report(parse_values(["1", "1", "2"], "P"), normalize=True))
    assert data["p"] == [0.25, 0.25, 0.5]
    assert data["normalized"] is True
    assert data["entropy"]["bits"] == pytest.approx(1.5, abs=1e-12)
    assert data["max_entropy"]["bits"] == pytest.approx(math.log2(3), abs=1e-12)


def test_entropy_accepts_fractions_and_comma_lists():
    data = _json(entropy_report(parse_values(["1/3,1/3", "1/3"], "P")))
    assert data["entropy"]["nats"] == pytest.approx(math.log(3), abs=1e-12)


def test_entropy_refuses_negative_values():
    with pytest.raises(UsageError, match="negative"):
        entropy_report(parse_values(["-0.1", "1.1"], "P"))


def test_entropy_refuses_a_wrong_sum_unless_normalized():
    with pytest.raises(UsageError, match=r"0\.9, not 1 .*--normalize"):
        entropy_report([0.5, 0.4])
    assert entropy_report([0.5, 0.4], normalize=True).p == pytest.approx([5 / 9, 4 / 9])


def test_binary_matches_the_issue_numbers_and_prints_them_in_nats():
    unsure, sure = binary_report(1, 0.4), binary_report(1, 0.98)
    assert _json(unsure)["binary"]["loss_nats"] == pytest.approx(0.916291, abs=1e-6)
    assert _json(sure)["binary"]["loss_nats"] == pytest.approx(0.020203, abs=1e-6)
    out = io.StringIO()
    render_xent(unsure, Console(file=out, width=200, color_system=None))
    assert "0.9163 nats" in out.getvalue()


def test_xent_refuses_mismatched_lengths():
    with pytest.raises(UsageError, match="--p has 2 values but --q has 3"):
        xent_report([1, 0], [0.5, 0.25, 0.25])


def test_xent_refuses_negative_values_wrong_sums_and_non_numbers():
    with pytest.raises(UsageError, match="negative"):
        xent_report([-0.5, 1.5], [0.5, 0.5])
    with pytest.raises(UsageError, match=r"--q: .*1\.1"):
        xent_report([0.5, 0.5], [0.5, 0.6])
    with pytest.raises(UsageError, match="not a number"):
        parse_values(["a,b"], "--p")
    with pytest.raises(UsageError, match="not a number"):
        parse_number("x", "--binary P")
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        binary_report(1, 1.5)


def test_xent_normalize_rescales_both():
    data = _json(xent_report([1, 1], [1, 3], normalize=True))
    assert data["q"] == [0.25, 0.75]
    assert data["nats"]["cross_entropy"] == pytest.approx(
        -(0.5 * math.log(0.25) + 0.5 * math.log(0.75)), rel=1e-12)
