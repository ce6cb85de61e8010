"""The theory commands (entropy, xent, saturation, stability) end to end: what each prints, its
JSON, the plot it writes, and bad input as one line with exit code 2. The numbers themselves are
tested on ce_lab.theory in tests/test_theory_*.py."""

from __future__ import annotations

import json

import pytest

from ce_lab.cli.app import app
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


def test_entropy_cli_prints_bits_nats_and_maximum():
    result = runner.invoke(app, ["entropy", "0.7", "0.1", "0.1", "0.1"])
    assert result.exit_code == 0, result.stderr
    assert "1.3568" in result.stdout and "0.9404" in result.stdout  # H(p): bits, nats
    assert "2.0000" in result.stdout and "1.3863" in result.stdout  # max: log 4


def test_entropy_refuses_non_numbers_and_unknown_options():
    _refused(runner.invoke(app, ["entropy", "0.5", "half"]), "'half' is not a number")
    _refused(runner.invoke(app, ["entropy", "0.5", "0.5", "--fromat", "json"]), "no such option")
    _refused(runner.invoke(app, ["entropy", "nan", "1"]), "not a finite number")


def test_zero_in_q_where_p_is_positive_is_infinite_and_said_plainly():
    result = runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "1,0"])
    assert result.exit_code == 0, result.stderr
    assert "inf" in result.stdout
    assert "probability 0 to outcome 2" in result.stdout
    data = _json(runner.invoke(app, ["xent", "--p", "0.5,0.5", "--q", "1,0", "-f", "json"]))
    assert data["nats"]["cross_entropy"] == "inf"
    assert data["nats"]["kl"] == "inf"
    assert data["infinite_at"] == [2]


def test_xent_cli_prints_the_identity_check():
    result = runner.invoke(app, ["xent", "--p", "0.7,0.1,0.1,0.1", "--q", "0.25,0.25,0.25,0.25"])
    assert result.exit_code == 0, result.stderr
    assert "H(p) + KL(p || q) = H(p, q): holds" in result.stdout
    assert "0.4458" in result.stdout  # KL in nats: 2 bits - 1.3568 bits, times ln 2


def test_xent_needs_p_and_q_or_binary():
    _refused(runner.invoke(app, ["xent", "--p", "1,0"]), "--binary")
    _refused(runner.invoke(app, ["xent", "--p", "1,0", "--q", "1,0", "--binary", "1", "0.5"]),
             "not both")


def test_cli_writes_the_png_and_prints_the_table(tmp_path):
    out = tmp_path / "plots" / "sat.png"
    result = runner.invoke(app, ["saturation", "--output", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in result.stdout
    assert "COLLAPSED (wrong)" in result.stdout
    assert "0.9990" in result.stdout  # bce at p = 0.001


def test_cli_json_rows_and_no_plot(tmp_path):
    result = runner.invoke(app, ["saturation", "--no-plot", "--probs", "0.001,0.5", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["plot"] is None
    assert not list(tmp_path.glob("*.png"))
    rows = {row["p"]: row for row in data["rows"]}
    assert rows[0.5]["mse"] == pytest.approx(0.25, rel=1e-9)
    assert rows[0.001]["mse_collapsed"] is True and rows[0.5]["mse_collapsed"] is False


def test_cli_refuses_probabilities_outside_the_open_interval():
    result = runner.invoke(app, ["saturation", "--no-plot", "--probs", "0,0.5"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "strictly between 0 and 1" in result.stderr


def test_cli_default_plot_goes_to_the_current_folder_and_says_so(tmp_path):
    # tmp_path is the cwd: the default --output is ./saturation.png, and the output names it
    result = runner.invoke(app, ["saturation"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "saturation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.rstrip().splitlines()[-1] == "wrote saturation.png"
    data = json.loads(runner.invoke(app, ["saturation", "-f", "json", "-o", "s.svg"]).stdout)
    assert data["plot"] == "s.svg" and (tmp_path / "s.svg").is_file()


def test_cli_refuses_bad_scales():
    result = runner.invoke(app, ["stability", "--scales", "1,-5"])
    assert result.exit_code == 2 and "not positive" in result.stderr
