"""README.md and docs/*.md: every relative link points at a file that exists (and at a heading of
it, where it names one), the README opens with its two commands, and docs/config.md lists every
config key.

The README teaches and links the reference in docs/; a page moved or a heading renamed must not
leave a dead link behind. The anchors are GitHub's: a heading lower-cased, stripped of
punctuation but ``-`` and ``_``, spaces turned into ``-``, a repeated one suffixed ``-1``, ``-2``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\n]|\][^(])*?\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def prose(text: str) -> str:
    """``text`` without fenced code blocks, where neither links nor headings are Markdown."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in HEADING.findall(prose(path.read_text(encoding="utf-8"))):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(path.read_text(encoding="utf-8")))
    return LINK.findall(text)


def test_the_anchor_rule_is_githubs():
    assert slug("What happens when …") == "what-happens-when-"
    assert slug("How `ce-lab compare` works") == "how-ce-lab-compare-works"
    assert slug("bench_threads.py: the thread policy, idle and beside other work") == \
        "bench_threadspy-the-thread-policy-idle-and-beside-other-work"
    assert slug("Hui & Belkin: the square loss") == "hui--belkin-the-square-loss"


def test_the_link_finder_finds_links_and_skips_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A\n\nsee [b](b.md#x), ![img](i.png) and [c](https://e.org)\n"
                    "`[not](a-link.md)`\n```\n[nor](this.md)\n# not a heading\n```\n## B b\n## B b\n",
                    encoding="utf-8")
    assert links(page) == ["b.md#x", "i.png", "https://e.org"]
    assert anchors(page) == {"a", "b-b", "b-b-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_what_exists(page):
    dead = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked offline
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            dead.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            dead.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not dead, dead
    assert page.name != "README.md" or len(links(page)) >= 10  # the README links the reference


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def shell_blocks(text: str) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^```(bash|sh|shell)\n(.*?)^```", text,
                                                     re.M | re.S)]


def test_the_readme_opens_with_install_and_run_then_the_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first, second = shell_blocks(readme)[:2]
    # The first installs ce-lab in a fresh venv and runs the main job (tests/cli checks it parses).
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && ")
    assert first.split(" && ")[-1].startswith("ce-lab compare ")
    # The second is the test command CI runs verbatim (.ci/run, after its "verbatim" comment).
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_command = ci[ci.index("# The README's test command, verbatim:") + 1]
    assert test_command == 'pip install -e ".[dev]" && pytest'
    assert second == f"python3 -m venv .venv && . .venv/bin/activate && {test_command}"
    # Nothing but prose before them: they are what a reader meets first.
    assert readme.index(first) < readme.index("```", readme.index(second) + len(second) + 4)
    assert readme[:readme.index("```")].count("\n## ") == 1  # the title's paragraph, "Quick start"


def as_documented(value) -> str:
    """A default as docs/config.md writes it: YAML's null/true/false, lists in brackets."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(map(as_documented, value)) + "]"
    return str(value)


def same_default(shown: str, value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(shown) == float(value)  # 0 and 0.0, 1 and 1.0 are one default
        except ValueError:
            return False
    return shown == as_documented(value)


def test_docs_config_lists_every_config_key_with_its_default():
    from ce_lab.config import RunConfig
    from ce_lab.config_keys import flatten

    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    rows = {k: v.strip() for k, v in re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", text, re.M)}
    wrong = [f"{key}: documented {rows.get(key)!r}, default {value!r}"
             for key, value in flatten(RunConfig().model_dump(mode="json")).items()
             if key not in rows or not same_default(rows[key], value)]
    assert not wrong, wrong
    assert same_default("[0.9, 0.95]", [0.9, 0.95]) and not same_default("0.2", 0.1)
