"""``ce-lab compare`` and report.html: the page's path is the last line compare prints (stdout
beside the table, stderr when stdout carries csv or json), ``--no-html`` writes no page and says
nothing of it, and everything else compare prints is as it was. The page itself is tested in
tests/test_report_html.py."""

from __future__ import annotations

import re
from pathlib import Path

from ce_lab.cli.app import app
from tests.helpers import headless_dom, only_batch_dir, runner, tiny_args, tiny_base, write_batch
from tests.run_factory import make_run


def two_runs(root: Path) -> list[str]:
    return [str(make_run(root, loss, 0, steps=100)) for loss in ("ce", "mse")]


def test_the_page_path_is_the_last_line(tmp_path):
    result = runner.invoke(app, ["compare", *two_runs(tmp_path / "runs"), "--no-plots"])
    assert result.exit_code == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("report.html: ")
    page = Path(last.removeprefix("report.html: "))
    assert page.is_file() and page.parent.name.startswith("compare-")
    assert (page.parent / "report.md").is_file()
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_no_html_writes_no_page_and_prints_the_rest_unchanged(tmp_path):
    runs = two_runs(tmp_path / "runs")
    with_page = runner.invoke(app, ["compare", *runs, "--no-plots"])
    without = runner.invoke(app, ["compare", *runs, "--no-plots", "--no-html"])
    assert without.exit_code == 0, without.stderr
    assert "report.html" not in without.stdout + without.stderr
    assert len(list((tmp_path / "runs").glob("compare-*"))) == 2
    assert len(list((tmp_path / "runs").glob("compare-*/report.html"))) == 1  # the first's

    def same(text: str) -> list[str]:
        return [line.split("compare-")[0] for line in text.splitlines()]
    assert same(with_page.stdout)[:-1] == same(without.stdout)


def test_with_csv_on_stdout_the_path_is_the_last_stderr_line(tmp_path):
    result = runner.invoke(app, ["compare", *two_runs(tmp_path / "runs"), "--no-plots",
                                 "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    assert "report.html" not in result.stdout  # a pipe gets clean csv
    assert result.stderr.splitlines()[-1].startswith("report.html: ")


def test_a_trained_three_seed_comparison_renders_every_section(tiny_mnist, tmp_path):
    """The issue's "done when": a 3-seed compare writes a page that renders in headless Chromium
    with every section."""
    out = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--losses", "ce,mse", "--seeds", "0,1,2",
                                 "--no-plots", *tiny_args(tiny_mnist, out)])
    assert result.exit_code == 0, result.stderr
    page = Path(result.stdout.splitlines()[-1].removeprefix("report.html: "))
    text = page.read_text(encoding="utf-8")
    sections = ("val-acc", "training-loss", "logit-grad", "grad-norms", "saturation",
                "reliability", "tables", "configs", "runs")
    assert all(f'<section id="{s}">' in text for s in sections)
    assert "Every loss shares lr" in text and "seeds 0, 1, 2" in text
    dom, console = headless_dom(page, tmp_path / "profile")
    assert console == [], console
    assert dom.count('class="plot-container plotly"') == 6


def test_a_batch_writes_its_page_beside_its_report_md(tiny_mnist, tmp_path):
    f = write_batch(tmp_path / "b.yaml", {
        "name": "page", "base": tiny_base(tiny_mnist), "grid": {"loss.name": ["ce", "mse"]},
        "seeds": [0]})
    result = runner.invoke(app, ["batch", str(f), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "report.html" not in result.stdout  # the batch's output is as it was
    batch_dir = only_batch_dir(Path("runs"))
    page = (batch_dir / "report.html").read_text(encoding="utf-8")
    assert (batch_dir / "report.md").is_file()
    assert "<h1>ce-lab batch " in page and "2 losses (<code>ce</code>, <code>mse</code>)" in page
    hrefs = re.findall(r'href="([^"#]+)"', page.split('<section id="runs">')[1])
    assert len(hrefs) == 2 and all((batch_dir / h / "summary.json").is_file() for h in hrefs)
