"""docs/api.md: every Python block runs, in order, in one namespace, on the tiny MNIST, and
prints exactly the ``text`` block that follows it in the doc.

``CE_LAB_UPDATE_DOCS=1 pytest tests/test_docs_api.py`` writes what the blocks printed into the
doc instead (then read the diff: the doc shows what was measured, nothing else).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCK = re.compile(r"```python\n(.*?)```\n(\s*```text\n(.*?)```\n)?", re.S)


def run_blocks(text: str) -> list[tuple[re.Match, str]]:
    namespace: dict = {"__name__": "docs_api"}
    out = []
    for match in BLOCK.finditer(text):
        buf = io.StringIO()
        with redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("error")  # no run folder is skipped in these examples
            exec(compile(match.group(1), f"{DOC}:block", "exec"), namespace)
        out.append((match, buf.getvalue()))
    return out


def test_docs_api_examples_print_what_the_doc_shows(tmp_path):
    pytest.importorskip("pandas")
    text = DOC.read_text(encoding="utf-8")
    results = run_blocks(text)  # in an empty cwd (tmp_path): as a reader runs them
    assert len(results) >= 8
    # The doc writes the folder its examples read; nothing was fetched anywhere.
    assert (tmp_path / "tiny-mnist" / "MNIST" / "raw").is_dir()
    assert not (tmp_path / "data-cache").exists()
    if os.environ.get("CE_LAB_UPDATE_DOCS"):
        pieces, end = [], 0
        for match, printed in results:
            pieces.append(text[end:match.start()])
            block = f"```python\n{match.group(1)}```\n"
            if match.group(2) is not None or printed:
                block += f"\n```text\n{printed}```\n"
            pieces.append(block)
            end = match.end()
        DOC.write_text("".join(pieces) + text[end:], encoding="utf-8")
        return
    for match, printed in results:
        assert match.group(2) is not None or not printed, f"no output block after:\n{match.group(1)}"
        assert printed == (match.group(3) or ""), f"block:\n{match.group(1)}"
