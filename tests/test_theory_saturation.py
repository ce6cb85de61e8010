"""Gradients of one output unit against their closed forms; the collapse mark; the PNG."""

from __future__ import annotations

import json
import math

import pytest

from ce_lab.cli.app import app
from ce_lab.theory.saturation import logit_gradients, saturation
from tests.helpers import runner

PROBS = [1e-4, 0.001, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.75, 0.9, 0.99, 0.999]


def test_autograd_gradients_match_the_closed_forms():
    g = logit_gradients(PROBS, hinge_margin=1.0)
    for i, p in enumerate(PROBS):
        z = math.log(p / (1 - p))
        assert g["sigmoid_prime"][i] == pytest.approx(p * (1 - p), rel=1e-9)  # sigma(1 - sigma)
        # d/dz (sigma - 1)^2 = 2 (sigma - 1) sigma (1 - sigma)
        assert g["mse"][i] == pytest.approx(2 * (1 - p) * p * (1 - p), rel=1e-9)
        assert g["bce"][i] == pytest.approx(abs(p - 1), rel=1e-9)  # |p - y|, y = 1
        assert g["ce"][i] == pytest.approx(abs(p - 1), rel=1e-9)
        assert g["hinge"][i] == (1.0 if z < 1.0 else 0.0)


def test_hinge_margin_moves_the_step():
    g = logit_gradients([0.8, 0.9], hinge_margin=2.0)  # z = 1.39, 2.20
    assert g["hinge"] == [1.0, 0.0]


def test_mse_collapse_is_marked_where_its_gradient_is_below_a_tenth_of_its_peak():
    r = saturation([0.001, 0.01, 0.05, 0.5, 0.9, 0.99])
    peak = 8 / 27  # max of 2p(1-p)^2, at p = 1/3
    assert r.mse_max == pytest.approx(peak, rel=1e-4)
    assert r.mse_argmax == pytest.approx(1 / 3, abs=0.01)
    for edge in (r.collapsed_below, r.collapsed_above):
        assert 2 * edge * (1 - edge) ** 2 == pytest.approx(0.1 * r.mse_max, rel=1e-6)
    assert r.collapsed_below < 1 / 3 < r.collapsed_above
    assert r.collapsed(0.001) and r.collapsed(0.01) and not r.collapsed(0.05)
    assert not r.collapsed(0.5) and r.collapsed(0.99)
    # where MSE has collapsed on the wrong side, cross-entropy pushes almost at full strength
    i = r.probs.index(0.001)
    assert r.grads["bce"][i] > 400 * r.grads["mse"][i]


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
