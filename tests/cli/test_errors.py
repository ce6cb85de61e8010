"""Small CLI faults: options whose falsy values slipped through the "was it given?" checks."""

from __future__ import annotations

import pytest

from ce_lab.cli.app import app
from tests.helpers import runner
from tests.run_factory import make_run


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--epochs", "3"], ["--lr", "0"],
                                    ["--max-steps", "0"], ["--batch-size", "0"]])
def test_compare_of_runs_on_disk_refuses_training_options_even_when_falsy(tmp_path, option):
    run = make_run(tmp_path / "runs")
    result = runner.invoke(app, ["compare", str(run), *option])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"{option[0]} only apply when compare trains" in lines[0]
