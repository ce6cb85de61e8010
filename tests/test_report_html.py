"""report.html (ce_lab/render/html/): written beside report.md by every comparison, self-contained
(no network, no server), under ~5 MB for 4 losses x 3 seeds, with every section, escaped names
from disk, the one-seed wording, and — where a headless Chromium is installed — rendered without
a console error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ce_lab.comparison.compare import write_comparison
from ce_lab.render.cells import PAIRED_TITLE
from ce_lab.render.html.tables import ONE_SEED
from ce_lab.runs.record import load_run
from tests.helpers import headless_dom
from tests.run_factory import make_run

LOSSES = ("ce", "mse", "hinge", "nll-manual")
FIGURES = ("val-acc", "training-loss", "logit-grad", "grad-norms", "saturation", "reliability")
STEPS = 2600  # ~3 epochs of MNIST at batch 64, logged every 10 steps: the default run's length


def add_reliability(run: Path, shift: float) -> Path:
    """A 3-bin test reliability table and ECE in summary.json, as a completed run writes them."""
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary["test_reliability"] = {"bins": 3, "count": [10, 30, 60],
                                   "confidence": [0.2, 0.5, 0.9],
                                   "accuracy": [0.1 + shift, 0.5, 0.95 - shift]}
    summary["final"]["test_ece"] = 0.05 + shift
    path.write_text(json.dumps(summary))
    return run


def comparison(root: Path, seeds=(0, 1, 2), losses=LOSSES, steps=STEPS, **kw):
    records = [load_run(add_reliability(make_run(root, loss, s, steps=steps,
                                                 final_val_acc=0.95 + 0.005 * i - 0.001 * s,
                                                 grad_early=0.5 + 0.1 * s), 0.01 * i))
               for i, loss in enumerate(losses) for s in seeds]
    comp = root / "compare-test"
    comp.mkdir()
    return write_comparison(records, comp, plots=False, **kw)


def outside_scripts(page: str) -> str:
    return re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", page, flags=re.S)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    return comparison(tmp_path_factory.mktemp("html"))


def test_written_beside_report_md_and_listed(three_seeds):
    page = three_seeds.comp_dir / "report.html"
    assert three_seeds.files["report.html"] == page and page.is_file()
    listed = json.loads((three_seeds.comp_dir / "comparison.json").read_text())["files"]
    assert "report.html" in listed and "report.md" in listed


def test_self_contained_and_under_5_mb(three_seeds):
    from plotly.offline import get_plotlyjs

    page = (three_seeds.comp_dir / "report.html").read_text(encoding="utf-8")
    html = outside_scripts(page)
    assert "<link" not in html  # no style sheet fetched
    assert not re.search(r"<script\b[^>]*\bsrc=", page)  # every script inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert page.count(get_plotlyjs()) == 1  # plotly.js once, not per figure
    size = len(page.encode("utf-8"))
    # plotly.js is ~4.8 MB of the page; 4 losses x 3 seeds of ~2600 steps add the rest.
    assert size - len(get_plotlyjs().encode("utf-8")) < 500_000, size
    assert size < 5.5e6, size


def test_every_section_and_the_setting(three_seeds):
    page = (three_seeds.comp_dir / "report.html").read_text(encoding="utf-8")
    for key in (*FIGURES, "tables", "configs", "runs"):
        assert f'<section id="{key}">' in page, key
    assert page.count('class="plotly-graph-div"') == len(FIGURES)
    assert '<section id="sensitivity">' not in page  # not tuned: no sensitivity curves
    setting = re.search(r'<p class="setting">(.*?)</p>', page, re.S).group(1)
    assert "4 losses" in setting and "12 runs" in setting and "seeds 0, 1, 2" in setting
    # The console's and report.md's sentence (comparison/tuning.py shared_rate_line), word for word.
    assert "Every loss shares lr 0.1, which suits some losses more than others" in setting
    assert "(not tuned by this comparison)" in setting
    assert "ce-lab compare --tune-lr" in setting and "3 epochs" in setting
    for loss in LOSSES:  # a legend entry per loss, in every curve
        assert f'"name":"{loss} (mean of 3)"' in page
    # The tables: the shown ones, and the paired one with its verdicts, sortable.
    assert "accuracy and convergence" in page and f"{PAIRED_TITLE}: loss − ce" in page
    assert page.count('<table class="sortable">') >= 5 and "verdict" in page
    assert "th.addEventListener(\"click\"" in page


def test_run_links_are_relative_and_lead_to_the_runs(three_seeds):
    page = (three_seeds.comp_dir / "report.html").read_text(encoding="utf-8")
    runs = re.search(r'<section id="runs">(.*?)</section>', page, re.S).group(1)
    hrefs = re.findall(r'href="([^"]+)"', runs)
    assert len(hrefs) == 12
    for href in hrefs:
        assert href.startswith("../") and (three_seeds.comp_dir / href / "config.yaml").is_file()
    configs = re.search(r'<section id="configs">(.*?)</section>', page, re.S).group(1)
    assert "loss.name" in configs and "seed" in configs and "optim.lr" not in configs


def test_one_seed_says_intervals_need_two(tmp_path):
    result = comparison(tmp_path, seeds=(0,), losses=("ce", "mse"), steps=200)
    page = (tmp_path / "compare-test" / "report.html").read_text(encoding="utf-8")
    assert ONE_SEED in page and "at least two seeds" in ONE_SEED
    assert PAIRED_TITLE not in page
    assert result.diffs  # the comparison computed them; the page does not show n=1 rows


def test_html_false_writes_no_page(tmp_path):
    result = comparison(tmp_path, seeds=(0,), losses=("ce",), steps=100, html=False)
    assert "report.html" not in result.files
    assert not (tmp_path / "compare-test" / "report.html").exists()


def test_names_from_disk_are_escaped(tmp_path):
    hostile = '</script><img src=x onerror="alert(1)">'
    runs = []
    for loss in ("ce", "mse"):
        run = make_run(tmp_path, loss, 0, steps=100, name=f"run-{loss}-<b>&")
        meta = json.loads((run / "meta.json").read_text())
        meta["run_id"] = f"{hostile}{loss}"
        (run / "meta.json").write_text(json.dumps(meta))
        runs.append(run)
    summary = json.loads((runs[1] / "summary.json").read_text())
    summary["loss"] = hostile  # the loss label the table and the curves use
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    comp = tmp_path / "compare-test"
    comp.mkdir()
    write_comparison([load_run(r) for r in runs], comp, plots=False)
    page = (comp / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and 'onerror="' not in page
    assert page.count("</script>") == page.count("<script")  # none closed early by a name
    assert "&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;ce" in page
    assert "run-ce-%3Cb%3E%26/" in page  # the folder's link, percent-encoded


def test_tuned_comparison_draws_sensitivity_and_says_tuned(tmp_path):
    from ce_lab.comparison.tuning import Criterion
    from ce_lab.lab.tuning import best_of

    records = [load_run(make_run(tmp_path, loss, s, steps=100, overrides={"optim.lr": lr},
                                 final_val_acc=0.9 + lr / 10))
               for loss in ("ce", "mse") for lr in (0.1, 0.3, 1.0) for s in (0, 1)]
    comp = tmp_path / "compare-test"
    comp.mkdir()
    best_of(records, comp, criterion=Criterion.final_val_acc, plots=False)
    page = (comp / "report.html").read_text(encoding="utf-8")
    assert '<section id="sensitivity">' in page and "chosen lr" in page
    setting = re.search(r'<p class="setting">(.*?)</p>', page, re.S).group(1)
    assert "its own learning rate, chosen on the validation split (by final-val-acc" in setting
    assert "not tuned" not in setting
    assert all(f"<code>{loss}</code> 1 (edge of the grid)" in setting for loss in ("ce", "mse"))


def test_renders_in_headless_chromium_without_console_errors(three_seeds, tmp_path):
    dom, console = headless_dom(three_seeds.comp_dir / "report.html", tmp_path / "profile")
    assert console == [], console  # the page writes no console message when it renders
    # plotly draws each figure into a plot-container with its main-svg layers after rendering
    assert dom.count('class="plot-container plotly"') == len(FIGURES), dom[:500]
    assert dom.count('class="main-svg"') >= 2 * len(FIGURES)
    assert "ce (mean of 3)" in dom  # the legend, drawn


def test_a_lone_diverged_run_is_marked_where_it_diverged(tmp_path):
    runs = [make_run(tmp_path, "ce", 0, steps=600),
            make_run(tmp_path, "nll-manual", 0, steps=600, diverged_at=300, status="diverged")]
    comp = tmp_path / "compare-test"
    comp.mkdir()
    write_comparison([load_run(r) for r in runs], comp, plots=False)
    page = (comp / "report.html").read_text(encoding="utf-8")
    # one per step-axis panel of the run: its training loss, dL/dz, fc1 and fc2 gradient norms
    assert page.count('"text":"diverged"') == 4
    assert '"x0":300.0' in page and '"x1":300.0' in page
