"""Entropy, cross-entropy, KL and the binary formula against values written out in the test."""

from __future__ import annotations

import json
import math

import pytest

from ce_lab.cli.app import app
from ce_lab.theory.information import (
    binary_report,
    entropy_report,
    xent_report,
)
from tests.helpers import runner


def _json(result) -> dict:
    assert result.exit_code == 0, result.stdout + result.stderr

    def reject(token):
        raise AssertionError(f"bare {token} in JSON")

    return json.loads(result.stdout, parse_constant=reject)


def _refused(result, *needles: str) -> str:
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


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


def test_entropy_cli_prints_bits_nats_and_maximum():
    result = runner.invoke(app, ["entropy", "0.7", "0.1", "0.1", "0.1"])
    assert result.exit_code == 0, result.stderr
    assert "1.3568" in result.stdout and "0.9404" in result.stdout  # H(p): bits, nats
    assert "2.0000" in result.stdout and "1.3863" in result.stdout  # max: log 4


def test_entropy_json_and_normalize():
    data = _json(runner.invoke(app, ["entropy", "1", "1", "2", "--normalize", "--format", "json"]))
    assert data["p"] == [0.25, 0.25, 0.5]
    assert data["normalized"] is True
    assert data["entropy"]["bits"] == pytest.approx(1.5, abs=1e-12)
    assert data["max_entropy"]["bits"] == pytest.approx(math.log2(3), abs=1e-12)


def test_entropy_accepts_fractions_and_comma_lists():
    data = _json(runner.invoke(app, ["entropy", "1/3,1/3", "1/3", "-f", "json"]))
    assert data["entropy"]["nats"] == pytest.approx(math.log(3), abs=1e-12)


def test_entropy_refuses_negative_values():
    _refused(runner.invoke(app, ["entropy", "-0.1", "1.1"]), "negative")


def test_entropy_refuses_a_wrong_sum_unless_normalized():
    line = _refused(runner.invoke(app, ["entropy", "0.5", "0.4"]), "0.9", "--normalize")
    assert "not 1" in line


def test_entropy_refuses_non_numbers_and_unknown_options():
    _refused(runner.invoke(app, ["entropy", "0.5", "half"]), "'half' is not a number")
    _refused(runner.invoke(app, ["entropy", "0.5", "0.5", "--fromat", "json"]), "no such option")
    _refused(runner.invoke(app, ["entropy", "nan", "1"]), "not a finite number")


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


def test_zero_in_q_where_p_is_positive_is_infinite_and_said_plainly():
    result = runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "1,0"])
    assert result.exit_code == 0, result.stderr
    assert "inf" in result.stdout
    assert "probability 0 to outcome 2" in result.stdout
    data = _json(runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "1,0", "-f", "json"]))
    assert data["nats"]["cross_entropy"] == "inf"
    assert data["nats"]["kl"] == "inf"
    assert data["infinite_at"] == [2]


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


def test_binary_cli_matches_the_issue_numbers():
    unsure = _json(runner.invoke(app, ["xent", "--binary", "1", "0.4", "-f", "json"]))
    sure = _json(runner.invoke(app, ["xent", "--binary", "1", "0.98", "-f", "json"]))
    assert unsure["binary"]["loss_nats"] == pytest.approx(0.916291, abs=1e-6)
    assert sure["binary"]["loss_nats"] == pytest.approx(0.020203, abs=1e-6)
    table = runner.invoke(app, ["xent", "--binary", "1", "0.4"])
    assert "0.9163 nats" in table.stdout


def test_xent_cli_prints_the_identity_check():
    result = runner.invoke(app, ["xent", "--p", "0.7,0.1,0.1,0.1", "--q", "0.25,0.25,0.25,0.25"])
    assert result.exit_code == 0, result.stderr
    assert "H(p) + KL(p || q) = H(p, q): holds" in result.stdout
    assert "0.4458" in result.stdout  # KL in nats: 2 bits - 1.3568 bits, times ln 2


def test_xent_refuses_mismatched_lengths():
    _refused(runner.invoke(app, ["xent", "--p", "1,0", "--q", "0.5,0.25,0.25"]),
             "--p has 2 values but --q has 3")


def test_xent_refuses_negative_values_wrong_sums_and_non_numbers():
    _refused(runner.invoke(app, ["xent", "--p", "-0.5,1.5", "--q", "0.5,0.5"]), "negative")
    _refused(runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "0.5,0.6"]), "--q", "1.1")
    _refused(runner.invoke(app, ["xent", "--p", "a,b", "--q", "0.5,0.5"]), "not a number")
    _refused(runner.invoke(app, ["xent", "--binary", "1", "x"]), "not a number")
    _refused(runner.invoke(app, ["xent", "--binary", "1", "1.5"]), "[0, 1]")


def test_xent_normalize_rescales_both():
    data = _json(runner.invoke(app, ["xent", "--p", "1,1", "--q", "1,3", "--normalize",
                                     "-f", "json"]))
    assert data["q"] == [0.25, 0.75]
    assert data["nats"]["cross_entropy"] == pytest.approx(
        -(0.5 * math.log(0.25) + 0.5 * math.log(0.75)), rel=1e-12)


def test_xent_needs_p_and_q_or_binary():
    _refused(runner.invoke(app, ["xent", "--p", "1,0"]), "--binary")
    _refused(runner.invoke(app, ["xent", "--p", "1,0", "--q", "1,0", "--binary", "1", "0.5"]),
             "not both")
