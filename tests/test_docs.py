"""The documentation cannot drift: every relative link, image and #anchor in README.md and docs/*.md resolves,
and docs/architecture.md's module table names exactly the modules under service/.

Anchors follow GitHub's rule for heading ids: the heading's text as rendered (no backticks, emphasis or link
targets), lower-cased, with every character that is not a letter, a digit, `_`, `-` or a space removed and
each space turned into `-`; a repeated id gets `-1`, `-2`, ... in order.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield re.sub(r"`[^`]*`", "``", line)


def slug(heading: str) -> str:
    """GitHub's id for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id in a Markdown file, with GitHub's numbering of repeated ids."""
    seen: Counter[str] = Counter()
    found = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    return [target for line in prose(path.read_text()) for target in LINK.findall(line)]


def broken(path: Path, target: str) -> str | None:
    """Why a link from `path` does not resolve, or None when it does (web links are not followed)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        return None
    file_part, _, anchor = target.partition("#")
    destination = (path.parent / file_part).resolve() if file_part else path.resolve()
    if not destination.exists():
        return f"{target}: {destination} does not exist"
    if anchor and destination.suffix != ".md":
        return f"{target}: an anchor into a file that is not Markdown"
    if anchor and anchor not in anchors(destination):
        return f"{target}: no heading #{anchor} in {destination.name}"
    return None


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_image_and_anchor_resolves(path: Path) -> None:
    """Each `[text](target)` and `![alt](src)` outside code points at a file that exists and, with `#anchor`,
    at a heading that exists in it."""
    found = links(path)
    problems = [problem for target in found if (problem := broken(path, target))]
    assert not problems, "\n".join(problems)


def test_the_link_pattern_finds_the_readmes_links() -> None:
    """A guard on the pattern itself: the README links to every docs file, so the check must find links there."""
    assert len(links(ROOT / "README.md")) >= 5, "the link check found no link: its pattern is broken"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Try it: `make demo`", "try-it-make-demo"),
        ("Deploying on ECS/Fargate", "deploying-on-ecsfargate"),
        ("How many replicas, and how the autoscaling works", "how-many-replicas-and-how-the-autoscaling-works"),
        ("One photo's history (CloudWatch Logs Insights)", "one-photos-history-cloudwatch-logs-insights"),
        ("`QUEUE_URL` and [the queue](x.md)", "queue_url-and-the-queue"),
    ],
)
def test_anchors_are_made_the_way_github_makes_them(heading: str, expected: str) -> None:
    """The checker's ids agree with the ids GitHub gives these headings."""
    assert slug(heading) == expected


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path: Path) -> None:
    """The second and third headings with one text get `-1` and `-2`; a heading inside code is no heading."""
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n## Results\n\n```\n# Results\n```\n\n### Results\n")
    assert anchors(page) == {"results", "results-1", "results-2"}


def modules_with_code() -> set[str]:
    """Every module under service/, except an `__init__.py` that holds nothing but its docstring."""
    found = set()
    for path in (ROOT / "service").rglob("*.py"):
        body = ast.parse(path.read_text()).body
        docstring_only = len(body) <= 1 and all(isinstance(node, ast.Expr) for node in body)
        if path.name != "__init__.py" or not docstring_only:
            found.add(str(path.relative_to(ROOT)))
    return found


def module_table() -> dict[str, str]:
    """The rows of architecture.md's module table: module path -> its one-line role."""
    section = ARCHITECTURE.read_text().split("## Every module", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(service/[^`]+\.py)` \| (.+?) \|$", section, flags=re.MULTILINE))


def test_the_module_table_lists_every_module_under_service_and_nothing_else() -> None:
    """docs/architecture.md has one row per module of service/, each with a role, and no row for a module
    that does not exist."""
    table = module_table()
    actual = modules_with_code()
    assert not actual - table.keys(), f"modules missing from docs/architecture.md: {sorted(actual - table.keys())}"
    assert not table.keys() - actual, f"rows for modules that do not exist: {sorted(table.keys() - actual)}"
    assert all(role.strip() for role in table.values())
